"""The small pure-Python msgpack codec agrees with msgspec, byte for byte."""

from __future__ import annotations

import math
import subprocess
import sys

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from strato.core import msgpack_lite, proto

scalars = (st.none() | st.booleans() | st.integers(-(1 << 63), (1 << 64) - 1)
           | st.floats(allow_nan=False) | st.text() | st.binary())
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=20)
                      | st.dictionaries(st.text(), inner, max_size=20), max_leaves=60)


@given(values)
def test_pack_is_msgspecs_encoding(value):
    assert msgpack_lite.pack(value, budget=10**6) == msgspec.msgpack.encode(value)


@given(values)
def test_unpack_reads_msgspecs_encoding(value):
    assert msgpack_lite.unpack(msgspec.msgpack.encode(value)) == value


@pytest.mark.parametrize("n", [15, 16, 255, 256, 65535, 65536])
def test_lengths_at_each_header_boundary(n):
    for value in ("x" * n, b"x" * n, list(range(n)), {str(i): i for i in range(n)}):
        data = msgspec.msgpack.encode(value)
        assert msgpack_lite.pack(value, budget=10**6) == data
        assert msgpack_lite.unpack(data) == value


def test_float32_and_nan_are_read():
    assert msgpack_lite.unpack(b"\xca\x3f\x80\x00\x00") == 1.0
    assert math.isnan(msgpack_lite.unpack(msgspec.msgpack.encode(float("nan"))))


def test_left_to_msgspec():
    with pytest.raises(msgpack_lite.Unsupported):
        msgpack_lite.pack(list(range(100)), budget=50)
    with pytest.raises(msgpack_lite.Unsupported):
        msgpack_lite.pack({1, 2})
    with pytest.raises(msgpack_lite.Unsupported):
        msgpack_lite.pack(1 << 64)
    with pytest.raises(msgpack_lite.Unsupported):
        msgpack_lite.unpack(msgspec.msgpack.encode(msgspec.msgpack.Ext(1, b"x")))
    # proto falls back, so callers see no difference
    assert proto.decode(proto.encode_small(list(range(5000)))) == list(range(5000))
    assert proto.decode_small(msgspec.msgpack.encode(msgspec.msgpack.Ext(1, b"x"))) \
        == msgspec.msgpack.Ext(1, b"x")


@pytest.mark.parametrize("bad", [b"", b"\x92\x01", b"\xa3ab", b"\x01\x02", b"\xc1"])
def test_bad_messages_raise_msgspecs_error(bad):
    with pytest.raises(msgspec.DecodeError):
        proto.decode_small(bad)


def test_a_small_exchange_does_not_import_msgspec():
    code = ("import sys\nfrom strato.core import proto\n"
            "m = proto.decode_small(proto.request('a.b', 1, {'x': [1, 2.5, None]}, small=True))\n"
            "assert m == [0, 'a.b', 1, {'x': [1, 2.5, None]}, 0], m\n"
            "assert 'msgspec' not in sys.modules\n"
            "proto.encode_small(['x' * 100] * 3000)  # over the item budget\n"
            "assert 'msgspec' in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)
