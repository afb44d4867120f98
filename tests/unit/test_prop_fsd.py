"""Property tests of RFC 23 durations: any text parses to seconds (>= 0) or fails with
a one-line ValueError, quickly, and a formatted duration parses back.

Why: durations come from users (-t, config timeouts); a long junk string once took the
regular expression quadratic time (20,000 digits: 30 s).
"""

from __future__ import annotations

import math

from hypothesis import example, given
from hypothesis import strategies as st
from prop_checks import parse_or_error

from strato.jobspec.fsd import format_fsd, parse_fsd

fsd_text = st.text(alphabet="0123456789.eE+-smhdinfty ", max_size=20) | st.text(max_size=20)


@given(fsd_text)
@example("1" * 20000 + "x")  # backtracking: was quadratic in the number of digits
@example("1" * 20000 + "." + "1" * 20000 + "x")
@example("1e999")
def test_parse_any_text(text: str) -> None:
    ok, seconds = parse_or_error(parse_fsd, text)
    if ok:
        assert isinstance(seconds, float) and seconds >= 0 and not math.isnan(seconds)
    else:
        assert str(seconds).startswith("invalid duration ")


@given(st.floats(min_value=0, allow_nan=False))
def test_format_parse_round_trip(seconds: float) -> None:
    back = parse_fsd(format_fsd(seconds))
    assert back == seconds or math.isclose(back, seconds, rel_tol=1e-5)


@given(st.floats() | st.integers() | st.text(max_size=5) | st.none())
def test_format_any_value(value) -> None:
    parse_or_error(format_fsd, value)
