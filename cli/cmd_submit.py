"""strato submit and strato run: build a jobspec from a command line and submit it.

The options (see `strato.cli.submitopts`) are Flux's, so a Flux user's habits
work; ``--cc=1-1000`` submits a thousand copies in one request, and ``--wait``
follows all of them on one stream.
"""

from __future__ import annotations

import sys

import click

from strato.cli.flux_command import FluxCommand
from strato.cli.submitopts import (
    build_jobspec,
    cc_ids,
    job_options,
    multi_options,
    parse_flags,
    parse_urgency,
    run_options,
    task_options,
)


class _Logs:
    """Where --log and --log-stderr send job ids and error messages (a file named
    by both is opened once), else stdout and stderr."""

    def __init__(self, o: dict) -> None:
        self.files: dict[str, object] = {}
        self.out = self._open(o.get("log")) or sys.stdout
        self.err = self._open(o.get("log_stderr")) or (self.out if o.get("log") else sys.stderr)

    def _open(self, path: str | None):
        if not path:
            return None
        if path not in self.files:
            try:
                self.files[path] = open(path, "w", buffering=1)  # noqa: SIM115
            except OSError as exc:
                raise click.BadParameter(f"{path}: {exc.strerror}", param_hint="--log") from None
        return self.files[path]

    def close(self) -> None:
        for f in self.files.values():
            f.close()


def submit_and_follow(js: dict, o: dict) -> int:
    """Submit `js` (as often as --cc/--bcc say) and do --wait/--watch/--progress."""
    cc, count = cc_ids(o)
    if o["dry_run"]:
        import json

        click.echo(json.dumps(js))
        return 0
    urgency, flags = parse_urgency(o["urgency"]), parse_flags(o["flags"])
    from strato import job as jobapi
    from strato.handle import Handle

    return _logged(o, lambda h: jobapi.submit_many(h, js, count, urgency, flags, cc), Handle)


def _logged(o: dict, submit, make_handle) -> int:
    """Submit (``submit(handle)`` gives the ids) and follow, with --log/--log-stderr
    receiving what would go to the terminal, errors included."""
    from strato.core.errors import StratoError

    logs = _Logs(o)
    try:
        h = make_handle()
        return _follow(h, submit(h), o, logs)
    except StratoError as exc:
        if logs.err is sys.stderr:
            raise
        logs.err.write(f"strato-submit: {exc}\n")
        return exc.exit_code
    finally:
        logs.close()


def submit_many_jobspecs(jobspecs: list[dict], o: dict, cc: list[int] | None,
                         count: int) -> int:
    """Submit different jobspecs in one request (each `count` times, for --cc)."""
    urgency, flags = parse_urgency(o["urgency"]), parse_flags(o["flags"])
    from strato import job as jobapi
    from strato.handle import Handle

    return _logged(o, lambda h: jobapi.submit_list(
        h, [js for js in jobspecs for _ in range(count)], urgency, flags,
        None if cc is None else cc * len(jobspecs)), Handle)


def _follow(h, jobids: list[int], o: dict, logs: _Logs) -> int:
    """Print the ids, then do what --watch, --progress, --wait-event or --wait ask."""
    from strato import job as jobapi
    from strato.core.ids import f58

    if not o["quiet"]:
        logs.out.write("".join(f58(i) + "\n" for i in jobids))
        logs.out.flush()
    if o["watch"]:
        from strato.cli.attach import attach_stream

        rc = 0
        for jobid in jobids:
            stream = jobapi.event_watch(h, jobid, output=True)
            rc = max(rc, attach_stream(h, jobid, stream, "strato-submit", o["label_io"]))
        return rc
    if o["progress"]:
        return _progress(h, jobids, o["jps"])
    event = o.get("wait_event")
    if event and event != "clean":
        return _wait_event(h, jobids, event, logs)
    if not o["wait"] and not event:
        return 0
    rc = 0
    for res in jobapi.wait_all(h, jobids):
        if not res.success:
            rc = max(rc, res.returncode or 1)
    return rc


def _wait_event(h, jobids: list[int], name: str, logs: _Logs) -> int:
    """--wait-event=NAME: until every job has posted NAME; 1 if one ended without it."""
    from strato import job as jobapi
    from strato.core.errors import StratoError
    from strato.core.ids import f58

    rc = 0
    for jobid in jobids:
        try:
            jobapi.event_wait(h, jobid, name)
        except StratoError as exc:
            logs.err.write(f"strato-submit: {f58(jobid)}: {exc}\n")
            rc = 1
    return rc


def _progress(h, jobids: list[int], show_jps: bool) -> int:
    from strato import job as jobapi
    from strato import queue as queueapi
    from strato.cli.progress import Progress

    bar = Progress(len(jobids), show_jps)
    complete = failed = 0
    rc = 0
    for batch in jobapi.wait_stream(h, jobids):
        for res in batch:
            if res.success:
                complete += 1
            else:
                failed += 1
                rc = max(rc, res.returncode or 1)
        more = complete + failed < len(jobids)  # one result per job: the last batch ends it
        if bar.due() or not more:
            counts = {}
            if more:
                for q in queueapi.status(h)["queues"]:
                    for state, n in q["counts"].items():
                        counts[state] = counts.get(state, 0) + n
            running = counts.get("RUN", 0) + counts.get("CLEANUP", 0)
            pending = len(jobids) - complete - failed - running
            bar.update(max(pending, 0), running, complete, failed, final=not more)
    return rc


@click.command(cls=FluxCommand, context_settings={"allow_interspersed_args": False})
@job_options
@task_options
@multi_options
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def submit(command, **o) -> int:
    """Submit COMMAND as a job and print its id."""
    return submit_and_follow(build_jobspec(command, o), o)


@click.command(cls=FluxCommand, context_settings={"allow_interspersed_args": False})
@job_options
@task_options
@run_options
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(command, **o) -> int:
    """Run COMMAND as a job, stream its output, and exit with its exit code."""
    from strato.cli.runjob import run_job

    return run_job(command, o)
