"""strato job ... and strato cancel: inspect and control individual jobs."""

from __future__ import annotations

import json
import signal
import sys

import click

from strato.cli.common import JOBID, format_event, handle
from strato.core.errors import StratoError


@click.command()
@click.option("--all", "all_jobs", is_flag=True, help="Cancel every active job.")
@click.option("-m", "--message", default="", help="Reason, recorded in the exception note.")
@click.argument("jobids", nargs=-1, type=JOBID)
def cancel(all_jobs, message, jobids) -> int:
    """Cancel JOBIDS (a severity 0 exception of type cancel)."""
    from strato import job as jobapi

    if not jobids and not all_jobs:
        raise click.UsageError("no job ids given (use --all to cancel every active job)")
    h = handle()
    if all_jobs:
        # one at a time: a job that ends meanwhile is not an error
        for r in jobapi.list_jobs(h, states=jobapi.ACTIVE):
            try:
                jobapi.cancel(h, r["id"], message)
            except StratoError as exc:
                if "inactive" not in str(exc):
                    raise
        return 0
    jobapi.cancel(h, jobids, message)
    return 0


@click.group()
def job() -> None:
    """Inspect and control one job."""


@job.command()
@click.option("-l", "--label-io", is_flag=True, help="Prefix lines with the task rank.")
@click.argument("jobid", type=JOBID)
def attach(label_io, jobid) -> int:
    """Print a job's output (live if it runs) and exit with its exit code."""
    from strato.cli.attach import attach_stream
    from strato.job import event_watch

    h = handle()
    return attach_stream(h, jobid, event_watch(h, jobid, output=True), "strato-job",
                         label_io)


@job.command()
@click.argument("jobid", type=JOBID)
def wait(jobid) -> int:
    """Wait for a job to end; exit 0 if it completed successfully."""
    from strato import job as jobapi
    from strato.core.ids import f58

    res = jobapi.wait(handle(), jobid)
    if not res.success:
        if res.exception:  # a cancel may have no note: then its type says it
            why = res.exception["note"] or f"{res.exception['type']} exception"
        else:
            why = f"exit code {res.returncode}"
        click.echo(f"strato-job: {f58(jobid)}: {res.result.lower()}: {why}", err=True)
        return 1
    return 0


@job.command()
@click.argument("jobids", nargs=-1, required=True, type=JOBID)
def status(jobids) -> int:
    """Wait for jobs and exit with the largest of their exit codes."""
    from strato import job as jobapi

    rc = 0
    for res in jobapi.wait_all(handle(), list(jobids)):
        rc = max(rc, res.returncode if res.status is not None else (0 if res.success else 1))
    return rc


@job.command("wait-event")
@click.option("-t", "--timeout", type=float, help="Give up after this many seconds.")
@click.option("-q", "--quiet", is_flag=True, help="Do not print the event.")
@click.option("-m", "--match-context", metavar="KEY=VAL", help="Also match a context value.")
@click.argument("jobid", type=JOBID)
@click.argument("event")
def wait_event(timeout, quiet, match_context, jobid, event) -> int:
    """Wait for EVENT to be posted to a job's eventlog."""
    from strato import job as jobapi

    h = handle()
    context = None
    if match_context:
        key, sep, val = match_context.partition("=")
        if not sep:
            raise click.BadParameter("expected KEY=VAL", param_hint="--match-context")
        context = {key: val}
    try:
        entry = jobapi.event_wait(h, jobid, event, timeout=timeout, context=context)
    except TimeoutError:
        raise StratoError(f"wait-event timeout on event '{event}'") from None
    if not quiet:
        click.echo(format_event(entry))
    return 0


