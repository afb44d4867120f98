"""Submission directives embedded in batch scripts (RFC 36).

A *submission directive* is a line that starts with a prefix of non-alphanumeric
characters followed by a tag such as ``FLUX:`` or ``flux:`` (strato also accepts
``STRATO:``/``strato:``).  The prefix plus tag is the *directive sentinel*, e.g.
``#FLUX:``, ``# flux:``, ``-- flux:`` (Lua) or ``    flux:`` (inside an indented Python
docstring).  The rules implemented here, all from RFC 36:

* A sentinel matches ``^([^\\w]*)(TAG):`` where TAG is a sentinel word in upper or lower
  case (``FLUX``/``flux``; ``Flux:`` is not a directive).
* Every directive in a script uses the same sentinel as the first one; a different one
  is an error (``sentinel changed``).
* Lines before the first directive are ignored.  After it, directive processing halts
  at the first non-blank line that does not start with the first directive's prefix
  (trailing whitespace of the prefix aside, so a bare ``#`` or ``--`` line continues
  the block); a directive found after that is an error (``orphan``).
* The text after the sentinel is split with POSIX shell quoting.  An unquoted ``#`` at
  the start of a word begins a comment that runs to the end of the line.
* Triple-quoted strings (``'''...'''`` or ``\"\"\"...\"\"\"``) are literal: they may
  contain both kinds of quote and ``#`` without escaping.  A triple quote at the end of
  a line opens a multi-line literal: every following line must begin with the sentinel,
  the newline after the opening quote is dropped, the closing quote must end its line,
  and the common indentation of the literal's lines is removed.
* Directives whose first word starts with ``-`` are options for the submitting command
  (``SETARGS``).  A directive with no words (only the sentinel, or only a comment) is a
  ``NOOP``.  Any other directive is reserved by the RFC and rejected here.

Errors raise :class:`ValueError` with a one-line message that starts ``line N: ``.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = [
    "DEFAULT_SENTINELS",
    "Directive",
    "directive_args",
    "parse_directives",
]

DEFAULT_SENTINELS: tuple[str, ...] = ("STRATO", "FLUX")

SETARGS = "SETARGS"
NOOP = "NOOP"

_TRIPLE_QUOTES = ("'''", '"""')
# characters a backslash escapes inside double quotes (POSIX shell)
_DQUOTE_ESCAPABLE = '"\\$`'


@dataclass(frozen=True)
class Directive:
    """One submission directive: ``kind`` (SETARGS or NOOP), its ``args`` and the
    1-based ``lineno`` of the line where it starts."""

    kind: str
    args: list[str] = field(default_factory=list)
    lineno: int = 0

    def __str__(self) -> str:
        return f"{self.kind}({self.args!r})"


class _QuoteError(Exception):
    """A shell quoting error; the message is the bare reason (shlex wording)."""


@dataclass
class _Pending:
    """A triple-quoted literal left open at the end of a directive line."""

    quote: str
    tokens: list[str]
    word: str
    lineno: int
    opener: str  # the opening directive text, for error messages
    lines: list[str] = field(default_factory=list)


def _split(text: str) -> tuple[list[str], str | None, str | None]:
    """Split one directive's text into words with POSIX shell quoting plus triple quotes.

    Returns ``(tokens, None, None)`` when the text is complete, or ``(tokens, word, quote)`` when
    a triple quote opened at the end of the text is still open.  Raises
    :class:`_QuoteError` for an unclosed ordinary quote or a trailing backslash, and
    :class:`ValueError` (without line number) for an unclosed triple quote that is not at
    the end of the text.
    """
    tokens: list[str] = []
    word: str | None = None
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t\r\n\f\v":
            if word is not None:
                tokens.append(word)
                word = None
            i += 1
        elif c == "#" and word is None:
            break  # comment to end of line
        elif text.startswith(_TRIPLE_QUOTES, i):
            quote = text[i : i + 3]
            end = text.find(quote, i + 3)
            if end < 0:
                if text[i + 3 :].strip():
                    raise ValueError(f"unclosed triple quote: {text.strip()}")
                return tokens, word or "", quote
            word = (word or "") + text[i + 3 : end]
            i = end + 3
        elif c == "'":
            end = text.find("'", i + 1)
            if end < 0:
                raise _QuoteError("No closing quotation")
            word = (word or "") + text[i + 1 : end]
            i = end + 1
        elif c == '"':
            i += 1
            buf = []
            while True:
                if i >= n:
                    raise _QuoteError("No closing quotation")
                c = text[i]
                if c == '"':
                    i += 1
                    break
                if c == "\\" and i + 1 < n and text[i + 1] in _DQUOTE_ESCAPABLE:
                    buf.append(text[i + 1])
                    i += 2
                else:
                    buf.append(c)
                    i += 1
            word = (word or "") + "".join(buf)
        elif c == "\\":
            if i + 1 >= n:
                raise _QuoteError("No escaped character")
            word = (word or "") + text[i + 1]
            i += 2
        else:
            word = (word or "") + c
            i += 1
    if word is not None:
        tokens.append(word)
    return tokens, None, None


