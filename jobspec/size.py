"""Sizes in bytes as Flux writes them: ``512``, ``64k``, ``10M``, ``1.5G``.

Why this exists: ``-o output.limit=SIZE`` takes the sizes a Flux user types for
the same option. A size is a non-negative decimal number (a fraction is allowed)
with an optional suffix ``k``/``K`` (2^10), ``M`` (2^20), ``G`` (2^30), ``T``,
``P`` or ``E``; the result is rounded down to whole bytes.
"""

from __future__ import annotations

import math
import re

__all__ = ["OUTPUT_LIMIT_MAX", "format_size", "output_limit", "parse_size"]

#: the largest ``-o output.limit`` a job may ask for (as Flux: 1G)
OUTPUT_LIMIT_MAX = 1 << 30

_SIZE_RE = re.compile(r"((?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)([kKMGTPE]?)")
_UNITS = ["", "K", "M", "G", "T", "P", "E"]


def parse_size(value: object) -> int:
    """The number of bytes `value` stands for (an int is taken as it is).

    Raises ValueError ``invalid size 'TEXT'`` for anything else: negative
    numbers, unknown suffixes, spaces, the empty string.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"invalid size {value!r}")
        return value
    match = _SIZE_RE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"invalid size {value!r}")
    number, suffix = match.groups()
    nbytes = float(number) * 1024 ** _UNITS.index(suffix.upper())
    if not math.isfinite(nbytes):
        raise ValueError(f"invalid size {value!r}")
    return int(nbytes)


def format_size(nbytes: int) -> str:
    """`nbytes` in the largest unit it reaches, as parse_size reads it: ``10M``."""
    power = 0
    while power + 1 < len(_UNITS) and nbytes >= 1024 ** (power + 1):
        power += 1
    return f"{nbytes / 1024 ** power:g}{_UNITS[power]}"


def output_limit(value: object) -> int:
    """A job's ``-o output.limit`` in bytes: a size from 1 byte to 1G.

    Raises ValueError saying what it accepts (to follow the option's name)."""
    try:
        nbytes = parse_size(value)
    except ValueError:
        nbytes = 0
    if not 0 < nbytes <= OUTPUT_LIMIT_MAX:
        raise ValueError(f"must be a size from 1 to {format_size(OUTPUT_LIMIT_MAX)}"
                         f" such as \"10M\" (got {value!r})")
    return nbytes
