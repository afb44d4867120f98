"""Tests for strato.jobspec.idset: RFC 22 idset strings.

Why: ranks and resource ids travel as idsets in R, constraints and the CLI; decoding must
reject garbage and stay fast for large instances.
"""

from __future__ import annotations

import pytest

from strato.jobspec.idset import decode_idset, encode_idset


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ("", []),
        ("[]", []),
        ("5", [5]),
        ("0", [0]),
        ("0-3,7", [0, 1, 2, 3, 7]),
        ("[0-3,7]", [0, 1, 2, 3, 7]),
        ("1,2,3,5,6,42", [1, 2, 3, 5, 6, 42]),
        ("1-3,5-6,42", [1, 2, 3, 5, 6, 42]),
        ("2-2", [2]),
        ("7,0-3", [0, 1, 2, 3, 7]),  # out of order: still a set
        ("1-3,2-4,3", [1, 2, 3, 4]),  # overlaps and repeats collapse
    ],
)
def test_decode(text: str, ids: list[int]) -> None:
    assert decode_idset(text) == ids


@pytest.mark.parametrize(
    "text",
    [
        "3-1",
        "a",
        "-1",
        "1,,2",
        ",",
        "1,",
        ",1",
        "1-",
        "-",
        "1-2-3",
        "[1",
        "1]",
        "[[1]]",
        " 1",
        "1 ",
        "1, 2",
        "1.5",
        "+1",
        "0x1",
        "\u0661",
    ],
)
def test_decode_invalid(text: str) -> None:
    with pytest.raises(ValueError):
        decode_idset(text)


@pytest.mark.parametrize(
    ("ids", "text"),
    [
        ([], ""),
        ([5], "5"),
        ([0, 1, 2, 3, 7], "0-3,7"),
        ([7, 3, 2, 1, 0, 2], "0-3,7"),
        ([1, 2], "1-2"),
        ([1, 3, 5], "1,3,5"),
        (range(0, 100000), "0-99999"),
        ({4, 5, 6, 10, 11}, "4-6,10-11"),
    ],
)
def test_encode(ids: list[int], text: str) -> None:
    assert encode_idset(ids) == text


def test_encode_brackets() -> None:
    assert encode_idset([0, 1, 2, 3, 7], brackets=True) == "[0-3,7]"
    assert encode_idset([4], brackets=True) == "4"


@pytest.mark.parametrize("bad", [[-1], [1, "2"], [1.0], [True]])
def test_encode_invalid(bad: list[object]) -> None:
    with pytest.raises(ValueError):
        encode_idset(bad)  # type: ignore[arg-type]


def test_large_round_trip() -> None:
    ids = [i for i in range(200000) if i % 3 != 1]  # ~133k ids in ~67k ranges
    text = encode_idset(ids)
    assert text.startswith("0,2-3,5-6,")
    assert decode_idset(text) == ids
    assert decode_idset("0-99999") == list(range(100000))
