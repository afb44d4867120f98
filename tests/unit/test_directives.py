"""Tests for strato.jobspec.directives: RFC 36 submission directives in batch scripts.

Why: `strato batch` reads options from `#STRATO:`/`#FLUX:` lines, and scripts written
for Flux must give the same options as under Flux.  The shared conformance corpus
(``batch`` in STRATO_CONFORMANCE, read in place) fixes the exact directives of each valid
script and the error of each invalid one; every file is also checked with the FLUX
sentinel rewritten to STRATO.  The inline cases cover RFC rules the corpus does not.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from conftest import corpus_path, needs_corpora

from strato.jobspec.directives import Directive, directive_args, parse_directives

CORPUS = corpus_path("batch")
VALID = sorted(p for p in (CORPUS / "valid").glob("*") if p.is_file())
INVALID = sorted(p for p in (CORPUS / "invalid").glob("*") if p.is_file())


def to_strato(text: str) -> str:
    """Rewrite the Flux sentinel tags of a script (or expected output) to strato's."""
    return text.replace("FLUX", "STRATO").replace("flux", "strato")


def render(directives: list[Directive]) -> list[str]:
    return [str(d) for d in directives]


@needs_corpora
def test_corpus_present() -> None:
    assert VALID, f"no valid batch scripts under {CORPUS}"
    assert INVALID, f"no invalid batch scripts under {CORPUS}"


@pytest.mark.parametrize("substitute", [False, True], ids=["flux", "strato"])
@pytest.mark.parametrize("script", VALID, ids=lambda p: p.name)
def test_valid_corpus(script: Path, substitute: bool) -> None:
    text = script.read_text()
    expected = (CORPUS / "valid" / "expected" / f"{script.stem}.expected").read_text()
    if substitute:
        text, expected = to_strato(text), to_strato(expected)
    assert render(parse_directives(text)) == expected.splitlines()


@pytest.mark.parametrize("substitute", [False, True], ids=["flux", "strato"])
@pytest.mark.parametrize("script", INVALID, ids=lambda p: p.name)
def test_invalid_corpus(script: Path, substitute: bool) -> None:
    text = script.read_text()
    pattern = (CORPUS / "invalid" / "expected" / f"{script.stem}.pattern").read_text()
    pattern = pattern.rstrip("\n")
    if substitute:
        text, pattern = to_strato(text), to_strato(pattern)
    with pytest.raises(ValueError) as info:
        parse_directives(text)
    message = f"ValueError: {info.value}"
    assert "\n" not in str(info.value)
    assert re.search(pattern, message), f"{message!r} does not match {pattern!r}"


def parse(text: str, **kwargs: object) -> list[str]:
    return render(parse_directives(textwrap.dedent(text), **kwargs))


def error(text: str, **kwargs: object) -> str:
    with pytest.raises(ValueError) as info:
        parse_directives(textwrap.dedent(text), **kwargs)
    return str(info.value)


def test_directive_fields_and_str() -> None:
    directives = parse_directives("#!/bin/sh\n#STRATO: -N2 -n 4\n#STRATO:\nhostname\n")
    assert directives == [
        Directive("SETARGS", ["-N2", "-n", "4"], 2),
        Directive("NOOP", [], 3),
    ]
    assert str(directives[0]) == "SETARGS(['-N2', '-n', '4'])"
    assert str(directives[1]) == "NOOP([])"


def test_directive_args_concatenates_in_order() -> None:
    script = """\
        #!/bin/sh
        # strato: -N4   # nodes
        # strato: # nothing here
        # strato: --job-name='a b' --setattr=user.x=1
        srun app
        """
    assert directive_args(textwrap.dedent(script)) == [
        "-N4",
        "--job-name=a b",
        "--setattr=user.x=1",
    ]
    assert directive_args("#!/bin/sh\nhostname\n") == []


def test_lines_before_first_directive_are_ignored() -> None:
    # e.g. a Python docstring after code: only lines after the first directive count
    script = '''\
        #!/usr/bin/env python3
        import sys
        def main():
            """
            strato: -N4
            strato: --job-name="my job"

            # some data:
            strato: --setattr=user.data=\'\'\'
            strato:   x, y
            strato: \'\'\'
            """
        '''
    assert parse(script) == [
        "SETARGS(['-N4'])",
        "SETARGS(['--job-name=my job'])",
        "SETARGS(['--setattr=user.data=x, y\\n'])",
    ]


def test_indented_docstring_block_ends_at_dedented_code() -> None:
    script = '''\
        def main():
            """
            flux: -N1
            """
        main()
            flux: -n2
        '''
    assert error(script) == "line 6: orphan 'flux:' detected: directives disabled after line 4"


