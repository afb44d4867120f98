"""Tests for strato.jobspec.fsd: RFC 23 Flux Standard Duration parsing and formatting.

Why: durations come from users (``-t``), jobspecs and config; they must parse exactly as
in Flux and print as Flux prints them.
"""

from __future__ import annotations

import math

import pytest

from strato.jobspec import format_fsd, parse_fsd


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0.0),
        ("0s", 0.0),
        ("30", 30.0),
        ("30s", 30.0),
        ("1.5m", 90.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("0.5d", 43200.0),
        ("500ms", 0.5),
        ("1ms", 0.001),
        (".5", 0.5),
        ("5.", 5.0),
        ("1e2", 100.0),
        ("1.5e1m", 900.0),
        ("+10", 10.0),
    ],
)
def test_parse(text: str, seconds: float) -> None:
    assert parse_fsd(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["inf", "infinity", "INF", "Infinity"])
def test_parse_infinity(text: str) -> None:
    assert parse_fsd(text) == math.inf


@pytest.mark.parametrize(
    "text",
    [
        "",
        "x",
        "-1",
        "-1s",
        "nan",
        "NaN",
        "1x",
        "1sec",
        "1 s",
        " 1",
        "1m1s",
        "1S",
        "m",
        "1.2.3",
        "0x10",
        "1_000",
        "infs",
        "-inf",
    ],
)
def test_parse_invalid(text: str) -> None:
    with pytest.raises(ValueError, match=r"^invalid duration "):
        parse_fsd(text)


def test_parse_error_message_names_input() -> None:
    with pytest.raises(ValueError) as info:
        parse_fsd("x")
    assert str(info.value) == "invalid duration 'x'"


def test_parse_not_a_string() -> None:
    with pytest.raises(ValueError):
        parse_fsd(30)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.1, "0.1s"),
        (30, "30s"),
        (59.5, "59.5s"),
        (60, "1m"),
        (90, "1.5m"),
        (3600, "1h"),
        (7200, "2h"),
        (5400, "1.5h"),
        (86400, "1d"),
        (172800, "2d"),
        (math.inf, "inf"),
    ],
)
def test_format(seconds: float, text: str) -> None:
    assert format_fsd(seconds) == text


@pytest.mark.parametrize("bad", [-1, -0.5, math.nan, "10", None, True])
def test_format_invalid(bad: object) -> None:
    with pytest.raises(ValueError):
        format_fsd(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("seconds", [0, 0.001, 0.25, 1, 45, 61, 150, 3599, 3600, 4000, 1e5, 1e9])
def test_round_trip(seconds: float) -> None:
    assert parse_fsd(format_fsd(seconds)) == pytest.approx(seconds, rel=1e-5)
