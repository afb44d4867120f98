"""What ``strato run`` does once its options are parsed: build the jobspec, submit
it and follow the job on one stream, printing its output.

No click here, so that ``strato run CMD...`` without options can skip click
altogether (`fast_run`, called by `strato.cli.script`): click's import is about a
third of such a command's time (docs/performance.md). ``strato run`` with options
is click's command (`strato.cli.cmd_submit.run`), which calls `run_job` too.
"""

from __future__ import annotations

import sys

from strato import job as jobapi
from strato.cli.attach import attach_stream
from strato.cli.submitopts import (
    JOB_OPTIONS,
    RUN_OPTIONS,
    TASK_OPTIONS,
    build_jobspec,
    defaults,
    parse_flags,
    parse_urgency,
)
from strato.core.ids import f58
from strato.handle import Handle


def run_job(command: tuple | list, o: dict) -> int:
    """Run `command` as a job with the options `o` (as click passes them); returns
    the job's exit code."""
    urgency = parse_urgency(o["urgency"])
    flags = parse_flags(o["flags"])
    js = build_jobspec(command, o)
    if o["dry_run"]:
        import json

        print(json.dumps(js))
        return 0
    h = Handle()
    if o["wait_event"] and o["wait_event"] not in ("finish", "clean"):
        jobid = jobapi.submit(h, js, urgency, flags)
        if o["verbose"]:
            print(f"jobid: {f58(jobid)}", file=sys.stderr)
        jobapi.event_wait(h, jobid, o["wait_event"])
        return 0
    jobid, stream = jobapi.submit_and_watch(h, js, urgency, flags, output=True)
    if o["verbose"]:
        print(f"jobid: {f58(jobid)}", file=sys.stderr)
    return attach_stream(h, jobid, stream, "strato-run", o["label_io"])


def fast_run(command: list[str]) -> int:
    """``strato run COMMAND`` with every option at its default, without click;
    errors as `strato.cli.main.main` reports them (one line, its exit code)."""
    from strato.core.errors import StratoError

    try:
        return run_job(command, defaults(JOB_OPTIONS + TASK_OPTIONS + RUN_OPTIONS))
    except StratoError as exc:
        print(f"strato-run: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 141
    except Exception as exc:
        click = sys.modules.get("click")  # loaded by an error path of the options
        if click is not None and isinstance(exc, click.ClickException):
            print(f"strato-run: {exc.format_message()}", file=sys.stderr)
            return exc.exit_code
        raise
