"""Property tests of RFC 36 batch directives: any script gives a list of directives or
fails with a one-line ValueError ``line N: ...``; directives written from a list of
arguments read back as those arguments.

Why: `strato batch` reads every script a user hands it; a script must never crash the
reader or print an error over several lines.
"""

from __future__ import annotations

import shlex

from hypothesis import example, given
from hypothesis import strategies as st
from prop_checks import parse_or_error

from strato.jobspec.directives import NOOP, SETARGS, directive_args, parse_directives

PIECES = ["#FLUX:", "# flux:", "#STRATO:", "-- flux:", "    flux:", "#", "", " -N1", " -n 4",
          " --job-name=x", " '", ' "', " '''", ' """', " \\", " # c", " a b", "\r", "\t",
          "\x0b", "\u2028", "hostname", "#!/bin/sh"]
script_lines = st.lists(st.lists(st.sampled_from(PIECES), max_size=4).map("".join), max_size=8)
scripts = script_lines.map("\n".join) | st.text(max_size=60)


@given(scripts)
@example("#FLUX: -n 'a\rb")  # the text of the line was printed raw: a line break
@example("#FLUX: -N1\n\x0b#FLUX: -N2")  # a changed sentinel with a vertical tab in it
@example("#FLUX: --x='''\n#FLUX: a\u2028b")
def test_parse_any_script(script: str) -> None:
    ok, directives = parse_or_error(parse_directives, script)
    if ok:
        assert all(d.kind in (SETARGS, NOOP) for d in directives)
    else:
        assert str(directives).startswith("line ")


# what a user puts in an option: no quotes (shlex.quote would write them in a way RFC 36
# triple quotes read differently), but blanks, "#", "$", backslashes and the like
ARG_CHARS = "abcXYZ019 -=_./$\\`#*?[]{}!@%^&()<>|;:~"


@given(st.lists(st.lists(st.text(alphabet=ARG_CHARS, min_size=1, max_size=8),
                         min_size=1, max_size=4), max_size=4))
def test_written_directives_read_back(args_per_line: list[list[str]]) -> None:
    lines = ["#!/bin/sh", "# a comment"]
    expected: list[str] = []
    for args in args_per_line:
        args = ["--opt", *args]
        lines.append("#FLUX: " + " ".join(shlex.quote(a) for a in args))
        expected += args
    lines.append("hostname")
    assert directive_args("\n".join(lines) + "\n") == expected
