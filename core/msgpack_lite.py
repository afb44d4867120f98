"""A small pure-Python msgpack codec for the short messages of short-lived commands.

Why it exists: importing msgspec costs a command like ``strato run true`` about a
third of its own time (msgspec imports its JSON schema, inspect and typing
helpers along with the codec), while the messages such a command exchanges are a
few hundred bytes. So the synchronous handle packs and unpacks small messages
here and leaves large ones to msgspec (`strato.core.proto` decides, and loads
msgspec only then). The output is what msgspec writes for the same value (the
shortest form of every integer, string, array and map; floats as float64), and
the tests check both agree on random values.

Only the types a client sends are packed: None, bool, int (-2**63 .. 2**64-1),
float, str, bytes, list, tuple and dict. Anything else, or a value with more than
`budget` items, raises `Unsupported`, and the caller uses msgspec instead;
`unpack` does the same for what it does not read (extension types).
"""

from __future__ import annotations

import struct

_pack_d = struct.Struct(">Bd").pack
_UNPACK = {0xCA: struct.Struct(">f"), 0xCB: struct.Struct(">d"),
           0xCC: struct.Struct(">B"), 0xCD: struct.Struct(">H"), 0xCE: struct.Struct(">I"),
           0xCF: struct.Struct(">Q"), 0xD0: struct.Struct(">b"), 0xD1: struct.Struct(">h"),
           0xD2: struct.Struct(">i"), 0xD3: struct.Struct(">q")}


class Unsupported(ValueError):
    """A value (or message) this codec leaves to msgspec."""


def pack(obj: object, budget: int = 2000) -> bytes:
    """`obj` in msgpack; Unsupported for other types or more than `budget` items."""
    out = bytearray()
    left = [budget]
    _pack(obj, out, left)
    return bytes(out)


def _header(out: bytearray, n: int, fix: int, fixmax: int, codes: tuple) -> None:
    if n <= fixmax:
        out.append(fix | n)
    elif n <= 0xFF and codes[0]:
        out.append(codes[0])
        out.append(n)
    elif n <= 0xFFFF:
        out.append(codes[1])
        out += n.to_bytes(2, "big")
    elif n <= 0xFFFFFFFF:
        out.append(codes[2])
        out += n.to_bytes(4, "big")
    else:
        raise Unsupported("too long")


def _pack(obj: object, out: bytearray, left: list[int]) -> None:
    left[0] -= 1
    if left[0] < 0:
        raise Unsupported("too many items")
    t = type(obj)
    if t is str:
        data = obj.encode()
        _header(out, len(data), 0xA0, 31, (0xD9, 0xDA, 0xDB))
        out += data
    elif t is int:
        _pack_int(obj, out)
    elif obj is None:
        out.append(0xC0)
    elif t is bool:
        out.append(0xC3 if obj else 0xC2)
    elif t is dict:
        _header(out, len(obj), 0x80, 15, (0, 0xDE, 0xDF))
        for k, v in obj.items():
            _pack(k, out, left)
            _pack(v, out, left)
    elif t is list or t is tuple:
        _header(out, len(obj), 0x90, 15, (0, 0xDC, 0xDD))
        for v in obj:
            _pack(v, out, left)
    elif t is float:
        out += _pack_d(0xCB, obj)
    elif t is bytes or t is bytearray:
        _header(out, len(obj), 0, -1, (0xC4, 0xC5, 0xC6))
        out += obj
    else:
        raise Unsupported(f"cannot pack {t.__name__}")


def _pack_int(n: int, out: bytearray) -> None:
    if 0 <= n <= 0x7F or -32 <= n < 0:
        out += n.to_bytes(1, "big", signed=True)
    elif n > 0:
        for code, size in ((0xCC, 1), (0xCD, 2), (0xCE, 4), (0xCF, 8)):
            if n < 1 << (8 * size):
                out.append(code)
                out += n.to_bytes(size, "big")
                return
        raise Unsupported("integer out of range")
    else:
        for code, size in ((0xD0, 1), (0xD1, 2), (0xD2, 4), (0xD3, 8)):
            if n >= -(1 << (8 * size - 1)):
                out.append(code)
                out += n.to_bytes(size, "big", signed=True)
                return
        raise Unsupported("integer out of range")


def unpack(data: bytes) -> object:
    """The value of one msgpack message; Unsupported for an extension type, ValueError
    for a message that is cut short or followed by more bytes."""
    try:
        obj, pos = _unpack(data, 0)
    except IndexError:
        raise ValueError("truncated msgpack message") from None
    if pos != len(data):
        raise ValueError("trailing bytes after a msgpack message")
    return obj


def _unpack(data: bytes, pos: int) -> tuple[object, int]:  # noqa: C901 (one dispatch)
    b = data[pos]
    pos += 1
    if b <= 0x7F:
        return b, pos
    if b >= 0xE0:
        return b - 0x100, pos
    if 0xA0 <= b <= 0xBF:
        return _str(data, pos, b & 0x1F)
    if 0x80 <= b <= 0x8F:
        return _map(data, pos, b & 0x0F)
    if 0x90 <= b <= 0x9F:
        return _array(data, pos, b & 0x0F)
    if b == 0xC0:
        return None, pos
    if b == 0xC2:
        return False, pos
    if b == 0xC3:
        return True, pos
    fmt = _UNPACK.get(b)
    if fmt is not None:
        if pos + fmt.size > len(data):
            raise IndexError
        return fmt.unpack_from(data, pos)[0], pos + fmt.size
    if b in (0xD9, 0xDA, 0xDB, 0xC4, 0xC5, 0xC6, 0xDC, 0xDD, 0xDE, 0xDF):
        size = {0xD9: 1, 0xDA: 2, 0xDB: 4, 0xC4: 1, 0xC5: 2, 0xC6: 4,
                0xDC: 2, 0xDD: 4, 0xDE: 2, 0xDF: 4}[b]
        if pos + size > len(data):
            raise IndexError
        n = int.from_bytes(data[pos:pos + size], "big")
        pos += size
        if b >= 0xDE:
            return _map(data, pos, n)
        if b >= 0xDC:
            return _array(data, pos, n)
        if b >= 0xD9:
            return _str(data, pos, n)
        if pos + n > len(data):
            raise IndexError
        return bytes(data[pos:pos + n]), pos + n
    raise Unsupported(f"msgpack type 0x{b:02x}")


def _str(data: bytes, pos: int, n: int) -> tuple[str, int]:
    if pos + n > len(data):
        raise IndexError
    return data[pos:pos + n].decode(), pos + n


def _array(data: bytes, pos: int, n: int) -> tuple[list, int]:
    items = []
    for _ in range(n):
        v, pos = _unpack(data, pos)
        items.append(v)
    return items, pos


def _map(data: bytes, pos: int, n: int) -> tuple[dict, int]:
    d = {}
    for _ in range(n):
        k, pos = _unpack(data, pos)
        v, pos = _unpack(data, pos)
        d[k] = v
    return d, pos
