"""Jobs spread over several brokers: one job shell per rank of the job's R.

In a multi-broker instance every broker runs its node's shell host (exec
backend ``local``). A job whose R names ranks other than rank 0's own runs here,
as exec backend ``ranks`` on rank 0: each rank of R gets the job's start message
with ``rank`` set, and its shell runs only the tasks laid out on that rank
(task ranks stay global). Rank 0's part goes to its own local backend; every
other rank's part goes over the overlay to `RankExec` on that broker as
``exec.rank-start``, and its events come back as ``exec.rank-events``.

The job manager sees one job: ``start`` once every rank has started, at most
one exception of each type, and one ``finish`` with the largest wait status of
all ranks. A rank lost while its part runs ends the job with a ``node failure``
exception; the other ranks' tasks are killed. The PMI barriers of the job
shells meet here too (`PmiExchange`).

**Restarts.** With a statedir, every rank's shell host outlives its broker as
rank 0's does (`strato.plugins.exec_local`): a rank > 0 is given the statedir
(``--test-size`` brokers share rank 0's; a PMI-started broker uses the one its
own ``strato start`` names), where its host records itself as
``shell-host.RANK.UID.json``, and its broker re-adopts it at start. Rank 0 holds
the only KVS, so it records each rank's host sequence (the KVS key
``shell-host.RANK-UID.seq``) in the same transaction as the batch's effects: a
rank > 0 forwards each host batch whole (``exec.rank-batch {rank, uid, pid,
seq, ops, events}``), rank 0 applies those with a sequence above the one it
recorded, and acknowledges after each save (``exec.rank-ack {pid, seq}``), which
the rank passes to its host. A re-adopted host replays all it keeps; rank 0
skips what it recorded already. A new host is announced first
(``exec.rank-host {rank, uid, pid}``: its messages count from 1 again).

When a rank joins (at start, or back after it was lost), rank 0 sends it
``exec.rank-reattach {jobs, keep}``: its parts of the jobs that were running
when the instance stopped, which it takes up (`LocalExec.reattach`), and the ids
of every job it still runs there; a job its re-adopted host holds but the
instance no longer runs (it ended while the rank was lost) is killed. Each part
carries ``pgids``, the process groups the job's exec eventlog records for that
rank's tasks: a rank whose host is gone kills what is left of them, as rank 0
does for its own. A part whose end the exec eventlog records (each part's shell
records it, `strato.shell.host.ShellHost.part_event`, in the batch that reports
it) is not taken up again: its host may have forgotten it, and its status
counts. A recovered job passes on no exception of a type its eventlog already
holds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from collections.abc import Iterator

from strato.core import hostlink
from strato.core.errors import RPCError
from strato.core.exec import ExecJob, recorded_ends, recorded_groups
from strato.core.pmi_exchange import PmiExchange
from strato.jobspec.fsd import parse_fsd
from strato.jobspec.idset import decode_idset

log = logging.getLogger("strato.exec-ranks")


def job_ranks(R: dict) -> list[int]:
    """The broker ranks of an R, in order."""
    ranks: set[int] = set()
    for entry in R["execution"]["R_lite"]:
        ranks.update(decode_idset(entry["rank"]))
    return sorted(ranks)


def _exec_jobs(parts: list, topic: str) -> Iterator[tuple[dict, ExecJob]]:
    """Each job part of a `topic` request with its `ExecJob`; a malformed one is
    logged and left out, the others still run."""
    for part in parts:
        try:
            job = ExecJob(part)
        except (KeyError, TypeError) as exc:
            log.warning("dropped a bad %s: %s", topic, exc)
            continue
        yield part, job


class _Spread:
    """What rank 0 knows of one spread job."""

    __slots__ = ("ranks", "running", "started", "status", "exceptions", "passing")

    def __init__(self, ranks: list[int]) -> None:
        self.ranks = ranks
        self.running = set(ranks)  # ranks whose part has not finished
        self.started: set[int] = set()
        self.status = 0
        self.exceptions: set[str] = set()
        self.passing = False  # an event of the whole job is on its way out


class _RankHost:
    """(rank 0) What it knows of the shell host of a rank > 0, with a statedir."""

    __slots__ = ("key", "pid", "applied", "due")

    def __init__(self, key: str, applied: int) -> None:
        self.key = key  # the KVS key of its last recorded sequence
        self.pid = 0
        self.applied = applied
        self.due = False  # an acknowledgement is owed after the next save


class RanksExec:
    """Exec backend ``ranks`` on rank 0 (see module docstring)."""

    name = "ranks"

    def __init__(self, service, overlay=None) -> None:
        self.service = service
        self.broker = service.broker
        self.kvs = service.kvs
        self.local = service.backend("local")
        self.jobs: dict[int, _Spread] = {}
        self._outbox: dict[int, list[dict]] = {}  # rank -> starts to send it this turn
        self._reattach: dict[int, list[dict]] = {}  # rank -> parts to take up once it joins
        self._kills: dict[int, list[dict]] = {}  # rank -> kills of those parts, meanwhile
        self.hosts: dict[tuple[int, int], _RankHost] = {}  # (rank, uid) -> its host
        service.backends[self.name] = self
        service.spread = self
        self.pmi = PmiExchange(self.broker, service.jobs)
        self.broker.register("exec.rank-events", self._rank_events)
        self.broker.register("exec.rank-batch", self._rank_batch)
        self.broker.register("exec.rank-host", self._rank_host)
        if service.statedir is not None:
            self.kvs.on_flush.append(self._ack_ranks)
        if overlay is not None:
            overlay.hello_handlers.append(self._joined)

    def wants(self, job: ExecJob) -> bool:
        """Does `job` run on any broker but this one?"""
        return any(r != self.broker.rank for r in job_ranks(job.R))

    def start(self, job: ExecJob) -> None:
        spread = self.jobs[job.id] = _Spread(job_ranks(job.R))
        for rank in spread.ranks:
            body = dict(job.wire(), rank=rank)
            if rank == self.broker.rank:
                self.local.start(ExecJob(body))
            else:  # one message per rank and loop turn, however many jobs start
                if not self._outbox:
                    self.broker.defer(self._send_starts)
                self._outbox.setdefault(rank, []).append(body)

    def _send_starts(self) -> None:
        outbox, self._outbox = self._outbox, {}
        for rank, jobs in outbox.items():
            self.broker.send_to(rank, "exec.rank-start", {"jobs": jobs})

    def reattach(self, job: ExecJob, started: bool, t_run: float) -> None:
        """A spread job that was running when the instance stopped: rank 0's part is
        taken up here, every other rank's once that rank joins (`_joined`), with the
        task groups recorded for it (`recorded_groups`: that rank keeps no KVS). A
        part whose end its exec eventlog records (`recorded_ends`) is done, its
        status counted; the exception types its eventlog holds are not passed on
        again."""
        spread = self.jobs[job.id] = _Spread(job_ranks(job.R))
        if started:
            spread.started.update(spread.ranks)
        spread.exceptions.update(self._posted_exceptions(job))
        exec_eventlog = self.kvs.get(job.kvsdir + ".exec.eventlog")
        for rank, status in recorded_ends(exec_eventlog).items():
            if rank in spread.running:
                spread.running.discard(rank)
                spread.started.add(rank)
                spread.status = max(spread.status, status)
        for rank in sorted(spread.running):
            body = dict(job.wire(), rank=rank, started=started, t_run=t_run)
            if rank != self.broker.rank:
                body["pgids"] = sorted(recorded_groups(exec_eventlog, rank))
                self._reattach.setdefault(rank, []).append(body)
                continue
            self.local.reattach(ExecJob(body), started, t_run)
            held = (self.local.adopted or {}).get(job.id)
            if not started and held and job.id in self.jobs:
                self._event(spread, rank, job.id, "start", None)

    def _posted_exceptions(self, job: ExecJob) -> set[str]:
        """The types of the exceptions the job's eventlog holds (one passed on before
        the restart is not passed on again when another rank reports it)."""
        types = set()
        for entry in self.kvs.get(job.kvsdir + ".eventlog") or ():
            if isinstance(entry, dict) and entry.get("name") == "exception":
                ctx = entry.get("context")
                if isinstance(ctx, dict) and isinstance(ctx.get("type"), str):
                    types.add(ctx["type"])
        return types

    def _joined(self, hello: dict) -> None:
        """A broker joined (at start, or back after it was lost): hand it its parts of
        the jobs recovered at the restart, and say which jobs run there."""
        rank = hello.get("rank")
        if not isinstance(rank, int) or rank == self.broker.rank:
            return
        parts = self._reattach.pop(rank, [])
        keep = [jobid for jobid, spread in self.jobs.items() if rank in spread.running]
        self.broker.send_to(rank, "exec.rank-reattach", {"jobs": parts, "keep": keep})
        for body in self._kills.pop(rank, []):  # asked for before it could hear them
            self.broker.send_to(rank, "exec.rank-kill", body)

    def kill(self, jobid: int, signum: int) -> None:
        spread = self.jobs.get(jobid)
        if spread is None:
            return
        self._send_starts()  # a start still waiting to leave goes before its kill
        for rank in sorted(spread.running):
            if rank == self.broker.rank:
                self.local.kill(jobid, signum)
            elif rank in self._reattach:  # not joined since the restart: sent once it is
                self._kills.setdefault(rank, []).append({"id": jobid, "signum": signum})
            else:
                self.broker.send_to(rank, "exec.rank-kill", {"id": jobid, "signum": signum})

    # -- events of each rank ---------------------------------------------------------------
    def takes(self, jobid: int, name: str, context: dict | None) -> bool:
        """Gather an event of this rank's part of a spread job (True if taken)."""
        spread = self.jobs.get(jobid)
        if spread is None or spread.passing:
            return False
        self._event(spread, self.broker.rank, jobid, name, context)
        return True

    def _rank_events(self, req) -> None:
        body = req.body if isinstance(req.body, dict) else {}
        rank, events = body.get("rank"), body.get("events")
        if not isinstance(rank, int) or not isinstance(events, list):
            raise RPCError("exec.rank-events needs a rank and a list of events")
        self._apply(rank, events)
        req.respond()

    def _apply(self, rank: int, events: list) -> None:
        for ev in events:
            if not isinstance(ev, dict):
                continue
            spread = self.jobs.get(ev.get("id"))
            if spread is not None and rank in spread.running:
                ctx = ev.get("context")
                self._event(spread, rank, ev["id"], ev.get("name"),
                            ctx if isinstance(ctx, dict) else None)

    # -- the shell hosts of other ranks, with a statedir (module docstring) ------------------
    def _host(self, rank: int, uid: int) -> _RankHost:
        host = self.hosts.get((rank, uid))
        if host is None:
            key = f"shell-host.{rank}-{uid}.seq"
            seq = self.kvs.get(key)
            host = self.hosts[(rank, uid)] = _RankHost(key, seq if isinstance(seq, int) else 0)
        return host

    @staticmethod
    def _ints(body: object, *names: str) -> list[int]:
        values = [body.get(n) if isinstance(body, dict) else None for n in names]
        if not all(isinstance(v, int) and v >= 0 for v in values):
            raise RPCError(f"needs integers {', '.join(names)}")
        return values

    def _rank_batch(self, req) -> None:
        """``exec.rank-batch``: a batch of a rank's shell host, applied once."""
        rank, uid, pid, seq = self._ints(req.body, "rank", "uid", "pid", "seq")
        ops, events = req.body.get("ops"), req.body.get("events", [])
        if not isinstance(events, list):
            raise RPCError("exec.rank-batch needs a list of events")
        host = self._host(rank, uid)
        host.pid = pid
        host.due = True
        if seq > host.applied:
            if ops:
                try:
                    self.kvs.commit(ops)
                except RPCError as exc:
                    log.warning("dropped the output of rank %d's shell host: %s", rank, exc)
            self._apply(rank, events)
            # the events' effects (the job manager's) join the same save as the sequence
            self.broker.run_deferred()
            host.applied = seq
            self.kvs.put_quiet(host.key, seq)
        if self.service.statedir is None:  # (a rank given a statedir rank 0 lacks)
            self._ack_ranks()  # nothing is saved: applied is as recorded as it gets
        req.respond()

    def _rank_host(self, req) -> None:
        """``exec.rank-host``: a rank started a new shell host; it counts from 1."""
        rank, uid, pid = self._ints(req.body, "rank", "uid", "pid")
        host = self._host(rank, uid)
        host.pid, host.applied, host.due = pid, 0, False
        self.kvs.put_quiet(host.key, 0)
        req.respond()

    def _ack_ranks(self) -> None:
        """The KVS has saved: tell each rank what its host may forget."""
        for (rank, _uid), host in self.hosts.items():
            if host.due and host.pid:
                host.due = False
                try:
                    self.broker.send_to(rank, "exec.rank-ack", {"pid": host.pid,
                                                                 "seq": host.applied})
                except Exception as exc:  # a lost rank: its host keeps what it has
                    log.debug("no acknowledgement to rank %d: %s", rank, exc)

    def _event(self, spread: _Spread, rank: int, jobid: int, name: str,
               context: dict | None) -> None:
        if name == "start":
            if rank in spread.started:
                return  # (a start replayed after a restart that already counted it)
            spread.started.add(rank)
            if len(spread.started) == len(spread.ranks):
                self._pass(spread, jobid, "start", None)
        elif name == "exception":
            kind = (context or {}).get("type", "exec")
            if kind not in spread.exceptions:
                spread.exceptions.add(kind)
                self._pass(spread, jobid, "exception", context)
        elif name == "finish":
            status = (context or {}).get("status", 0)
            self._rank_done(spread, jobid, rank, status if isinstance(status, int) else 1)

    def _rank_done(self, spread: _Spread, jobid: int, rank: int, status: int) -> None:
        if rank not in spread.running:
            return
        spread.running.discard(rank)
        spread.status = max(spread.status, status)
        if not spread.running:
            self._finished(spread, jobid)

    def _finished(self, spread: _Spread, jobid: int) -> None:
        del self.jobs[jobid]
        self.pmi.forget(jobid)
        self._pass(spread, jobid, "finish", {"status": spread.status})

    def _pass(self, spread: _Spread, jobid: int, name: str, context: dict | None) -> None:
        spread.passing = True
        try:
            self.service.event(jobid, name, context)
        finally:
            spread.passing = False

    def ranks_lost(self, ranks: list[int]) -> None:
        """Brokers are gone: their parts of running jobs end with a node failure,
        and the rest of those jobs is killed."""
        lost = set(ranks)
        self._stop_lost_hosts(ranks)
        for jobid, spread in list(self.jobs.items()):
            gone = sorted(spread.running & lost)
            if not gone:
                continue
            if "node failure" not in spread.exceptions:
                spread.exceptions.add("node failure")
                where = ", ".join(str(r) for r in gone)
                self._pass(spread, jobid, "exception",
                           {"type": "node failure",
                            "note": f"lost broker rank {where} running the job"})
            spread.running.difference_update(gone)
            spread.status = max(spread.status, signal.SIGKILL)
            self.kill(jobid, signal.SIGKILL)  # what is left of it, elsewhere
            if not spread.running:
                self._finished(spread, jobid)

    def _stop_lost_hosts(self, ranks: list[int]) -> None:
        """With a statedir, the shell host of a lost rank outlives its broker, holding
        tasks of jobs that have just ended here: if the statedir names it (a
        ``--test-size`` instance, or a statedir shared with that rank's machine), it
        is told to kill them and exit, off the event loop (it may be slow to answer)."""
        statedir = self.service.statedir
        if statedir is None:
            return
        found = [(r, hostlink.endpoint_file(statedir, r, os.getuid())) for r in ranks
                 if r != self.broker.rank]
        found = [(r, path) for r, path in found if path.exists()]
        if found:
            asyncio.get_running_loop().run_in_executor(None, self._stop_hosts, found)

    def _stop_hosts(self, found: list) -> None:
        """(in a thread) See `_stop_lost_hosts`."""
        try:
            secret = hostlink.read_secret(self.service.statedir)
        except (OSError, ValueError) as exc:
            log.error("cannot stop the shell hosts of lost brokers: %s", exc)
            return
        for rank, path in found:
            try:
                where = json.loads(path.read_text())["socket"]
                pid = hostlink.stop_host(where, secret, self.service.adopt_timeout)
            except (ConnectionRefusedError, FileNotFoundError):
                continue  # gone with its broker, or on another machine
            except (hostlink.HandshakeError, OSError, ValueError, KeyError, TypeError) as exc:
                log.error("cannot stop the shell host of lost broker rank %d: %s", rank, exc)
                continue
            log.warning("stopped the shell host (pid %d) of lost broker rank %d: the tasks"
                        " it held are killed", pid, rank)

    def stats(self) -> dict:
        return {"running": len(self.jobs)}

    def shutdown(self) -> None:
        """Each broker stops its own shell host."""