def test_lua_and_blank_and_bare_comment_lines() -> None:
    script = """\
        #!/usr/bin/lua
        --
        -- flux: -N1

        --
        -- a comment
        -- flux: --exclusive
        print("hi")
        """
    assert parse(script) == ["SETARGS(['-N1'])", "SETARGS(['--exclusive'])"]


def test_orphan_after_halting_line_reports_block_end() -> None:
    script = """\
        #!/bin/sh
        #STRATO: -N1
        # comment

        hostname
        #STRATO: -n2
        """
    assert error(script) == "line 6: orphan 'STRATO:' detected: directives disabled after line 4"


def test_mixing_strato_and_flux_tags_is_a_sentinel_change() -> None:
    assert error("#STRATO: -N1\n#FLUX: -n1\n") == (
        "line 2: sentinel changed from '#STRATO:' to '#FLUX:'"
    )
    assert error("# flux: -N1\n#  flux: -n1\n") == (
        "line 2: sentinel changed from '# flux:' to '#  flux:'"
    )


def test_tag_case_and_custom_sentinels() -> None:
    # RFC 36: the tag is all upper or all lower case; "Flux:" is an ordinary comment
    assert parse("# Flux: -N1\n# flux: -N2\n") == ["SETARGS(['-N2'])"]
    # only the configured tags are directives
    assert parse("#STRATO: -N1\n#FLUX: -N2\n", sentinels=("FLUX",)) == ["SETARGS(['-N2'])"]
    assert parse("#SBATCH: -N1\n", sentinels=("SBATCH",)) == ["SETARGS(['-N1'])"]
    # a word-character prefix is not a sentinel prefix
    assert parse("x# flux: -N1\nrem flux: -N2\n") == []


def test_shell_quoting_and_escapes() -> None:
    script = r"""
        # flux: --env=A="x \"y\" \$z \n" --env=B=a\ b --env=C='it''s' --env=D=""
        # flux: --output=job#1.out '#not-a-comment' # a comment
        # flux: -n\
        """
    assert error(script) == "line 4:  -n\\: No escaped character"
    script = "\n".join(script.splitlines()[:3]) + "\n"
    assert parse(script) == [
        "SETARGS(['--env=A=x \"y\" $z \\\\n', '--env=B=a b', '--env=C=its', '--env=D='])",
        "SETARGS(['--output=job#1.out', '#not-a-comment'])",
    ]


def test_empty_quoted_argument_is_kept() -> None:
    assert parse("# flux: --job-name '' -N1\n") == ["SETARGS(['--job-name', '', '-N1'])"]


def test_triple_quotes_inline() -> None:
    script = """\
        # flux: --setattr=user.foo=\"\"\"{"key": 42}\"\"\"
        # flux: --setattr=user.bar='''It's a "job" # not a comment'''
        """
    assert parse(script) == [
        "SETARGS(['--setattr=user.foo={\"key\": 42}'])",
        "SETARGS(['--setattr=user.bar=It\\'s a \"job\" # not a comment'])",
    ]


def test_multiline_literal_dedent_and_trailing_comment() -> None:
    script = '''\
        #STRATO: -N1 --setattr=user.conf="""
        #STRATO:     [a]
        #STRATO:       x = 1
        #STRATO:
        #STRATO:     y = 'z'"""   # end of the literal
        #STRATO: --setattr user.other="""
        #STRATO: """
        '''
    assert parse_directives(textwrap.dedent(script)) == [
        Directive("SETARGS", ["-N1", "--setattr=user.conf=[a]\n  x = 1\n\ny = 'z'"], 1),
        Directive("SETARGS", ["--setattr", "user.other="], 6),
    ]


def test_multiline_literal_errors() -> None:
    # every line of a multi-line literal must carry the sentinel
    script = """\
        # flux: --setattr=user.x='''
        # flux: a

        # flux: '''
        """
    assert error(script) == (
        "line 3: unterminated multi-line quote at line 1: `--setattr=user.x=''''"
    )
    # end of file inside the literal
    assert error("# flux: --x='''\n# flux: a\n") == (
        "line 2: unterminated multi-line quote at line 1: `--x=''''"
    )
    # the closing quote must end its line
    assert error("# flux: --x='''\n# flux: a''' -N1\n") == (
        "line 2: closing triple quote must be at end of line: a''' -N1"
    )


def test_unknown_directive_is_rejected() -> None:
    # RFC 36 reserves directives starting with "-" for options; no others are defined
    assert error("#!/bin/sh\n# flux: nodes=4\n") == "line 2: unknown directive: nodes=4"


def test_crlf_line_endings() -> None:
    assert parse("#!/bin/sh\r\n#FLUX: -N1\r\n#FLUX: --job-name=x\r\n") == [
        "SETARGS(['-N1'])",
        "SETARGS(['--job-name=x'])",
    ]
