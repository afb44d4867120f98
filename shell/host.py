"""The shell host: a long-lived process per node running each job's shell as a coroutine.

Started and supervised by its node's broker (exec backend ``local``); its command
line names it ``shell-host``. It owns everything about tasks: spawning (one
``posix_spawn`` each, with the task's cwd, rlimits and environment), reaping (one
SIGCHLD handler, ``waitpid(-1)`` for this process only), signals and output, so
the broker process holds no task-related process-wide state. No new Python
interpreter starts for a job.

It reaches the broker only by messages over its `Connector` (one end of a
socketpair the broker made when it started the host):

- at start: ``service.add {service: "shell-host"}``, then ``exec.host-hello
  {rank, pid}``, whose answer carries the instance config (for shell plugins),
  URI and rundir;
- requests it serves: ``shell-host.start {jobs: [{id, jobspec, R, userid, cc}]}``
  and ``shell-host.kill {id, signum}`` (both one-way);
- what it sends, batched per event-loop turn: ``kvs.commit`` with the appends to
  each job's ``guest.output`` and ``exec.eventlog`` (``shell.init``,
  ``shell.start``, ``complete {status}``), one append per key and turn, then
  ``exec.host-events {events: [{id, name, context}]}`` with ``start {pgids}``
  (the tasks' process groups, which the broker kills should this host die),
  ``exception {type, note}`` and ``finish {status}``. Output is sent before
  the events of the same turn, so a job's output is in the KVS before its
  ``finish``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
import time

from strato.core import gcpolicy
from strato.core.connector import Connector
from strato.core.exec import ExecJob
from strato.shell.shell import JobShell
from strato.shell.spawn import Reaper, release_signals, spawn

log = logging.getLogger("strato.shell-host")


class ShellHost:
    """Starts, signals and reports on the job shells of one node."""

    def __init__(self, conn: Connector, rank: int) -> None:
        self.conn = conn
        self.rank = rank
        self.loop = asyncio.get_running_loop()
        self.reaper = Reaper(self.loop)
        self.devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        self.shells: dict[int, JobShell] = {}
        self.spawn = spawn
        self.hook = None
        self.uri = ""
        self.rundir = ""
        self._appends: dict[str, list] = {}  # KVS key -> entries to append this turn
        self._events: list[dict] = []
        self._flush_scheduled = False
        conn.serve("shell-host.start", self._start)
        conn.serve("shell-host.kill", self._kill)

    async def hello(self) -> None:
        """Register the service, then learn the instance's config from the broker."""
        from strato.core.plugins import make_plugin_manager

        await self.conn.rpc("service.add", {"service": "shell-host"})
        info = await self.conn.rpc("exec.host-hello", {"rank": self.rank, "pid": os.getpid()})
        self.uri = info["uri"]
        self.rundir = info["rundir"]
        self.hook = make_plugin_manager(info["config"]).hook

    # -- what goes to the broker ---------------------------------------------------------
    def _request_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._appends:
            appends, self._appends = self._appends, {}
            self.conn.send("kvs.commit", {"ops": [["append", key, entries]
                                                  for key, entries in appends.items()]})
        if self._events:
            events, self._events = self._events, []
            self.conn.send("exec.host-events", {"events": events})

    def append(self, key: str, entries: list) -> None:
        """Append entries to a KVS list (a job's output or exec eventlog), batched."""
        pending = self._appends.get(key)
        if pending is None:
            self._appends[key] = list(entries)
        else:
            pending.extend(entries)
        self._request_flush()

    def exec_event(self, job: ExecJob, name: str, context: dict | None = None) -> None:
        """Record a shell event in the job's ``exec.eventlog``."""
        entry = {"timestamp": time.time(), "name": name}
        if context is not None:
            entry["context"] = context
        self.append(job.kvsdir + ".exec.eventlog", [entry])

    def event(self, jobid: int, name: str, context: dict | None = None) -> None:
        """Report ``start``, ``exception`` or ``finish`` of a job to exec."""
        self._events.append({"id": jobid, "name": name, "context": context})
        self._request_flush()

    # -- requests ------------------------------------------------------------------------
    def _start(self, req) -> None:
        for body in req.body["jobs"]:
            try:
                job = ExecJob(body)
            except Exception as exc:
                jobid = body.get("id") if isinstance(body, dict) else None
                log.warning("cannot start job %s: %s", jobid, exc)
                if isinstance(jobid, int):
                    self.event(jobid, "exception", {"type": "exec",
                                                    "note": f"job shell: bad start: {exc}"})
                    self.event(jobid, "finish", {"status": 1 << 8})
                continue
            shell = JobShell(self, job)
            self.shells[job.id] = shell
            self.loop.create_task(self._run(shell))

    async def _run(self, shell: JobShell) -> None:
        job = shell.job
        try:
            status = await shell.run()
        except Exception as exc:
            log.exception("job shell failed")
            shell.write_output("stderr", 0, f"strato-shell: {exc}\n")
            self.event(job.id, "exception", {"type": "exec", "note": f"job shell: {exc}"})
            status = 1 << 8
        finally:
            shell.cleanup()
        self.shells.pop(job.id, None)
        self.exec_event(job, "complete", {"status": status})
        self.event(job.id, "finish", {"status": status})

    def _kill(self, req) -> None:
        shell = self.shells.get(req.body.get("id"))
        if shell is not None:
            shell.kill(req.body.get("signum", signal.SIGTERM))

    def kill_all(self) -> None:
        """SIGKILL every task of every job (the instance is going away)."""
        for shell in list(self.shells.values()):
            shell.kill(signal.SIGKILL)


async def _main(fd: int, rank: int) -> None:
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    host: ShellHost | None = None

    def stop() -> None:
        # The broker is gone or asks us to stop (a later issue lets jobs outlive
        # their broker; today they end with it).
        if host is not None:
            host.kill_all()
        if not done.done():
            done.set_result(None)

    os.set_inheritable(fd, False)  # the broker link is the host's, never a task's
    conn = Connector(socket.socket(fileno=fd), on_lost=stop)
    host = ShellHost(conn, rank)
    loop.add_signal_handler(signal.SIGTERM, stop)
    loop.add_signal_handler(signal.SIGINT, lambda: None)
    hello = loop.create_task(host.hello())
    await asyncio.wait([hello, done], return_when=asyncio.FIRST_COMPLETED)
    if hello.done() and hello.exception() is not None:
        log.error("hello to the broker failed: %s", hello.exception())
        stop()
    await done
    hello.cancel()
    conn.close()
    host.reaper.close()
    release_signals(loop, signal.SIGTERM, signal.SIGINT)


def main(argv: list[str] | None = None) -> int:
    """``python -m strato.shell.host shell-host --fd N --rank R`` (started by exec-local
    with its end of a socketpair as fd N)."""
    parser = argparse.ArgumentParser(prog="shell-host")
    parser.add_argument("name", choices=["shell-host"])
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--rank", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING,
                        format=f"shell-host[{args.rank}]: %(levelname)s %(message)s")
    gcpolicy.tune_service()
    asyncio.run(_main(args.fd, args.rank))
    return 0


if __name__ == "__main__":
    code = main()
    # Everything is stopped and flushed: skip the interpreter's teardown, which
    # the instance waits for when it shuts down (tens of milliseconds).
    logging.shutdown()
    sys.stdout.flush()
    os._exit(code)
