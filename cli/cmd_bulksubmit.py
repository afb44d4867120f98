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

from strato.cli.submitopts import (
    FluxCommand,
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


def split_inputs(args: list[str]) -> tuple[list[str], list[list[str]]]:
    """The command line before the first ``:::`` and the input lists after it."""
    if _SEPARATOR not in args:
        return args, []
    i = args.index(_SEPARATOR)
    lists: list[list[str]] = []
    for arg in args[i:]:
        if arg == _SEPARATOR:
            lists.append([])
        else:
            lists[-1].append(arg)
    if any(not lst for lst in lists):
        raise click.UsageError("empty input list after :::")
    return args[:i], lists


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
@click.argument("args", nargs=-1, required=True, type=click.UNPROCESSED)
def bulksubmit(define, shuffle, args) -> int:
    """Submit COMMAND once per input (::: LIST ... or stdin lines)."""
    from strato.cli.cmd_submit import submit_many_jobspecs

    defines = {}
    for d in define:
        name, sep, code = d.partition("=")
        if not sep or not name.isidentifier():
            raise click.BadParameter(f"invalid define '{d}'", param_hint="--define")
        defines[name] = code
    _Input.defines = defines
    template, lists = split_inputs(list(args))
    if not lists:
        if sys.stdin.isatty():
            raise click.UsageError("no inputs: give ::: lists or pipe them on stdin")
        lists = [[ln.rstrip("\n") for ln in sys.stdin if ln.strip()]]
        if not lists[0]:
            raise click.UsageError("no inputs on stdin")
    combos = [tuple(_Input(v) for v in combo) for combo in itertools.product(*lists)]
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
