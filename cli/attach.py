"""Following a job to its end: print its output live, report how it ended.

Shared by ``strato run`` and ``strato job attach``. A first ^C cancels the job
(like Flux), after which the stream still runs to the job's end.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

from strato.core.ids import f58


class _Labeler:
    """Prefix output lines with their task rank. A partial line waits for its end
    (or the end of the job), so lines of different tasks never interleave."""

    def __init__(self) -> None:
        self.partial: dict[tuple[str, str], str] = {}

    def __call__(self, stream: str, rank: str, data: str) -> str:
        key = (stream, rank)
        data = self.partial.pop(key, "") + data
        cut = data.rfind("\n") + 1
        if cut < len(data):
            self.partial[key] = data[cut:]
        return "".join(f"{rank}: {ln}\n" for ln in data[:cut].splitlines())

    def rest(self, stream: str) -> str:
        """Whatever partial lines remain on `stream`, labelled, at the end."""
        keys = sorted(k for k in self.partial if k[0] == stream)
        return "".join(f"{k[1]}: {self.partial.pop(k)}\n" for k in keys)


def attach_stream(h, jobid: int, stream: Iterator[dict], prog: str,
                  label: bool = False) -> int:
    """Consume an events stream (with output); returns the job's exit code.

    With `label`, each output line is prefixed with its task rank (--label-io).
    """
    out, err = sys.stdout, sys.stderr
    labeler = _Labeler()
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
                        f.write(labeler(ctx["stream"], ctx["rank"], data) if label else data)
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
    if label:
        out.write(labeler.rest("stdout"))
        err.write(labeler.rest("stderr"))
        out.flush()
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
