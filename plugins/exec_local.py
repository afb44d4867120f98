"""exec-local: runs a job's tasks as real processes through this node's shell host.

The shell host is a process of its own (`strato.shell.host`), started by this
backend once the instance's initial program runs (or by the first job, if that
comes first) and supervised by it: if it dies, the jobs it
ran end with an ``exec`` exception and a new one is started for the next job.
Starts that arrive before the host has said hello wait for it. With virtual nodes
in R every task still runs on this machine, which is what lets a laptop test a
thousand-node layout with real processes.

With a statedir (`strato.core.hostlink`) the host outlives its broker: a broker
that stops leaves it running its jobs, and a broker that starts on the statedir
re-adopts it before the job manager recovers, so the jobs that were running are
reattached (`reattach`) and what the host did meanwhile is replayed to them.
Every host message carries a sequence number that is recorded in the KVS with
its effects; the host keeps what is not yet acknowledged, so across a crash
nothing it sent is lost or applied twice. A job that no host holds any more
ends with a ``node-failure`` exception.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import select
import signal
import socket
import sys

from strato.core import hostlink, ids, proto
from strato.core.errors import RPCError
from strato.core.exec import recorded_groups
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
        # on a broker of rank > 0 (no KVS of its own) the host's KVS operations go
        # to rank 0's KVS: as a kvs.commit, or, with a statedir, whole batches with
        # their sequence (`strato.core.exec_ranks`), which rank 0 records
        self.kvs = service.kvs
        self.statedir = service.statedir
        self.uid = os.getuid()
        # the last host message recorded (in the KVS, with its effects) and acknowledged
        self.seq_key = f"shell-host.{self.broker.rank}-{self.uid}.seq"
        self.applied = self.acked = 0
        self.adopted: dict[int, list[int]] | None = None  # jobs a re-adopted host holds
        self.adopt_error: str | None = None  # why a host the statedir names was not
        self.broker.register("exec.host-hello", self._hello)
        self.broker.register("exec.host-batch", self._host_batch)
        if self.statedir is not None:
            if self.kvs is not None:
                seq = self.kvs.get(self.seq_key)
                self.applied = self.acked = seq if isinstance(seq, int) else 0
                self.kvs.on_flush.append(self._ack)
            # (rank > 0: the host replays all it keeps; rank 0 skips what it recorded)
            self._adopt(service.adopt_timeout)

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
        if self.service.keep_running:
            argv += ["--statedir", str(self.statedir)]
        if self.statedir is not None and self.kvs is not None:
            self.applied = self.acked = 0  # a new host numbers its messages from 1
            self.kvs.put_quiet(self.seq_key, 0)
        # stdin and stdout go nowhere: only the broker's initial program owns the
        # terminal, and a pipe held open by the host would outlive the broker. The
        # host has a process group of its own, so that when this broker's group is
        # killed (its job in a parent cancelled) the host lives to kill its tasks.
        devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            self.pid = os.posix_spawn(sys.executable, argv, dict(os.environ),
                                      file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 0),
                                                    (os.POSIX_SPAWN_DUP2, devnull, 1),
                                                    (os.POSIX_SPAWN_DUP2, theirs.fileno(), 3)],
                                      setsigdef=(signal.SIGINT, signal.SIGTERM),
                                      setpgroup=0)
        finally:
            os.close(devnull)
            theirs.close()
        self._attach_host(self.pid, ours)
        if self.statedir is not None and self.kvs is None:
            self.service.host_changed(self.pid)  # rank 0 counts its messages from 1

    def attach_host(self, pid: int, sock: socket.socket) -> None:
        """Take a shell host started for this broker, instead of spawning one when
        the first job comes (a ``--test-size`` broker forks its own: see
        `strato.core.peer.fork_shell_host`). `sock` is the broker's end of its link."""
        self._attach_host(pid, sock)
        self.service.reaper.reap()  # it may have ended before it was watched

    def _attach_host(self, pid: int, sock: socket.socket) -> None:
        self.pid = pid
        self.link = self.broker.add_link(sock, f"shell-host.{pid}".encode(),
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

    def _host_exited(self, pid: int, status: int | None) -> None:
        """The host is gone (`status` is None for a re-adopted host: not our child)."""
        if pid != self.pid:
            return
        self.pid = 0
        self.ready = False
        self.link.close()
        self.broker.drop_provider("shell-host")
        if self.stopping:
            return
        if status is None:
            why = "no longer answering"
        else:
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

    def _host_batch(self, req) -> None:
        """``exec.host-batch {seq, ops, events}``: one turn of the host's work (module
        docstring of `strato.shell.host`)."""
        body = req.body
        if not isinstance(body, dict):
            raise RPCError("exec.host-batch needs a mapping")
        events = body.get("events", [])
        if not isinstance(events, list):
            raise RPCError("exec.host-batch needs a list of events")
        if self.kvs is None and self.statedir is not None:
            self._forward(req, body, events)
            return
        ops = body.get("ops")
        if ops and self.kvs is None:
            self.broker.send("kvs.commit", {"ops": ops})
        elif ops:
            try:
                self.kvs.commit(ops)
            except RPCError as exc:
                log.warning("dropped the shell host's output: %s", exc)
        for ev in events:
            name = ev.get("name") if type(ev) is dict else None
            if name not in ("start", "exception", "finish"):
                log.warning("dropped a malformed shell host event: %.200r", ev)
                continue
            jobid = ev.get("id")
            if jobid not in self.running:
                continue
            ctx = ev.get("context")
            ctx = dict(ctx) if type(ctx) is dict else None
            if name == "finish":
                self.running.discard(jobid)
                self.groups.pop(jobid, None)
            elif name == "start" and ctx is not None:
                pgids = ctx.pop("pgids", None)
                if type(pgids) is list:
                    self.groups[jobid] = [g for g in pgids if type(g) is int and g > 1]
                ctx = ctx or None
            self.service.event(jobid, name, ctx)
        seq = body.get("seq") if self.statedir is not None else None
        if isinstance(seq, int) and seq > self.applied \
                and self.pid and req.sender == self.link.ident:
            # The events' effects (the job manager's eventlog entries) are made now,
            # so that the KVS records them in the same transaction as the sequence.
            self.broker.run_deferred()
            self.applied = seq
            self.kvs.put_quiet(self.seq_key, seq)
        req.respond()  # nothing is sent for the host's one-way batches

    def _forward(self, req, body: dict, events: list) -> None:
        """(rank > 0 with a statedir) Note what the batch says of this node's jobs,
        then hand it whole to rank 0, which applies it and records its sequence."""
        if not self.pid or req.sender != self.link.ident:
            req.respond()
            return
        for ev in events:
            if not isinstance(ev, dict):
                continue
            jobid, ctx = ev.get("id"), ev.get("context")
            if ev.get("name") == "finish":
                self.running.discard(jobid)
                self.groups.pop(jobid, None)
                if self.adopted is not None:
                    self.adopted.pop(jobid, None)
            elif ev.get("name") == "start" and isinstance(ctx, dict) \
                    and isinstance(ctx.get("pgids"), list):
                self.groups[jobid] = [g for g in ctx["pgids"] if isinstance(g, int) and g > 1]
        self.service.forward_batch(self.pid, body)
        req.respond()

    def host_ack(self, pid: int, seq: int) -> None:
        """(rank > 0) Rank 0 has recorded host `pid`'s messages up to `seq`."""
        if pid == self.pid and pid and not self.link.stream.closed:
            self.link.write(proto.request("shell-host.ack", 0, {"seq": seq},
                                          proto.FLAG_NORESPONSE))

    def drop_adopted(self, keep: set[int]) -> None:
        """(rank > 0) Kill the jobs a re-adopted host holds that the instance no longer
        runs (they ended while this broker was lost): rank 0 says which to keep."""
        if not self.adopted or not self.pid or self.link.stream.closed:
            return
        for jobid in [j for j in self.adopted if j not in keep]:
            del self.adopted[jobid]
            self.running.discard(jobid)
            log.warning("killing job %s: the instance ended it while this broker was away",
                        ids.f58(jobid))
            self.link.write(proto.request("shell-host.kill", 0,
                                          {"id": jobid, "signum": signal.SIGKILL},
                                          proto.FLAG_NORESPONSE))

    def _ack(self) -> None:
        """The KVS has flushed: tell the host what it may forget."""
        if self.applied > self.acked and self.pid and not self.link.stream.closed:
            self.acked = self.applied
            self.link.write(proto.request("shell-host.ack", 0, {"seq": self.applied},
                                          proto.FLAG_NORESPONSE))

    # -- re-adoption after a restart -----------------------------------------------------------
    def _adopt(self, timeout: float) -> None:
        """Re-adopt the shell host the statedir names, if there is one (module docstring)."""
        record = hostlink.endpoint_file(self.statedir, self.broker.rank, self.uid)
        try:
            info = json.loads(record.read_text())
            pid, path = info["pid"], info["socket"]
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self.adopt_error = f"its record {record} is unreadable ({exc})"
            log.error("cannot re-adopt the shell host of rank %d: %s", self.broker.rank,
                      self.adopt_error)
            return
        try:
            sock, answer = hostlink.adopt(path, hostlink.read_secret(self.statedir),
                                          self.applied, timeout)
        except (ConnectionRefusedError, FileNotFoundError):
            self.adopt_error = f"shell host pid {pid} is gone"
        except (hostlink.HandshakeError, OSError, ValueError) as exc:
            self.adopt_error = f"shell host pid {pid}: {exc}"
        else:
            self.pid = answer["pid"]
            self.adopted = {int(k): [g for g in v if isinstance(g, int) and g > 1]
                            for k, v in answer["jobs"].items() if str(k).isdigit()
                            and isinstance(v, list)}
            pid = self.pid
            self.link = self.broker.add_link(sock, f"shell-host.{pid}".encode(),
                                             lambda: self._host_exited(pid, None))
            return
        log.error("cannot re-adopt the shell host of rank %d: %s", self.broker.rank,
                  self.adopt_error)
        if _is_our_host(pid, self.statedir):
            os.kill(pid, signal.SIGKILL)  # it holds nothing we can reach any more
        try:
            record.unlink()
        except OSError:
            pass

    def reattach(self, job, started: bool, t_run: float,
                 groups: set[int] | None = None) -> None:
        """A job that was running when the instance stopped: the re-adopted host
        holds it (its events follow), or it never reached a host (start it now),
        or it is lost with the host that ran it, and what is left of its tasks is
        killed. `groups`: their process groups, as the job's exec eventlog records
        them (`recorded_groups`), read here if None; a broker of rank > 0, which
        keeps no KVS, is sent them by rank 0 (`strato.core.exec_ranks`)."""
        if self.adopted is not None and job.id in self.adopted:
            self.running.add(job.id)
            if self.adopted[job.id]:
                self.groups[job.id] = self.adopted[job.id]
            return
        if not started and self.adopt_error is None:
            self.start(job)
            return
        why = self.adopt_error or "its shell host no longer holds it"
        if groups is None and self.kvs is not None:
            groups = recorded_groups(self.kvs.get(job.kvsdir + ".exec.eventlog"), job.rank)
        if groups:
            _kill_lost_tasks(job.id, groups)
        self.service.event(job.id, "exception", {
            "type": "node-failure",
            "note": f"lost the job's shell host on rank {self.broker.rank} across the"
                    f" restart: {why}"})
        self.service.event(job.id, "finish", {"status": signal.SIGKILL})

    def shutdown(self) -> None:
        """Stop the shell host, which kills every task it still runs, and wait for
        it to exit (a few seconds at most), so that nothing of this instance
        outlives its broker: a parent sees a child's job end only after that."""
        self.stopping = True
        if not self.pid:
            return
        if self.service.keep_running and (self.running or self._starts):
            # The host holds them until the instance comes back on its statedir.
            self.link.close()
            return
        pid = self.pid
        self.link.close()  # the host sees the end of file and stops
        try:
            fd = os.pidfd_open(pid)
            os.kill(pid, signal.SIGTERM)
        except OSError:  # already gone
            return
        try:
            if not select.select([fd], [], [], HOST_EXIT_TIMEOUT)[0]:
                log.error("the shell host did not exit in %gs; killing it", HOST_EXIT_TIMEOUT)
                os.kill(pid, signal.SIGKILL)
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


def _kill_lost_tasks(jobid: int, pgids: set[int]) -> None:
    """SIGKILL what is left of a lost job's tasks (its host hung or died, and they
    ran on): the processes in the task groups `pgids` its exec eventlog recorded
    that still carry the job's id in their environment, which only this user's own
    processes show, so that a process group id reused by something else since
    (after a reboot) is never touched."""
    mark = b"\0STRATO_JOB_ID=" + ids.f58(jobid).encode() + b"\0"
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                pgrp = int(f.read().rpartition(b")")[2].split()[2])
            if pgrp not in pgids:
                continue
            with open(f"/proc/{name}/environ", "rb") as f:
                if mark in b"\0" + f.read() + b"\0":
                    os.kill(int(name), signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            continue


def _is_our_host(pid: int, statedir) -> bool:
    """True if `pid` is a shell host started for `statedir` (its command line says so)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    return b"shell-host" in argv and str(statedir).encode() in argv


@hookimpl
def exec_register_backends(register):
    register("local", LocalExec)