class RankExec:
    """Exec on a broker of rank > 0: runs its part of spread jobs through its own
    shell host (exec backend ``local``) and sends the events to rank 0."""

    def __init__(self, broker, reaper, config: dict, rundir, uri: str,
                 host: tuple[int, object, int] | None = None, statedir=None) -> None:
        """`host`: a parked shell host forked for this broker, if any: its pid, the
        broker's end of its link, and the fd whose first byte wakes it. `statedir`:
        where its shell host records itself to outlive this broker (module
        docstring); the broker keeps no other state: its host's output and events
        go to rank 0's KVS."""
        from strato.plugins.exec_local import LocalExec

        self.broker = broker
        self.reaper = reaper
        self.config = config
        self.rundir = rundir
        self.uri = uri
        self.kvs = None
        self.statedir = statedir
        exec_conf = config.get("exec", {})
        try:
            orphan = parse_fsd(str(exec_conf.get("orphan-timeout", "1d")))
            self.adopt_timeout = parse_fsd(str(exec_conf.get("adopt-timeout", "10s")))
        except ValueError:  # rank 0 checked the config; a bad one never gets here
            orphan, self.adopt_timeout = 0.0, 10.0
        self.keep_running = statedir is not None and orphan > 0
        self._events: list[dict] = []
        self.local = LocalExec(self, exec_conf)
        self._wake: int | None = None
        if host is not None:
            pid, sock, self._wake = host
            self.local.attach_host(pid, sock)
        broker.register("exec.rank-start", self._start)
        broker.register("exec.rank-kill", self._kill)
        broker.register("exec.rank-reattach", self._reattach)
        broker.register("exec.rank-ack", self._ack)

    def forward_batch(self, pid: int, body: dict) -> None:
        """A batch of this node's shell host, for rank 0 to apply and record."""
        self.broker.send_to(0, "exec.rank-batch", {
            "rank": self.broker.rank, "uid": self.local.uid, "pid": pid,
            "seq": body.get("seq", 0), "ops": body.get("ops"),
            "events": body.get("events", [])})

    def host_changed(self, pid: int) -> None:
        """This node has a new shell host, whose messages count from 1."""
        self.broker.send_to(0, "exec.rank-host", {"rank": self.broker.rank,
                                                  "uid": self.local.uid, "pid": pid})

    def _ack(self, req) -> None:
        body = req.body if isinstance(req.body, dict) else {}
        pid, seq = body.get("pid"), body.get("seq")
        if isinstance(pid, int) and isinstance(seq, int):
            self.local.host_ack(pid, seq)

    def _reattach(self, req) -> None:
        """``exec.rank-reattach {jobs, keep}`` (module docstring)."""
        body = req.body if isinstance(req.body, dict) else {}
        jobs, keep = body.get("jobs"), body.get("keep")
        if not isinstance(jobs, list) or not isinstance(keep, list):
            raise RPCError("exec.rank-reattach needs lists jobs and keep")
        kept = {j for j in keep if isinstance(j, int)}
        for part, job in _exec_jobs(jobs, "exec.rank-reattach"):
            kept.add(job.id)
            started = bool(part.get("started"))
            pgids = part.get("pgids")
            groups = {g for g in pgids if isinstance(g, int) and g > 1} \
                if isinstance(pgids, list) else set()
            self._wake_host()
            self.local.reattach(job, started, float(part.get("t_run") or 0.0), groups)
            if not started and (self.local.adopted or {}).get(job.id):
                self.event(job.id, "start")  # its tasks run: rank 0 counts it once
        self.local.drop_adopted(kept)

    def event(self, jobid: int, name: str, context: dict | None = None) -> None:
        """An event of this rank's part of a job, batched to rank 0 once per turn."""
        if not self._events:
            self.broker.defer(self._flush)
        self._events.append({"id": jobid, "name": name, "context": context})

    def _flush(self) -> None:
        events, self._events = self._events, []
        self.broker.send_to(0, "exec.rank-events", {"rank": self.broker.rank,
                                                     "events": events})

    def _start(self, req) -> None:
        jobs = (req.body or {}).get("jobs") if isinstance(req.body, dict) else None
        if not isinstance(jobs, list):
            raise RPCError("exec.rank-start needs a list of jobs")
        for _, job in _exec_jobs(jobs, "exec.rank-start"):
            self._wake_host()
            self.local.start(job)

    def _wake_host(self) -> None:
        """The first job: a parked shell host starts serving (it says hello)."""
        if self._wake is not None:
            try:
                os.write(self._wake, b"x")
            except OSError:  # it is gone: exec-local hears of its exit
                pass
            os.close(self._wake)
            self._wake = None

    def _kill(self, req) -> None:
        body = req.body if isinstance(req.body, dict) else {}
        jobid, signum = body.get("id"), body.get("signum")
        if isinstance(jobid, int) and isinstance(signum, int) and 0 < signum < 65:
            self.local.kill(jobid, signum)

    def shutdown(self) -> None:
        self.local.shutdown()
        if self._wake is not None:
            os.close(self._wake)
            self._wake = None
