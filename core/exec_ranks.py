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
"""

from __future__ import annotations

import logging
import os
import signal

from strato.core.errors import RPCError
from strato.core.exec import ExecJob
from strato.core.pmi_exchange import PmiExchange
from strato.jobspec.idset import decode_idset

log = logging.getLogger("strato.exec-ranks")


def job_ranks(R: dict) -> list[int]:
    """The broker ranks of an R, in order."""
    ranks: set[int] = set()
    for entry in R["execution"]["R_lite"]:
        ranks.update(decode_idset(entry["rank"]))
    return sorted(ranks)


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


class RanksExec:
    """Exec backend ``ranks`` on rank 0 (see module docstring)."""

    name = "ranks"

    def __init__(self, service) -> None:
        self.service = service
        self.broker = service.broker
        self.local = service.backend("local")
        self.jobs: dict[int, _Spread] = {}
        self._outbox: dict[int, list[dict]] = {}  # rank -> starts to send it this turn
        service.backends[self.name] = self
        service.spread = self
        self.pmi = PmiExchange(self.broker, service.jobs)
        self.broker.register("exec.rank-events", self._rank_events)

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

    def kill(self, jobid: int, signum: int) -> None:
        spread = self.jobs.get(jobid)
        if spread is None:
            return
        self._send_starts()  # a start still waiting to leave goes before its kill
        for rank in sorted(spread.running):
            if rank == self.broker.rank:
                self.local.kill(jobid, signum)
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
        for ev in events:
            if not isinstance(ev, dict):
                continue
            spread = self.jobs.get(ev.get("id"))
            if spread is not None and rank in spread.running:
                ctx = ev.get("context")
                self._event(spread, rank, ev["id"], ev.get("name"),
                            ctx if isinstance(ctx, dict) else None)
        req.respond()

    def _event(self, spread: _Spread, rank: int, jobid: int, name: str,
               context: dict | None) -> None:
        if name == "start":
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

    def stats(self) -> dict:
        return {"running": len(self.jobs)}

    def shutdown(self) -> None:
        """Each broker stops its own shell host."""


class RankExec:
    """Exec on a broker of rank > 0: runs its part of spread jobs through its own
    shell host (exec backend ``local``) and sends the events to rank 0."""

    def __init__(self, broker, reaper, config: dict, rundir, uri: str,
                 host: tuple[int, object, int] | None = None) -> None:
        """`host`: a parked shell host forked for this broker, if any: its pid, the
        broker's end of its link, and the fd whose first byte wakes it."""
        from strato.plugins.exec_local import LocalExec

        self.broker = broker
        self.reaper = reaper
        self.config = config
        self.rundir = rundir
        self.uri = uri
        # a rank > 0 keeps no state: its host's output goes to rank 0's KVS, and its
        # jobs end with the broker (surviving a restart is rank 0's, for now)
        self.kvs = None
        self.statedir = None
        self.keep_running = False
        self.adopt_timeout = 0.0
        self._events: list[dict] = []
        self.local = LocalExec(self, config.get("exec", {}))
        self._wake: int | None = None
        if host is not None:
            pid, sock, self._wake = host
            self.local.attach_host(pid, sock)
        broker.register("exec.rank-start", self._start)
        broker.register("exec.rank-kill", self._kill)

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
        for body in jobs:
            try:
                job = ExecJob(body)
            except (KeyError, TypeError) as exc:
                log.warning("dropped a bad exec.rank-start: %s", exc)
                continue
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
