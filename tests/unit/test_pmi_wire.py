"""The PMI-1 line format and the shell's PMI_process_mapping."""

from __future__ import annotations

import pytest

from strato.core.pmi import format_line, parse_line
from strato.shell.pmi import pmi_wanted, process_mapping


def test_parse_line():
    assert parse_line("cmd=put kvsname=k key=a value=x y=z ") == \
        {"cmd": "put", "kvsname": "k", "key": "a", "value": "x y=z"}
    assert parse_line("cmd=abort exitcode=2 error_msg=it broke") == \
        {"cmd": "abort", "exitcode": "2", "error_msg": "it broke"}
    assert parse_line("  cmd=barrier_in  ") == {"cmd": "barrier_in"}
    # getbyidx answers with val=, last and with spaces as value= is
    assert parse_line("cmd=getbyidx_results rc=0 nextidx=1 key=k val=a b") == \
        {"cmd": "getbyidx_results", "rc": "0", "nextidx": "1", "key": "k", "val": "a b"}
    with pytest.raises(ValueError, match="'oops' is not key=value"):
        parse_line("cmd=get oops")
    with pytest.raises(ValueError, match="is not key=value"):
        parse_line("=x")


def test_format_line():
    assert format_line(cmd="get_result", rc=0, value="a b") == b"cmd=get_result rc=0 value=a b\n"


@pytest.mark.parametrize("nodes, mapping", [
    ([0, 0, 1, 1], "(vector,(0,2,2))"),
    ([0, 1, 0, 1], "(vector,(0,2,1),(0,2,1))"),
    ([0, 0, 0, 1], "(vector,(0,1,3),(1,1,1))"),
    ([0], "(vector,(0,1,1))"),
    ([0, 0, 1, 1, 2, 2, 3], "(vector,(0,3,2),(3,1,1))"),
])
def test_process_mapping(nodes, mapping):
    assert process_mapping(nodes) == mapping


@pytest.mark.parametrize("option, ntasks, wanted", [
    (None, 1, False), (None, 2, True), ("off", 4, False), ("simple", 1, True),
    (1, 1, True), ("simple,off", 2, False),
])
def test_pmi_wanted(option, ntasks, wanted):
    assert pmi_wanted(option, ntasks) is wanted


@pytest.mark.parametrize("option", ["pmix", "", "simple,pmi2"])
def test_pmi_unknown(option):
    with pytest.raises(ValueError, match="unknown PMI"):
        pmi_wanted(option, 2)


def test_put_refused_past_the_key_limit(monkeypatch):
    """A job on one node never reaches rank 0's bound on a barrier's keys: the shell's
    own puts stop at the same bound, so a runaway task cannot grow the shell host."""
    from strato.shell import pmi as shellpmi

    monkeypatch.setattr(shellpmi, "MAX_KEYS", 3)
    server = shellpmi.ShellPMI.__new__(shellpmi.ShellPMI)
    server.pending, server.kvs, answers = {"a": "1"}, {"b": "2"}, []
    monkeypatch.setattr(server, "_answer", lambda client, **f: answers.append(f),
                        raising=False)
    for key in ("c", "a", "d"):
        server._put(None, {"key": key, "value": "v"})
    assert [a["rc"] for a in answers] == [0, 0, shellpmi.PMI_FAIL]  # a: a new value
    assert answers[-1]["msg"] == "too_many_keys" and "d" not in server.pending
