"""Flux Standard Duration (RFC 23): parse and format time durations.

Why this exists: every place where a user gives strato a time (``strato submit -t 1.5h``,
``attributes.system.duration``, config timeouts) must accept the same strings Flux accepts,
and every place that shows a time should print it the way Flux prints it, so that a Flux
user's habits and scripts keep working.

RFC 23: a duration is ``N[SUFFIX]`` where ``N`` is a non-negative floating point number and
``SUFFIX`` is one of ``ms``, ``s`` (the default), ``m``, ``h`` or ``d``.  The string
``infinity`` (and, as Flux also accepts, ``inf``) means an infinite duration.

Formatting follows flux-core's ``fsd_format_duration``: the largest unit whose value is at
least 1 (seconds below one minute, then minutes, hours, days), printed like C's ``%g``
(six significant digits, no trailing zeros), e.g. ``0.1s``, ``30s``, ``1.5m``, ``2h``,
``1d``; an infinite duration prints as ``inf``.
"""

from __future__ import annotations

import math
import re

__all__ = ["format_fsd", "parse_fsd"]

# A decimal floating point number as strtod(3) reads it, without a sign (negative durations
# are invalid, a leading "+" is allowed) and without the hex and nan forms. Each digit
# can be matched one way only: with "[0-9]+\.?[0-9]*" a long run of digits followed by
# junk backtracked in quadratic time (20,000 digits: 30 s).
_FSD_RE = re.compile(r"\+?((?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)(ms|s|m|h|d)?")

_MULTIPLIER: dict[str | None, float] = {
    None: 1.0,
    "s": 1.0,
    "ms": 0.001,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}

_INFINITY_WORDS = frozenset({"inf", "infinity"})


def parse_fsd(text: str) -> float:
    """Return the number of seconds that the RFC 23 duration ``text`` stands for.

    ``"30"`` and ``"30s"`` are 30.0, ``"1.5m"`` is 90.0, ``"2h"`` 7200.0, ``"1d"`` 86400.0,
    ``"500ms"`` 0.5, and ``"inf"`` / ``"infinity"`` (any case) ``math.inf``.

    Raises ValueError ``invalid duration 'TEXT'`` for anything else, including negative
    numbers, ``nan``, unknown suffixes, embedded whitespace and the empty string.
    """
    if not isinstance(text, str):
        raise ValueError(f"invalid duration {text!r}")
    if text.lower() in _INFINITY_WORDS:
        return math.inf
    match = _FSD_RE.fullmatch(text)
    if match is None:
        raise ValueError(f"invalid duration {text!r}")
    return float(match.group(1)) * _MULTIPLIER[match.group(2)]


def _g(value: float) -> str:
    """C's ``%g``: six significant digits, trailing zeros removed."""
    return f"{value:g}"


def format_fsd(seconds: float) -> str:
    """Format ``seconds`` as an RFC 23 duration the way Flux prints one.

    Under a minute the unit is ``s`` (``0.1s``, ``30s``); then ``m`` (``1.5m``), ``h``
    (``2h``) and ``d`` (``1d``).  ``math.inf`` prints as ``inf``.  The result always parses
    back with :func:`parse_fsd` (to within ``%g``'s six significant digits).

    Raises ValueError for a negative number, NaN, or something that is not a number.
    """
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise ValueError(f"invalid duration {seconds!r}")
    if math.isnan(seconds) or seconds < 0:
        raise ValueError(f"invalid duration {seconds!r}")
    if math.isinf(seconds):
        return "inf"
    if seconds < 60.0:
        return _g(seconds) + "s"
    if seconds < 3600.0:
        return _g(seconds / 60.0) + "m"
    if seconds < 86400.0:
        return _g(seconds / 3600.0) + "h"
    return _g(seconds / 86400.0) + "d"
