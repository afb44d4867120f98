"""Property tests of job ids (RFC 19): any text parses to an id in 0..2**64-1 or fails
with a one-line ValueError, and every form round-trips.

Why: users type job ids in every form (f58, dec, hex, dothex, kvs, words); a typo must
give "invalid job id", never another error.
"""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st
from prop_checks import parse_or_error

from strato.core import ids

jobids = st.integers(0, ids.MAX_JOBID)
id_text = st.text(alphabet="0123456789abcdefxABCDEF.-ƒjob", max_size=40) | st.text(max_size=40)


@given(id_text)
@example("ƒ" + "z" * 11)  # over 2**64
@example("job.ffff.ffff.ffff.fffg")
@example("0x" + "f" * 17)
@example("zzzzz-zzzzz-zzzzz--zzzzz-zzzzz-zzzzz")
def test_parse_any_text(text: str) -> None:
    ok, value = parse_or_error(ids.parse, text)
    if ok:
        assert 0 <= value <= ids.MAX_JOBID
    else:
        assert str(value).startswith("invalid job id ")


@given(jobids, st.sampled_from(ids.FORMS))
def test_every_form_round_trips(jobid: int, form: str) -> None:
    text = ids.encode(jobid, form)
    assert ids.parse(text) == jobid
    assert ids.parse(f"  {text}\n") == jobid  # surrounding whitespace is ignored
    if form == "words":
        assert ids.parse(text.upper()) == jobid
    if form == "f58":
        assert ids.parse("f" + text[1:]) == jobid  # the ASCII prefix


@given(jobids)
def test_fields_rebuild_the_id(jobid: int) -> None:
    ts, gen, seq = ids.fields(jobid)
    assert ts << (ids.GENERATOR_BITS + ids.SEQUENCE_BITS) | gen << ids.SEQUENCE_BITS | seq \
        == jobid