@job.command()
@click.option("-f", "--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              help="text: one event a line; json: one JSON object a line.")
@click.argument("jobid", type=JOBID)
@click.argument("name", default="eventlog", type=click.Choice(["eventlog", "output"]))
def eventlog(fmt, jobid, name) -> int:
    """Print a job's eventlog (or its output eventlog)."""
    from strato import job as jobapi

    for e in jobapi.eventlog(handle(), jobid, name):
        click.echo(json.dumps(e) if fmt == "json" else format_event(e))
    return 0


@job.command()
@click.argument("jobid", type=JOBID)
@click.argument("key", type=click.Choice(["jobspec", "R", "eventlog"]))
def info(jobid, key) -> int:
    """Print a job's jobspec, R or eventlog as JSON."""
    from strato import job as jobapi

    value = jobapi.info(handle(), jobid)[key]
    if value is None:
        raise StratoError(f"{key} is not available (the job has no allocation)")
    if key == "eventlog":
        for e in value:
            click.echo(json.dumps(e))
    else:
        click.echo(json.dumps(value))
    return 0


@job.command()
@click.argument("jobid", type=JOBID)
@click.argument("value")
def urgency(jobid, value) -> int:
    """Set a pending job's urgency (0-31, hold, default, expedite)."""
    from strato import job as jobapi
    from strato.cli.submitopts import parse_urgency

    jobapi.urgency(handle(), jobid, parse_urgency(value, "'VALUE'"))
    return 0


def _signum(text: str) -> int:
    name = text.upper()
    if name.isdigit():
        num = int(name)
    else:
        if not name.startswith("SIG"):
            name = "SIG" + name
        try:
            num = int(signal.Signals[name])
        except KeyError:
            raise click.BadParameter(f"invalid signal '{text}'", param_hint="-s") from None
    if not 0 < num < 65:
        raise click.BadParameter(f"invalid signal '{text}'", param_hint="-s")
    return num


@job.command()
@click.option("-s", "--signal", "sig", default="TERM", help="Signal name or number.")
@click.argument("jobids", nargs=-1, required=True, type=JOBID)
def kill(sig, jobids) -> int:
    """Send a signal to the tasks of running jobs."""
    from strato import job as jobapi

    jobapi.kill(handle(), jobids, _signum(sig))
    return 0


@job.command("cancel")
@click.option("-m", "--message", default="", help="Reason, recorded in the exception note.")
@click.argument("jobids", nargs=-1, required=True, type=JOBID)
def job_cancel(message, jobids) -> int:
    """Cancel jobs."""
    from strato import job as jobapi

    jobapi.cancel(handle(), jobids, message)
    return 0


@job.command("raise")
@click.option("-t", "--type", "etype", default="cancel", show_default=True,
              help="Exception type (a word, e.g. cancel, timeout, test).")
@click.option("-s", "--severity", type=click.IntRange(0, 7), default=0, show_default=True,
              help="0 (fatal: the job ends) to 7; non-zero is only recorded.")
@click.option("-m", "--message", default="", help="Note recorded with the exception.")
@click.argument("jobids", nargs=-1, required=True, type=JOBID)
def job_raise(etype, severity, message, jobids) -> int:
    """Raise an exception on jobs."""
    from strato import job as jobapi

    jobapi.raise_exception(handle(), jobids, etype, severity, message)
    return 0


@job.command()
@click.argument("text")
def id(text) -> int:  # noqa: A001 - the Flux verb
    """Convert a job id to every form."""
    from strato.core.ids import FORMS, encode, parse

    try:
        jobid = parse(text)
    except ValueError as exc:
        raise StratoError(str(exc)) from None
    for form in FORMS:
        sys.stdout.write(f"{form:>7} {encode(jobid, form)}\n")
    return 0


@job.command("submit")
@click.option("--urgency", default="16", metavar="N", help="0-31, or hold/default/expedite.")
@click.option("--flags", metavar="LIST", help="Comma-separated: waitable, debug.")
@click.argument("file", default="-")
def job_submit(urgency, flags, file) -> int:
    """Submit a jobspec file (YAML or JSON; '-' for stdin) as it is."""
    from strato import job as jobapi
    from strato.cli.submitopts import parse_flags, parse_urgency
    from strato.core.ids import f58
    from strato.jobspec.canonical import load_jobspec
    from strato.jobspec.model import JobspecError

    try:
        text = sys.stdin.read() if file == "-" else open(file).read()
    except OSError as exc:
        raise StratoError(f"cannot read {file}: {exc.strerror}") from None
    try:
        js = load_jobspec(text, "stdin" if file == "-" else file)
    except JobspecError as exc:
        raise StratoError(str(exc)) from None
    jobid = jobapi.submit(handle(), js, urgency=parse_urgency(urgency),
                          flags=parse_flags(flags))
    click.echo(f58(jobid))
    return 0


class _Duration(click.ParamType):
    """An RFC 23 duration (``30m``, ``7d``), in seconds."""

    name = "FSD"

    def convert(self, value, param, ctx):
        from strato.jobspec.fsd import parse_fsd

        try:
            return parse_fsd(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


@job.command()
@click.option("--age-limit", type=_Duration(), metavar="FSD",
              help="Purge jobs inactive for longer than FSD (e.g. 7d).")
@click.option("--num-limit", type=click.IntRange(min=0), metavar="COUNT",
              help="Purge the oldest inactive jobs until COUNT are left.")
@click.option("-f", "--force", is_flag=True,
              help="Purge for good (without it, only say how many would go).")
@click.option("--batch", type=click.IntRange(min=1), default=50, show_default=True,
              metavar="COUNT", help="Jobs purged per request (at most 1000).")
@click.argument("jobids", nargs=-1, type=JOBID)
def purge(age_limit, num_limit, force, batch, jobids) -> int:
    """Purge inactive jobs: JOBIDS, or the oldest ones beyond --age-limit or
    --num-limit. They disappear from job lists, the KVS and the statedir."""
    from strato import job as jobapi

    if jobids and (age_limit is not None or num_limit is not None):
        raise click.UsageError("give job ids or --age-limit/--num-limit, not both")
    res = jobapi.purge(handle(), jobids, age_limit=age_limit, num_limit=num_limit,
                       force=force, batch=batch)
    if force:
        click.echo(f"purged {res.count} inactive jobs, {res.inactive} remaining")
    else:
        click.echo(f"use --force to purge {res.count} of {res.inactive} inactive jobs")
    return 0


def _attach_validate() -> None:
    from strato.cli.cmd_validate import validate

    job.add_command(validate, "validate")


_attach_validate()


def _attach_timeline() -> None:
    from strato.cli.cmd_timeline import timeline

    job.add_command(timeline, "timeline")


_attach_timeline()
