"""What every property test of a parser checks: an input either parses or fails with
the parser's documented error and a one-line message (shared by tests/unit/test_prop_*.py).

Any other exception propagates and fails the test; a hang fails it by pytest-timeout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

#: JSON values (what a decoded jobspec, config or message body can hold)
json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=4),
    max_leaves=20,
)


def one_line(message: str) -> bool:
    """A message a user sees on one line: not empty, no line break of any kind."""
    return bool(message) and message.splitlines() == [message]


def parse_or_error(fn: Callable[..., Any], *args: Any,
                   error: type[BaseException] | tuple = ValueError) -> tuple[bool, Any]:
    """``(True, result)`` if ``fn(*args)`` parses, ``(False, exc)`` if it raises `error`
    with a one-line message; anything else fails the test."""
    try:
        return True, fn(*args)
    except error as exc:
        assert one_line(str(exc)), f"not a one-line message: {str(exc)!r}"
        return False, exc
