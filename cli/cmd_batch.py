"""strato batch: submit a batch script, with its ``#STRATO:``/``#FLUX:`` directives.

Directives (RFC 36) in the script are options too: they are read before the
command line's, so the command line wins. The script travels in the jobspec
(``attributes.system.files.script``); the job shell writes it to the job's
temporary directory and runs it once. (Running it as a nested instance that
schedules the batch job's own jobs comes with hierarchical instances.)
"""

from __future__ import annotations

import sys

import click

from strato.cli.submitopts import apply_options, job_options, multi_options

_state = {"probing": False}


def _read_script(path: str | None) -> str:
    if path in (None, "-"):
        if sys.stdin.isatty():
            raise click.UsageError("no script given (name a file or pipe one on stdin)")
        return sys.stdin.read()
    try:
        with open(path) as f:
            return f.read()
    except OSError as exc:
        raise click.BadParameter(f"cannot read {path}: {exc.strerror}",
                                 param_hint="SCRIPT") from None
    except UnicodeDecodeError:
        raise click.BadParameter(f"{path} is not a text file", param_hint="SCRIPT") from None


class BatchCommand(click.Command):
    """Parses the command line twice: once to find the script, then again with
    the script's directives in front of the user's own arguments."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if _state["probing"]:
            return super().parse_args(ctx, args)
        _state["probing"] = True
        try:
            probe = self.make_context(ctx.info_name, list(args), parent=ctx.parent)
        finally:
            _state["probing"] = False
        script = probe.params.get("script")
        text = _read_script(script)
        from strato.jobspec.directives import directive_args

        try:
            extra = directive_args(text)
        except ValueError as exc:
            raise click.UsageError(f"{script or 'stdin'}: {exc}") from None
        ctx.meta["strato.batch.script"] = text
        # directives first: the same option on the command line overrides them
        return super().parse_args(ctx, extra + list(args))


def batch_jobspec(script_text: str, args: tuple, o: dict) -> dict:
    """The jobspec of a batch job from the shared options (see JobspecV1)."""
    from strato.cli.submitopts import shape
    from strato.jobspec.model import JobspecV1

    nslots, common = shape(o)
    try:
        js = JobspecV1.from_batch_command(
            script_text, args, num_slots=nslots, cores_per_slot=o["cores_per_task"],
            gpus_per_slot=o["gpus_per_task"], name=o["job_name"] or "batch", **common)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if not o["output"]:
        o = dict(o, output="strato-{{id}}.out")
    apply_options(js, o)
    return js.jobspec


@click.command(cls=BatchCommand, context_settings={"allow_interspersed_args": False})
@job_options
@multi_options
@click.argument("script", required=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def batch(script, args, **o) -> int:
    """Submit SCRIPT (or stdin) as a batch job; -n counts slots, not tasks."""
    from strato.cli.cmd_submit import submit_and_follow

    text = click.get_current_context().meta["strato.batch.script"]
    return submit_and_follow(batch_jobspec(text, args, o), o)
