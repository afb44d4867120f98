"""Property tests of RFC 22 idsets: any text decodes to a sorted set of ids or fails
with a one-line ValueError, and encoding round-trips.

Why: idsets arrive from users (--cc, constraints, drain targets) and from configs; a
string that crashed or hung the decoder would take down whatever read it.
"""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st
from prop_checks import parse_or_error

from strato.jobspec.idset import MAX_IDS, decode_idset, encode_idset

# mostly the characters of idsets, so that the parser goes deep, plus anything at all
idset_text = st.text(alphabet="0123456789,-[] ", max_size=30) | st.text(max_size=30)


@given(idset_text)
@example("0-" + "9" * 12)  # would be 10**12 ids: refused, not allocated
@example("1" * 5000)  # over int()'s 4300-digit limit: still the module's own message
@example("[" + "0-3," * 10 + "5]")
def test_decode_any_text(text: str) -> None:
    ok, ids = parse_or_error(decode_idset, text)
    if ok:
        assert ids == sorted(set(ids))
        assert all(isinstance(i, int) and i >= 0 for i in ids)
        assert len(ids) <= MAX_IDS
    else:
        assert str(ids).startswith("invalid idset ")


@given(st.sets(st.integers(0, 10**6), max_size=50), st.booleans())
def test_encode_decode_round_trip(ids: set[int], brackets: bool) -> None:
    text = encode_idset(ids, brackets=brackets)
    assert decode_idset(text) == sorted(ids)
    assert encode_idset(decode_idset(text), brackets=brackets) == text


@given(st.lists(st.integers(0, 10**4) | st.integers(max_value=-1) | st.booleans()
                | st.floats() | st.text(max_size=3), max_size=10))
def test_encode_any_ids(values: list) -> None:
    ok, text = parse_or_error(encode_idset, values)
    if ok:
        assert decode_idset(text) == sorted(set(values))
