"""Hostlists (RFC 29): compact, ordered lists of host names, e.g. ``node[0-3,7],login``.

Why this exists: R (RFC 20) names the nodes of an allocation with a hostlist, users pass
hostlists to ``--requires=host:...`` constraints and to the CLI, and ``strato jobs`` shows
them; strato reads and writes exactly the strings Flux does.

RFC 29: a hostlist is a comma separated list of expressions ``prefix[idlist]suffix``, each
part optional.  An idlist is an ordered list of ids and ``lo-hi`` ranges that may repeat
ids; zero padding of the first id applies to every id of the list (``[005,4]`` is
``005,004``).  A hostlist is a *list*: order and repeats are kept.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["MAX_HOSTS", "compress_hostlist", "expand_hostlist"]

#: the most names one hostlist may expand to ("n[0-10000000000]" would otherwise take
#: gigabytes and minutes); no machine has this many hosts
MAX_HOSTS = 1 << 20
_MAX_DIGITS = 20  # a host number in brackets is below 2**64; longer runs are names

# Anything but printable, non-space ASCII, and the special characters "[", "]" and ",".
_BAD_CHAR = re.compile(r"[^!-~]|[\[\],]")


def _check_text(text: str, part: str, where: str) -> None:
    """Reject characters RFC 29 does not allow in a prefix or suffix."""
    bad = _BAD_CHAR.search(part)
    if bad is not None:
        raise ValueError(f"invalid hostlist {text!r}: bad character {bad.group()!r} in {where}")


def _expand_idlist(text: str, idlist: str, room: int) -> list[str]:
    """Expand the inside of one pair of brackets into zero-padded id strings, in order;
    at most `room` of them."""
    if not idlist:
        raise ValueError(f"invalid hostlist {text!r}: empty brackets")
    out: list[str] = []
    width = 0  # the padded width set by the first id, if it has leading zeros
    first = True
    for element in idlist.split(","):
        lo_s, dash, hi_s = element.partition("-")
        if not (lo_s.isdigit() and lo_s.isascii()) or (
            dash and not (hi_s.isdigit() and hi_s.isascii())
        ):
            raise ValueError(f"invalid hostlist {text!r}: bad range {element!r}")
        if len(lo_s) > _MAX_DIGITS or len(hi_s) > _MAX_DIGITS:
            raise ValueError(f"invalid hostlist {_short(text)!r}: a host number is too large")
        lo = int(lo_s)
        hi = int(hi_s) if dash else lo
        if hi < lo:
            raise ValueError(f"invalid hostlist {text!r}: range {element!r} is descending")
        if hi - lo >= room - len(out):
            raise ValueError(f"invalid hostlist {_short(text)!r}: more than {MAX_HOSTS} hosts")
        own = len(lo_s) if len(lo_s) > 1 and lo_s[0] == "0" else 0
        if first:
            width = own
            first = False
        pad = own or width
        if pad:
            out.extend(str(i).zfill(pad) for i in range(lo, hi + 1))
        else:
            out.extend(map(str, range(lo, hi + 1)))
    return out


def _split_top(text: str) -> list[str]:
    """Split ``text`` at the commas that are not inside brackets."""
    parts: list[str] = []
    depth = 0
    start = 0
    for i, ch in enumerate(text):
        if ch == "[":
            depth += 1
            if depth > 1:
                raise ValueError(f"invalid hostlist {text!r}: nested brackets")
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise ValueError(f"invalid hostlist {text!r}: unbalanced brackets")
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth:
        raise ValueError(f"invalid hostlist {text!r}: unbalanced brackets")
    parts.append(text[start:])
    return parts


def expand_hostlist(text: str) -> list[str]:
    """Return the host names of hostlist ``text`` in order, repeats kept.

    ``"node[0-2],login"`` gives ``["node0", "node1", "node2", "login"]``,
    ``"n[001-003]"`` gives ``["n001", "n002", "n003"]``, ``"foo[0-1]-eth2"`` gives
    ``["foo0-eth2", "foo1-eth2"]`` and ``""`` gives ``[]``.

    Raises ValueError for unbalanced or nested brackets, more than one bracket group in
    one expression, empty brackets, non-numeric or descending ranges, and whitespace or
    control characters in a name, a host number of more than 20 digits, and more than
    :data:`MAX_HOSTS` names.
    """
    if not isinstance(text, str):
        raise ValueError(f"invalid hostlist {text!r}: not a string")
    if "[" not in text:  # fast path: a plain comma separated list
        hosts = [h for h in text.split(",") if h]
        for host in hosts:
            _check_text(text, host, "host name")
        return hosts
    out: list[str] = []
    for expr in _split_top(text):
        if not expr:
            continue
        open_at = expr.find("[")
        if open_at < 0:
            _check_text(text, expr, "host name")
            out.append(expr)
            continue
        close_at = expr.index("]", open_at)  # _split_top checked the brackets balance
        prefix = expr[:open_at]
        suffix = expr[close_at + 1 :]
        if "[" in suffix:
            raise ValueError(f"invalid hostlist {text!r}: more than one bracket group")
        _check_text(text, prefix, "prefix")
        _check_text(text, suffix, "suffix")
        idlist = _expand_idlist(text, expr[open_at + 1 : close_at], MAX_HOSTS - len(out))
        out.extend(prefix + i + suffix for i in idlist)
    return out


def _short(text: str) -> str:
    return text if len(text) <= 64 else text[:60] + "..."


def _split_host(host: str) -> tuple[str, str]:
    """Split ``host`` into a prefix and its trailing digits (``"n07"`` -> ``("n", "07")``)."""
    prefix = host.rstrip("0123456789")
    return prefix, host[len(prefix) :]


def _fmt_range(lo: int, hi: int, width: int) -> str:
    if lo == hi:
        return str(lo).zfill(width)
    return f"{str(lo).zfill(width)}-{str(hi).zfill(width)}"


def compress_hostlist(hosts: Iterable[str]) -> str:
    """Return a hostlist string for ``hosts``, keeping their order and repeats.

    Adjacent names with the same prefix and zero padding share one bracket group and
    consecutive ascending numbers become ranges: ``["node0", "node1", "node2", "node7",
    "login"]`` gives ``"node[0-2,7],login"``, ``["n008", "n009", "n010"]`` gives
    ``"n[008-010]"``.  A name on its own keeps no brackets (``"node5"``).  The result
    always expands back to ``hosts`` with :func:`expand_hostlist`.

    Raises ValueError for an empty name or one with characters a hostlist cannot carry
    (brackets, commas, whitespace).
    """
    groups: list[str] = []
    # current group: prefix, zero-pad width, list of [lo, hi] ranges
    cur_prefix: str | None = None
    cur_width = 0
    ranges: list[list[int]] = []
    count = 0

    def flush() -> None:
        if cur_prefix is None:
            return
        body = ",".join(_fmt_range(lo, hi, cur_width) for lo, hi in ranges)
        groups.append(f"{cur_prefix}[{body}]" if count > 1 else cur_prefix + body)

    for host in hosts:
        if not isinstance(host, str) or not host:
            raise ValueError(f"invalid host name {host!r}")
        _check_text(host, host, "host name")
        prefix, digits = _split_host(host)
        if not digits or len(digits) > _MAX_DIGITS:  # no number a bracket group could hold
            flush()
            cur_prefix = None
            groups.append(host)
            continue
        num = int(digits)
        if cur_prefix is not None and prefix == cur_prefix and str(num).zfill(cur_width) == digits:
            last = ranges[-1]
            if num == last[1] + 1:
                last[1] = num
            else:
                ranges.append([num, num])
            count += 1
            continue
        flush()
        cur_prefix = prefix
        cur_width = len(digits) if len(digits) > 1 and digits[0] == "0" else 0
        ranges = [[num, num]]
        count = 1
    flush()
    return ",".join(groups)