def _make_directive(tokens: list[str], lineno: int, text: str) -> Directive:
    if not tokens:
        return Directive(NOOP, [], lineno)
    if not tokens[0].startswith("-"):
        raise ValueError(f"line {lineno}: unknown directive: {text.strip()}")
    return Directive(SETARGS, tokens, lineno)


def _sentinel_regex(sentinels: Iterable[str]) -> re.Pattern[str]:
    if isinstance(sentinels, str):
        sentinels = (sentinels,)
    tags: list[str] = []
    for name in sentinels:
        name = name.rstrip(":")
        if not name or not re.fullmatch(r"\w+", name):
            raise ValueError(f"invalid directive sentinel tag: {name!r}")
        for form in (name.upper(), name.lower()):
            if form not in tags:
                tags.append(form)
    if not tags:
        raise ValueError("no directive sentinel tags given")
    # longest first so that no tag shadows another one it is a prefix of
    alternation = "|".join(re.escape(t) for t in sorted(tags, key=len, reverse=True))
    return re.compile(rf"^([^\w]*)({alternation}):")


# characters that end a line for str.splitlines (and for a terminal), besides "\n"
_LINE_BREAKS = re.compile("[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


def parse_directives(script: str, sentinels: Iterable[str] = DEFAULT_SENTINELS) -> list[Directive]:
    """Return the RFC 36 submission directives of ``script``, in order.

    ``sentinels`` are the accepted tag words (each in upper or lower case).  Raises
    :class:`ValueError` (``line N: ...``) for a changed sentinel, an orphan directive,
    a quoting error, an unterminated multi-line literal or an unknown directive.
    The message is one line: a line break inside a script line (a lone ``\r``, a
    vertical tab) is shown escaped.
    """
    try:
        return _parse(script, sentinels)
    except ValueError as exc:
        message = _LINE_BREAKS.sub(lambda m: repr(m.group())[1:-1], str(exc))
        raise ValueError(message) from None


def _parse(script: str, sentinels: Iterable[str]) -> list[Directive]:
    regex = _sentinel_regex(sentinels)
    lines = script.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # text after the final newline is not a line

    result: list[Directive] = []
    sentinel: str | None = None  # exact prefix+tag of the first directive
    prefix = ""
    halted_at: int | None = None  # line number that stopped directive processing
    pending: _Pending | None = None

    for lineno, raw in enumerate(lines, start=1):
        line = raw[:-1] if raw.endswith("\r") else raw

        if pending is not None:
            # inside a multi-line triple-quoted literal: every line needs the sentinel
            assert sentinel is not None
            if not line.startswith(sentinel):
                raise ValueError(
                    f"line {lineno}: unterminated multi-line quote at line "
                    f"{pending.lineno}: `{pending.opener.strip()}'"
                )
            text = line[len(sentinel) :]
            end = text.find(pending.quote)
            if end < 0:
                pending.lines.append(text)
                continue
            pending.lines.append(text[:end])
            rest = text[end + 3 :]
            if rest.strip() and not rest.strip().startswith("#"):
                raise ValueError(
                    f"line {lineno}: closing triple quote must be at end of line: {text.strip()}"
                )
            value = textwrap.dedent("\n".join(pending.lines))
            tokens = [*pending.tokens, pending.word + value]
            result.append(_make_directive(tokens, pending.lineno, pending.opener))
            pending = None
            continue

        match = regex.match(line)
        if match is None:
            if sentinel is not None and halted_at is None:
                if line.strip() and not line.startswith(prefix):
                    halted_at = lineno
            continue

        if sentinel is None:
            sentinel = match.group(0)
            # a bare comment marker ("#", "--") continues the block too, so compare
            # without the whitespace that separates the marker from the tag; an
            # all-whitespace prefix (indented docstring) is compared as it is
            prefix = match.group(1).rstrip() or match.group(1)
        elif halted_at is not None:
            raise ValueError(
                f"line {lineno}: orphan '{match.group(2)}:' detected: "
                f"directives disabled after line {halted_at - 1}"
            )
        elif match.group(0) != sentinel:
            raise ValueError(
                f"line {lineno}: sentinel changed from '{sentinel}' to '{match.group(0)}'"
            )

        text = line[match.end() :]
        try:
            tokens, word, quote = _split(text)
        except _QuoteError as exc:
            raise ValueError(f"line {lineno}: {text}: {exc}") from None
        except ValueError as exc:
            raise ValueError(f"line {lineno}: {exc}") from None
        if quote is not None:
            assert word is not None
            pending = _Pending(quote, tokens, word, lineno, text)
            continue
        result.append(_make_directive(tokens, lineno, text))

    if pending is not None:
        raise ValueError(
            f"line {len(lines)}: unterminated multi-line quote at line "
            f"{pending.lineno}: `{pending.opener.strip()}'"
        )
    return result


def directive_args(script: str, sentinels: Iterable[str] = DEFAULT_SENTINELS) -> list[str]:
    """All SETARGS arguments of ``script`` concatenated in order: the options that
    ``strato batch`` puts before its own command-line options."""
    args: list[str] = []
    for directive in parse_directives(script, sentinels):
        if directive.kind == SETARGS:
            args.extend(directive.args)
    return args
