"""Following a job to its end: print its output live, report how it ended.

Shared by ``strato run`` and ``strato job attach``. A first ^C cancels the job
(like Flux), after which the stream still runs to the job's end.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

from strato.core.ids import f58


def _label(rank: str, data: str) -> str:
    lines = data.split("\n")
    last = lines.pop()
    out = "".join(f"{rank}: {ln}\n" for ln in lines)
    return out + (f"{rank}: {last}" if last else "")


def attach_stream(h, jobid: int, stream: Iterator[dict], prog: str,
                  label: bool = False) -> int:
    """Consume an events stream (with output); returns the job's exit code.

    With `label`, each output line is prefixed with its task rank (--label-io).
    """
    out, err = sys.stdout, sys.stderr
    status = None
    exception = None
    canceled = False
    while True:
        try:
            for msg in stream:
                entry = msg["entry"]
                name = entry["name"]
                if msg["log"] == "output":
                    if name == "data":
                        ctx = entry["context"]
                        f = out if ctx["stream"] == "stdout" else err
                        data = ctx.get("data", "")
                        f.write(_label(ctx["rank"], data) if label else data)
                        f.flush()
                elif name == "finish":
                    status = entry["context"]["status"]
                elif name == "exception" and entry["context"]["severity"] == 0:
                    exception = entry["context"]
            break
        except KeyboardInterrupt:
            if canceled:
                raise
            canceled = True
            err.write(f"{prog}: ^C: cancelling job {f58(jobid)}\n")
            from strato import job as jobapi

            try:
                jobapi.cancel(h, jobid, "interrupted")
            except Exception:
                pass
            from strato.job import event_watch

            stream = event_watch(h, jobid, output=False)
    if exception is not None:
        err.write(f"{prog}: job {f58(jobid)}: {exception['type']}: {exception['note']}\n")
    if status is None:
        return 1 if exception else 0
    if status & 0x7F:
        sig = status & 0x7F
        if exception is None:
            err.write(f"{prog}: task(s) killed by signal {sig}\n")
        return 128 + sig
    code = (status >> 8) & 0xFF
    if code and exception is None:
        err.write(f"{prog}: task(s) exited with exit code {code}\n")
    return code if code or exception is None else 1
