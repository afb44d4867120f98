"""Idset strings (RFC 22): compact sets of non-negative integer ids, e.g. ``0-3,7``.

Why this exists: broker ranks, task ranks, core and gpu ids in R (RFC 20), ``--cc``
ranges and constraint ``ranks`` terms are all written as idsets in Flux, and strato
speaks the same strings.  Big instances have ranges of 100k ids and more, so decoding
expands ranges with ``range()`` and encoding is one linear pass over sorted ids.

RFC 22: ids are decimal, comma separated, consecutive ids may be compressed to
``lo-hi`` ranges, and the whole string may be wrapped in square brackets.  The RFC asks
writers for ascending order without leading zeros; like Flux's decoder, ``decode_idset``
also accepts ids out of order, repeated or zero-padded and returns the set sorted.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

__all__ = ["MAX_IDS", "decode_idset", "encode_idset"]

#: the most ids one idset string may decode to (ranges are expanded, so "0-10000000000"
#: would otherwise take gigabytes and minutes): far above any instance's ranks or cores
#: and any --cc count
MAX_IDS = 1 << 24
_MAX_DIGITS = 20  # an id is below 2**64 (and int() is never asked for 4300+ digits)


def _bad(text: str, why: str) -> ValueError:
    shown = text if len(text) <= 64 else text[:60] + "..."
    return ValueError(f"invalid idset {shown!r}: {why}")


def decode_idset(text: str) -> list[int]:
    """Return the ids of idset string ``text`` as a sorted list without duplicates.

    ``""`` and ``"[]"`` are empty, ``"5"`` is ``[5]``, ``"0-3,7"`` is ``[0, 1, 2, 3, 7]``
    and ``"[1-2,4]"`` is ``[1, 2, 4]``.

    Raises ValueError for anything else: characters other than digits, ``,`` ``-`` and one
    pair of enclosing brackets; empty elements (``"1,,2"``); negative ids (``"-1"``);
    descending ranges (``"3-1"``); an id of more than 20 digits; more than
    :data:`MAX_IDS` ids in all.
    """
    if not isinstance(text, str):
        raise ValueError(f"invalid idset {text!r}: not a string")
    body = text
    if body.startswith("["):
        if not body.endswith("]"):
            raise _bad(text, "unbalanced brackets")
        body = body[1:-1]
    if not body:
        return []
    out: list[int] = []
    ordered = True  # are the elements ascending and disjoint, so no sort is needed?
    last = -1
    for element in body.split(","):
        lo_s, dash, hi_s = element.partition("-")
        if not lo_s.isdigit() or not lo_s.isascii():
            raise _bad(text, f"bad element {element!r}")
        if len(lo_s) > _MAX_DIGITS or len(hi_s) > _MAX_DIGITS:
            raise _bad(text, "an id is too large")
        lo = int(lo_s)
        if dash:
            if not hi_s.isdigit() or not hi_s.isascii():
                raise _bad(text, f"bad element {element!r}")
            hi = int(hi_s)
            if hi < lo:
                raise _bad(text, f"range {element!r} is descending")
            if hi - lo >= MAX_IDS - len(out):
                raise _bad(text, f"more than {MAX_IDS} ids")
            if lo <= last:
                ordered = False
            out.extend(range(lo, hi + 1))
            last = hi
        else:
            if lo <= last:
                ordered = False
            out.append(lo)
            last = lo
    if not ordered:
        out = sorted(set(out))
    return out


@functools.lru_cache(maxsize=1024)
def decode_idset_cached(text: str) -> tuple[int, ...]:
    """`decode_idset` as a tuple, remembered: the hot paths of a job's life decode
    the same few strings of its R (``"0"``, ``"0-31"``) thousands of times."""
    return tuple(decode_idset(text))


@functools.lru_cache(maxsize=1024)
def encode_idset_cached(ids: tuple[int, ...]) -> str:
    """`encode_idset` of a tuple, remembered: a scheduler writes the same few sets
    (a node's cores ``(0,)``, ``(0, 1, ..., 31)``) into the R of every job."""
    return encode_idset(ids)


def encode_idset(ids: Iterable[int], brackets: bool = False) -> str:
    """Return the RFC 22 string for ``ids``, runs of consecutive ids compressed to ranges.

    ``[0, 1, 2, 3, 7]`` gives ``"0-3,7"``; order and duplicates in ``ids`` do not matter;
    no ids give ``""``.  With ``brackets=True`` a set of more than one id is wrapped in
    square brackets (``"[0-3,7]"``), as Flux does for hostlist-style output.

    Raises ValueError if an id is negative or not an integer.
    """
    values = ids if isinstance(ids, (set, frozenset)) else set(ids)
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"invalid id {value!r}: ids must be integers >= 0")
    if not values:
        return ""
    ordered = sorted(values)
    parts: list[str] = []
    append = parts.append
    start = prev = ordered[0]
    for value in ordered[1:]:
        if value != prev + 1:
            append(f"{start}-{prev}" if prev != start else str(start))
            start = value
        prev = value
    append(f"{start}-{prev}" if prev != start else str(start))
    result = ",".join(parts)
    if brackets and len(ordered) > 1:
        return f"[{result}]"
    return result
