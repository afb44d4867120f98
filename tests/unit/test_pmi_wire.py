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
