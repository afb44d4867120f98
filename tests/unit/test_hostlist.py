"""Tests for strato.jobspec.hostlist: RFC 29 hostlists.

Why: R, constraints and the CLI name nodes with hostlists; expansion must follow RFC 29
(order, repeats, zero padding) and compression must always expand back to its input.
"""

from __future__ import annotations

import pytest

from strato.jobspec.hostlist import compress_hostlist, expand_hostlist

# The test vectors of RFC 29, as (hostlist, comma separated expansion).
RFC29_VECTORS = [
    ("", ""),
    ("foox,fooy,fooz", "foox,fooy,fooz"),
    ("[1-3,5-6]", "1,2,3,5,6"),
    ("foo[1-5]", "foo1,foo2,foo3,foo4,foo5"),
    ("foo[0-4]-eth2", "foo0-eth2,foo1-eth2,foo2-eth2,foo3-eth2,foo4-eth2"),
    ("foo1,foo1,foo1", "foo1,foo1,foo1"),
    ("[00-02]", "00,01,02"),
    ("[00-2]", "00,01,02"),
    ("foo[1,1,2,1]", "foo1,foo1,foo2,foo1"),
]


@pytest.mark.parametrize(("text", "expanded"), RFC29_VECTORS)
def test_rfc29_vectors(text: str, expanded: str) -> None:
    assert expand_hostlist(text) == (expanded.split(",") if expanded else [])


@pytest.mark.parametrize(
    ("text", "hosts"),
    [
        ("node[0-3,7],login", ["node0", "node1", "node2", "node3", "node7", "login"]),
        ("n[001-003]", ["n001", "n002", "n003"]),
        ("n[008-010]", ["n008", "n009", "n010"]),
        ("n[005,4,11-13]", ["n005", "n004", "n011", "n012", "n013"]),
        ("n[9-11]", ["n9", "n10", "n11"]),
        ("login,n[3,1]", ["login", "n3", "n1"]),
        ("a,,b", ["a", "b"]),
        ("single", ["single"]),
    ],
)
def test_expand(text: str, hosts: list[str]) -> None:
    assert expand_hostlist(text) == hosts


@pytest.mark.parametrize(
    "text",
    [
        "node[1-",
        "node[3-1]",
        "node[]",
        "node[a]",
        "node[1-a]",
        "node]1[",
        "node[1]]",
        "node[[1]]",
        "node[1,,2]",
        "node[1-2][3-4]",
        "node 1",
        "node[-1]",
        "n[1-2",
        "a b,c",
        "node\t1",
    ],
)
def test_expand_invalid(text: str) -> None:
    with pytest.raises(ValueError):
        expand_hostlist(text)


@pytest.mark.parametrize(
    ("hosts", "text"),
    [
        ([], ""),
        (["node5"], "node5"),
        (["login"], "login"),
        (["node0", "node1", "node2", "node3", "node7", "login"], "node[0-3,7],login"),
        (["n008", "n009", "n010"], "n[008-010]"),
        (["n9", "n10", "n11"], "n[9-11]"),
        (["foo1", "foo1", "foo1"], "foo[1,1,1]"),
        (["n3", "n1", "n2"], "n[3,1-2]"),
        (["a1", "b1", "a2"], "a1,b1,a2"),
        (["n01", "n2"], "n01,n2"),
        (["1", "2", "3"], "[1-3]"),
    ],
)
def test_compress(hosts: list[str], text: str) -> None:
    assert compress_hostlist(hosts) == text


@pytest.mark.parametrize(
    "hosts",
    [
        ["n001", "n002", "n9", "n10", "x", "n011", "n012", "n0", "n00", "n000"],
        ["foo0-eth2", "foo1-eth2", "foo1-eth2"],
        [f"rack{r}n{n:03d}" for r in range(3) for n in range(1, 40)],
        ["a7", "a7", "a6", "a5", "a8"],
    ],
)
def test_compress_round_trip(hosts: list[str]) -> None:
    assert expand_hostlist(compress_hostlist(hosts)) == hosts


@pytest.mark.parametrize("bad", [["a,b"], ["n[1]"], [""], ["a b"], [None]])
def test_compress_invalid(bad: list[object]) -> None:
    with pytest.raises(ValueError):
        compress_hostlist(bad)  # type: ignore[arg-type]
