"""strato bulksubmit: submit one job per input, with Flux's substitution rules.

Inputs come from ``::: a b c`` lists on the command line (several lists give
every combination) or, without any list, from stdin, one per line. In the
command and in option values, ``{}`` is the input (``{0}``, ``{1}`` ... with
several lists), ``{seq}`` its sequence number, ``{cc}`` the copy index with
--cc, and ``{.NAME}`` the value of ``--define=NAME=CODE`` (a Python expression
of the input ``x``). Every job is sent in one request: all are accepted or none.
"""

from __future__ import annotations

import itertools
import random
import shlex
import string
import sys

import click

from strato.cli.flux_command import FluxCommand
from strato.cli.submitopts import (
    build_jobspec,
    cc_ids,
    job_options,
    multi_options,
    task_options,
)

_SEPARATOR = ":::"


class _Input(str):
    """One input value; ``{.NAME}`` evaluates a --define'd expression of it."""

    defines: dict[str, str] = {}

    def __getattr__(self, name: str):
        code = self.defines.get(name)
        if code is None:
            raise AttributeError(f"no --define named '{name}'")
        return eval(code, {"__builtins__": __builtins__}, {"x": str(self)})  # noqa: S307


def read_inputs(stream, sep: str | None) -> list[str]:
    """The inputs in a file: its text split at `sep` (None: at whitespace), empty
    ones left out."""
    return [v for v in stream.read().split(sep) if v]


def split_inputs(args: list[str], sep: str | None = "\n"
                 ) -> tuple[list[str], list[list[str]], list[tuple[int, list[str]]]]:
    """The command line before the first ``:::`` (or ``::::``, ``:::+``), the input
    lists after it, and the linked lists: as in GNU parallel and Flux, ``:::: FILE``
    reads a list from FILE (``-``: stdin), and ``:::+ LIST`` is not combined with
    the others but goes along with the list before it, cycling if shorter."""
    starts = [i for i, a in enumerate(args) if a.startswith(_SEPARATOR)]
    if not starts:
        return args, [], []
    groups = [args[i:j] for i, j in zip(starts, [*starts[1:], len(args)], strict=True)]
    lists: list[list[str]] = []
    links: list[tuple[int, list[str]]] = []
    for index, (mark, *items) in enumerate(groups):
        if not items:
            raise click.UsageError(f"empty input list after {mark}")
        if mark == _SEPARATOR + ":":
            if len(items) > 1:
                raise click.UsageError(":::: takes one file name")
            try:
                if items[0] == "-":
                    items = read_inputs(sys.stdin, sep)
                else:
                    with open(items[0]) as f:
                        items = read_inputs(f, sep)
            except OSError as exc:
                raise click.UsageError(f":::: {items[0]}: {exc.strerror}") from None
        elif mark in (_SEPARATOR + "+", _SEPARATOR + ":+"):
            links.append((index, items))
            continue
        elif mark != _SEPARATOR:
            raise click.UsageError(f"unknown input separator '{mark}' (:::, ::::, :::+)")
        lists.append(items)
    return args[:starts[0]], lists, links


def combinations(lists: list[list[str]], links: list[tuple[int, list[str]]]) -> list[tuple]:
    """Every combination of the lists, each linked list's values put in at its
    place, one per combination in turn."""
    combos = [list(c) for c in itertools.product(*lists)]
    for index, values in links:
        cycle = itertools.cycle(values)
        for combo in combos:
            combo.insert(index, next(cycle))
    return [tuple(c) for c in combos]


def _fields(text: str) -> bool:
    """Whether `text` has {fields} to substitute (a malformed one counts: it is
    reported, with the input, when substitution fails)."""
    try:
        return any(name is not None for _, name, _, _ in string.Formatter().parse(text))
    except ValueError:
        return True


def substitute(text: str, inputs: tuple, seq: int) -> str:
    try:
        # {} is the (first) input and {.NAME} a --define of it: {0} and {0.NAME}
        return text.replace("{}", "{0}").replace("{.", "{0.").format(*inputs, seq=seq, seq1=seq + 1)
    except (IndexError, KeyError, AttributeError, ValueError) as exc:
        raise click.UsageError(f"cannot substitute into '{text}': {exc}") from None
    except Exception as exc:  # an error in a --define expression
        raise click.UsageError(f"--define failed on '{text}': {exc}") from None


@click.command(context_settings={"allow_interspersed_args": False,
                                 "ignore_unknown_options": True})
@click.option("--define", multiple=True, metavar="NAME=CODE",
              help="{.NAME} is CODE evaluated with x = the input.")
@click.option("--shuffle", is_flag=True, help="Submit in random order.")
@click.option("--sep", default="\\n", show_default=True, metavar="STRING",
              help="What separates inputs read from stdin or a file ('none': whitespace).")
@click.argument("args", nargs=-1, required=True, type=click.UNPROCESSED)
def bulksubmit(define, shuffle, sep, args) -> int:
    """Submit COMMAND once per input (::: LIST ... or stdin lines)."""
    from strato.cli.cmd_submit import submit_many_jobspecs

    defines = {}
    for d in define:
        name, sep, code = d.partition("=")
        if not sep or not name.isidentifier():
            raise click.BadParameter(f"invalid define '{d}'", param_hint="--define")
        defines[name] = code
    _Input.defines = defines
    try:
        sep = sep.encode().decode("unicode_escape")
    except UnicodeDecodeError:
        raise click.BadParameter(f"invalid separator '{sep}'", param_hint="--sep") from None
    if not sep:
        raise click.BadParameter("empty separator", param_hint="--sep")
    split_at = None if sep.lower() == "none" else sep
    template, lists, links = split_inputs(list(args), split_at)
    if not lists:
        if sys.stdin.isatty():
            raise click.UsageError("no inputs: give ::: lists or pipe them on stdin")
        lists = [read_inputs(sys.stdin, split_at)]
        if not lists[0]:
            raise click.UsageError("no inputs on stdin")
    combos = [tuple(_Input(v) for v in combo) for combo in combinations(lists, links)]
    # Parse the options once when none of their values has a {field}; else per input.
    try:
        o0 = _parse(template)
        head = template[: len(template) - len(o0["command"])]
        per_input = any(_fields(a) for a in head)
    except click.ClickException:
        o0, per_input = None, True
    jobspecs = []
    shown = []
    for seq, inputs in enumerate(combos):
        if per_input:
            o = _parse([substitute(a, inputs, seq) for a in template])
            command = list(o["command"])
            o0 = o0 or o
        else:
            o = o0
            command = [substitute(a, inputs, seq) for a in o0["command"]]
        if o["dry_run"]:
            shown.append("bulksubmit: submit " + shlex.join(command))
            continue
        jobspecs.append(build_jobspec(command, o))
    if shown:
        click.echo("\n".join(shown))
        return 0
    if shuffle:
        random.shuffle(jobspecs)
    cc, count = cc_ids(o0)
    return submit_many_jobspecs(jobspecs, o0, cc, count)


@click.command(cls=FluxCommand, context_settings={"allow_interspersed_args": False})
@job_options
@task_options
@multi_options
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def _options_only(command, **o) -> None:
    """The option set of bulksubmit, parsed (for each input) without running."""


def _parse(argv: list[str]) -> dict:
    return _options_only.make_context("bulksubmit", list(argv)).params
