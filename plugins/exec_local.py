"""exec-local: runs a job's tasks as real processes through this node's shell host.

The shell host is a process of its own (`strato.shell.host`), started by this
backend once the instance's initial program runs (or by the first job, if that
comes first) and supervised by it: if it dies, the jobs it
ran end with an ``exec`` exception and a new one is started for the next job.
Starts that arrive before the host has said hello wait for it. With virtual nodes
in R every task still runs on this machine, which is what lets a laptop test a
thousand-node layout with real processes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import select
import signal
import socket
import sys

from strato.core.errors import RPCError
from strato.core.hookspecs import hookimpl

log = logging.getLogger("strato.exec-local")

#: how long a stopping instance waits for its shell host to kill its tasks and exit
HOST_EXIT_TIMEOUT = 5.0


class LocalExec:
    """Exec backend ``local`` (see module docstring)."""

    name = "local"

    def __init__(self, service, config: dict) -> None:
        self.service = service
        self.broker = service.broker
        self.loop = asyncio.get_running_loop()
        self.pid = 0
        self.ready = False
        self.stopping = False
        self.running: set[int] = set()
        # jobid -> the process groups of its tasks, from the host's start event: if
        # the host dies, its tasks are killed from here instead of living on
        self.groups: dict[int, list[int]] = {}
        self._starts: list[dict] = []
        self.broker.register("exec.host-hello", self._hello)
        self.broker.register("exec.host-events", self._host_events)

    def warm_up(self) -> None:
        """Start the shell host now, before any job asks for it (the instance calls
        this once its initial program is running, so the two start side by side)."""
        if not self.pid:
            self._spawn_host()

    # -- the shell host process ------------------------------------------------------------
    def _spawn_host(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        argv = [sys.executable, "-m", "strato.shell.host", "shell-host",
                "--fd", "3", "--rank", str(self.broker.rank)]
        # stdout goes nowhere: only the broker's initial program owns the terminal's
        # output, and a pipe held open by the host would outlive the broker. The
        # host has a process group of its own, so that when this broker's group is
        # killed (its job in a parent cancelled) the host lives to kill its tasks.
        devnull = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
        try:
            self.pid = os.posix_spawn(sys.executable, argv, dict(os.environ),
                                      file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 1),
                                                    (os.POSIX_SPAWN_DUP2, theirs.fileno(), 3)],
                                      setsigdef=(signal.SIGINT, signal.SIGTERM),
                                      setpgroup=0)
        finally:
            os.close(devnull)
            theirs.close()
        pid = self.pid
        self.link = self.broker.add_link(ours, f"shell-host.{pid}".encode(),
                                         lambda: self._host_gone(pid))
        self.service.reaper.watch(pid, lambda status: self._host_exited(pid, status))

    def _host_gone(self, pid: int) -> None:
        """The link closed: the host stopped answering (its exit status comes later)."""
        if pid == self.pid:
            self.ready = False

    def _hello(self, req) -> None:
        body = req.body or {}
        if body.get("pid") != self.pid or body.get("rank") != self.broker.rank:
            raise RPCError("exec.host-hello from a process that is not this node's shell host",
                           "EPERM")
        self.ready = True
        req.respond({"config": self.service.config, "uri": self.service.uri,
                     "rundir": str(self.service.rundir)})
        self._request_flush()

    def _host_exited(self, pid: int, status: int) -> None:
        if pid != self.pid:
            return
        self.pid = 0
        self.ready = False
        self.link.close()
        self.broker.drop_provider("shell-host")
        if self.stopping:
            return
        code = os.waitstatus_to_exitcode(status)
        why = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        if self.running or self._starts:
            log.error("the shell host exited (%s); ending its jobs", why)
        self._kill_groups()
        for body in self._starts:
            self.running.add(body["id"])
        self._starts = []
        for jobid in sorted(self.running):
            self.service.event(jobid, "exception",
                               {"type": "exec", "note": f"the shell host exited ({why})"})
            self.service.event(jobid, "finish", {"status": signal.SIGKILL})
        self.running.clear()

    # -- exec backend ------------------------------------------------------------------
    def start(self, job) -> None:
        if not self.pid:
            self._spawn_host()
        self._starts.append(job.wire())
        self._request_flush()

    def _request_flush(self) -> None:
        self.broker.defer(self._flush)

    def _flush(self) -> None:
        if not self.ready or not self._starts:
            return
        starts, self._starts = self._starts, []
        for body in starts:
            self.running.add(body["id"])
        self.broker.send("shell-host.start", {"jobs": starts})

    def kill(self, jobid: int, signum: int) -> None:
        for i, body in enumerate(self._starts):
            if body["id"] == jobid:  # not on the host yet: it never starts
                del self._starts[i]
                self.service.event(jobid, "finish", {"status": signum})
                return
        if jobid in self.running and self.ready:
            self.broker.send("shell-host.kill", {"id": jobid, "signum": signum})

    def _host_events(self, req) -> None:
        events = (req.body or {}).get("events")
        if not isinstance(events, list):
            raise RPCError("exec.host-events needs a list of events")
        for ev in events:
            if not isinstance(ev, dict) or ev.get("name") not in ("start", "exception",
                                                                   "finish"):
                log.warning("dropped a malformed shell host event: %.200r", ev)
                continue
            jobid = ev.get("id")
            if jobid not in self.running:
                continue
            ctx = ev.get("context")
            ctx = dict(ctx) if isinstance(ctx, dict) else None
            if ev["name"] == "finish":
                self.running.discard(jobid)
                self.groups.pop(jobid, None)
            elif ev["name"] == "start" and ctx is not None:
                pgids = ctx.pop("pgids", None)
                if isinstance(pgids, list):
                    self.groups[jobid] = [g for g in pgids if isinstance(g, int) and g > 1]
                ctx = ctx or None
            self.service.event(jobid, ev["name"], ctx)
        req.respond()  # nothing is sent for the host's one-way batches

    def shutdown(self) -> None:
        """Stop the shell host, which kills every task it still runs, and wait for
        it to exit (a few seconds at most), so that nothing of this instance
        outlives its broker: a parent sees a child's job end only after that."""
        self.stopping = True
        if not self.pid:
            return
        self.link.close()  # the host sees the end of file and stops
        try:
            fd = os.pidfd_open(self.pid)
            os.kill(self.pid, signal.SIGTERM)
        except OSError:  # already gone
            return
        try:
            if not select.select([fd], [], [], HOST_EXIT_TIMEOUT)[0]:
                log.error("the shell host did not exit in %gs; killing it", HOST_EXIT_TIMEOUT)
                os.kill(self.pid, signal.SIGKILL)
                self._kill_groups()
        finally:
            os.close(fd)

    def _kill_groups(self) -> None:
        """SIGKILL the tasks of every job the host ran: it is gone, and they would
        outlive it, still holding resources their jobs no longer have."""
        groups, self.groups = self.groups, {}
        for pgid in (g for pgids in groups.values() for g in pgids):
            try:
                os.killpg(pgid, signal.SIGKILL)
            except OSError:
                pass

    def stats(self) -> dict:
        return {"pid": self.pid, "state": "running" if self.ready else
                ("starting" if self.pid else "stopped"), "running": len(self.running)}


@hookimpl
def exec_register_backends(register):
    register("local", LocalExec)
