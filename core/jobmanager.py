"""The job manager: RFC 21 job states, the job eventlog, and the services that
submit, watch, wait for, cancel and list jobs.

Speed by design: a submitted batch goes through ingest, gets ids and its first
eventlog entries in one call; eventlogs are lists kept in the KVS and appended in
place (watchers are fed from memory); the scheduler is asked once per event-loop
turn with every job that became ready since the last turn.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import os
import signal
import time
from collections.abc import Callable

from strato.core import ids
from strato.core.errors import RPCError

log = logging.getLogger("strato.job-manager")

NEW, DEPEND, PRIORITY, SCHED, RUN, CLEANUP, INACTIVE = 1, 2, 4, 8, 16, 32, 64
STATE_NAMES = {NEW: "NEW", DEPEND: "DEPEND", PRIORITY: "PRIORITY", SCHED: "SCHED", RUN: "RUN",
               CLEANUP: "CLEANUP", INACTIVE: "INACTIVE"}
PENDING = DEPEND | PRIORITY | SCHED
RUNNING = RUN | CLEANUP
ACTIVE = PENDING | RUNNING | NEW
URGENCY_HOLD, URGENCY_DEFAULT, URGENCY_EXPEDITE = 0, 16, 31
PRIORITY_MAX = 4294967295


class Job:
    """One job as the job manager keeps it (plain data: hooks read it)."""

    __slots__ = ("id", "userid", "urgency", "priority", "state", "jobspec", "flags", "eventlog",
                 "kvsdir", "t_submit", "t_run", "t_cleanup", "t_inactive", "R", "name",
                 "summary", "result", "status", "exception", "backend", "waiters", "exec_data",
                 "alloc_pending", "expiration")

    def __init__(self, jobid: int, userid: int, urgency: int, jobspec: dict, flags: int,
                 summary: dict) -> None:
        self.id = jobid
        self.userid = userid
        self.urgency = urgency
        self.priority = 0
        self.state = NEW
        self.jobspec = jobspec
        self.flags = flags
        self.eventlog: list = []
        self.kvsdir = ids.encode(jobid, "kvs")
        self.t_submit = 0.0
        self.t_run = 0.0
        self.t_cleanup = 0.0
        self.t_inactive = 0.0
        self.R: dict | None = None
        self.name = job_name(jobspec)
        self.summary = summary
        self.result: str | None = None
        self.status: int | None = None
        self.exception: dict | None = None
        self.backend = None
        self.waiters: list[Callable[[Job], None]] | None = None
        self.exec_data = None
        self.alloc_pending = False
        self.expiration = 0.0

    @property
    def state_name(self) -> str:
        return STATE_NAMES[self.state]


def _order(job: Job) -> tuple[int, int]:
    return (-job.priority, job.id)


def job_name(jobspec: dict) -> str:
    """The job name: attributes.system.job.name, else the command's basename."""
    try:
        name = jobspec["attributes"]["system"]["job"]["name"]
        if name:
            return str(name)
    except (KeyError, TypeError):
        pass
    try:
        return os.path.basename(jobspec["tasks"][0]["command"][0])
    except (KeyError, IndexError, TypeError):
        return "?"


class JobManager:
    """Jobs from submission to INACTIVE (see module docstring)."""

    def __init__(self, instance) -> None:
        self.instance = instance
        self.kvs = instance.kvs
        self.hook = instance.pm.hook
        self.jobs: dict[int, Job] = {}
        self.active: dict[int, Job] = {}
        # SCHED jobs with priority > 0 and no allocation, kept in scheduling order
        # (priority high to low, then submission order).
        self.pending: list[Job] = []
        self._sched_scheduled = False
        self.fluid = ids.FluidGenerator(0, instance.fluid_epoch)
        self.submit_enabled = True
        self.submit_disable_reason = ""
        self.sched_started = True
        self.stop_reason = ""
        self._idle_waiters: list[Callable[[], None]] = []
        self._empty_waiters: list[Callable[[], None]] = []
        self._state_hook = self.hook.job_state_change
        self._has_state_hook = bool(self._state_hook.get_hookimpls())
        self.counts = {"submitted": 0, "inactive": 0}
        self.kill_timeout = float(instance.config.get("exec", {}).get("kill-timeout", 5.0))
        self.default_backend = instance.config.get("exec", {}).get("backend", "local")

    # -- eventlog and states -----------------------------------------------------------
    def _post(self, job: Job, name: str, context: dict | None = None,
              new_state: int = 0) -> None:
        entry = {"timestamp": time.time(), "name": name}
        if context is not None:
            entry["context"] = context
        job.eventlog.append(entry)
        self.kvs.notify_append(job.kvsdir + ".eventlog", job.eventlog, (entry,))
        if new_state:
            self._set_state(job, new_state, entry["timestamp"])

    def _set_state(self, job: Job, state: int, now: float) -> None:
        old = job.state
        job.state = state
        if state == RUN:
            job.t_run = now
        elif state == CLEANUP:
            job.t_cleanup = now
        elif state == INACTIVE:
            job.t_inactive = now
        if self._has_state_hook:
            try:
                self._state_hook(job=job, old=STATE_NAMES[old], new=STATE_NAMES[state])
            except Exception:
                log.exception("job_state_change hook failed")

    # -- submission --------------------------------------------------------------------
    def ingest(self, jobspec: dict, userid: int) -> dict:
        """Run the ingest hooks on one jobspec; raises RPCError with the reason."""
        if not isinstance(jobspec, dict):
            raise RPCError("jobspec must be a mapping")
        try:
            self.hook.ingest_frobnicate(jobspec=jobspec, user=userid)
            self.hook.ingest_validate(jobspec=jobspec, user=userid)
        except Exception as exc:
            raise RPCError(str(exc) or exc.__class__.__name__) from None
        return self.instance.summarize(jobspec)

    def submit(self, jobspecs: list[dict], userid: int, urgency: int = URGENCY_DEFAULT,
               flags: int = 0) -> list[int]:
        """Validate every jobspec, then create the jobs; all or nothing."""
        if not self.submit_enabled:
            raise RPCError(f"job submission is disabled: {self.submit_disable_reason}")
        if not isinstance(urgency, int) or not 0 <= urgency <= 31:
            raise RPCError("urgency must be an integer from 0 to 31")
        summaries = []
        cache: dict[int, dict] = {}
        for i, js in enumerate(jobspecs):
            key = id(js)
            if key in cache:
                summaries.append(cache[key])
                continue
            try:
                cache[key] = s = self.ingest(js, userid)
            except RPCError as exc:
                prefix = f"job {i}: " if len(jobspecs) > 1 else ""
                raise RPCError(prefix + str(exc)) from None
            summaries.append(s)
        out = []
        now = time.time()
        for js, summary in zip(jobspecs, summaries, strict=True):
            job = Job(self.fluid.next(), userid, urgency, js, flags, summary)
            self._create(job, now)
            out.append(job.id)
        self.counts["submitted"] += len(out)
        return out

    def _create(self, job: Job, now: float) -> None:
        self.jobs[job.id] = job
        self.active[job.id] = job
        job.t_submit = now
        self.kvs.put_quiet(job.kvsdir + ".jobspec", job.jobspec)
        ev = job.eventlog
        ev.append({"timestamp": now, "name": "submit",
                   "context": {"userid": job.userid, "urgency": job.urgency,
                               "flags": job.flags, "version": 1}})
        ev.append({"timestamp": now, "name": "validate"})
        self.kvs.put_quiet(job.kvsdir + ".eventlog", ev)
        if self._has_state_hook:
            self._set_state(job, NEW, now)
        self._set_state(job, DEPEND, now)
        self._post(job, "depend", None, PRIORITY)
        self._reprioritize(job)

    def _reprioritize(self, job: Job) -> None:
        prio = self.hook.job_priority(job=job)
        job.priority = int(prio) if prio is not None else job.urgency
        self._post(job, "priority", {"priority": job.priority},
                   SCHED if job.state == PRIORITY else 0)
        if job.state == SCHED and job.R is None:
            if job.alloc_pending:
                job.alloc_pending = False
                self.pending.remove(job)
            if job.priority > 0:
                self._enqueue(job)
            self.request_schedule()

    def _enqueue(self, job: Job) -> None:
        """Insert into `pending` in order; a new job usually goes at the end."""
        job.alloc_pending = True
        pending = self.pending
        if not pending or _order(job) > _order(pending[-1]):
            pending.append(job)
        else:
            bisect.insort(pending, job, key=_order)

    # -- scheduling ----------------------------------------------------------------------
    def request_schedule(self) -> None:
        """Ask the scheduler once at the end of this event-loop turn."""
        if not self._sched_scheduled:
            self._sched_scheduled = True
            asyncio.get_running_loop().call_soon(self._schedule)

    def _schedule(self) -> None:
        self._sched_scheduled = False
        if not self.pending or not self.sched_started:
            return
        allocated, rejected = self.instance.scheduler.schedule(self.pending)
        if not allocated and not rejected:
            return
        done = set()
        for job, R in allocated:
            done.add(job.id)
            job.alloc_pending = False
            self._alloc(job, R)
        for job, reason in rejected:
            done.add(job.id)
            job.alloc_pending = False
            self.raise_exception(job, "alloc", 0, reason)
        # A queue policy usually settles a prefix of the queue: drop it in one step.
        n = 0
        pending = self.pending
        while n < len(pending) and pending[n].id in done:
            n += 1
        if n == len(done):
            del pending[:n]
        else:
            self.pending = [j for j in pending if j.id not in done]

    def _alloc(self, job: Job, R: dict) -> None:
        job.R = R
        self.kvs.put_quiet(job.kvsdir + ".R", R)
        self._post(job, "alloc", None, RUN)
        self.instance.start_exec(job)

    # -- exec callbacks --------------------------------------------------------------------
    def exec_started(self, job: Job) -> None:
        self._post(job, "start")

    def exec_finished(self, job: Job, status: int) -> None:
        """All tasks have exited with the highest wait status `status`."""
        if job.state != RUN:
            return
        job.status = status
        self._post(job, "finish", {"status": status}, CLEANUP)
        self._post(job, "release", {"ranks": "all", "final": True})
        self.instance.scheduler.free(job)
        self._post(job, "free")
        self.request_schedule()
        self._clean(job)

    def _clean(self, job: Job) -> None:
        exc = job.exception
        if exc is not None and exc["severity"] == 0:
            job.result = {"cancel": "CANCELED", "timeout": "TIMEOUT"}.get(exc["type"], "FAILED")
        elif job.status:
            job.result = "FAILED"
        else:
            job.result = "COMPLETED"
        self._post(job, "clean", None, INACTIVE)
        del self.active[job.id]
        self.counts["inactive"] += 1
        self.instance.job_ended(job)
        if job.waiters:
            for cb in job.waiters:
                cb(job)
            job.waiters = None
        if self._idle_waiters and not self._running_count():
            for cb in self._idle_waiters:
                cb()
            self._idle_waiters.clear()
        if self._empty_waiters and not self.active:
            for cb in self._empty_waiters:
                cb()
            self._empty_waiters.clear()

    def _running_count(self) -> int:
        return sum(1 for j in self.active.values() if j.state & RUNNING)

    # -- exceptions, cancel, urgency --------------------------------------------------------
    def raise_exception(self, job: Job, etype: str, severity: int, note: str = "",
                        userid: int | None = None) -> None:
        """Post an exception; severity 0 ends the job (killing its tasks if running)."""
        if job.state == INACTIVE:
            raise RPCError(f"job {ids.f58(job.id)} is inactive", "EINVAL")
        ctx = {"type": etype, "severity": severity, "note": note,
               "userid": job.userid if userid is None else userid}
        self._post(job, "exception", ctx)
        if severity != 0:
            return
        if job.exception is None or job.exception["severity"] != 0:
            job.exception = ctx
        if job.state & (NEW | PENDING):
            if job.alloc_pending:
                job.alloc_pending = False
                self.pending.remove(job)
            self._set_state(job, CLEANUP, time.time())
            self._clean(job)
        elif job.state == RUN:
            self.instance.kill_exec(job, signal.SIGTERM)
            loop = asyncio.get_running_loop()
            loop.call_later(self.kill_timeout, self._kill_hard, job)

    def _kill_hard(self, job: Job) -> None:
        if job.state == RUN:
            self.instance.kill_exec(job, signal.SIGKILL)

    def lookup(self, jobid: object, userid: int | None = None) -> Job:
        if isinstance(jobid, str):
            try:
                jobid = ids.parse(jobid)
            except ValueError as exc:
                raise RPCError(str(exc), "EINVAL") from None
        job = self.jobs.get(jobid) if isinstance(jobid, int) else None
        if job is None:
            raise RPCError(f"unknown job id {jobid if isinstance(jobid, str) else ids.f58(jobid)}"
                           if isinstance(jobid, int) else f"invalid job id {jobid!r}", "ENOENT")
        return job

    def set_urgency(self, job: Job, urgency: int, userid: int) -> int:
        if not isinstance(urgency, int) or not 0 <= urgency <= 31:
            raise RPCError("urgency must be an integer from 0 to 31")
        if not job.state & (NEW | PENDING):
            raise RPCError(f"job {ids.f58(job.id)} is not pending", "EINVAL")
        old = job.urgency
        job.urgency = urgency
        self._post(job, "urgency", {"userid": userid, "urgency": urgency})
        self._reprioritize(job)
        return old

    # -- waiting ---------------------------------------------------------------------------
    def on_inactive(self, job: Job, cb: Callable[[Job], None]) -> None:
        if job.state == INACTIVE:
            cb(job)
        elif job.waiters is None:
            job.waiters = [cb]
        else:
            job.waiters.append(cb)

    def on_idle(self, cb: Callable[[], None]) -> None:
        if self._running_count():
            self._idle_waiters.append(cb)
        else:
            cb()

    def on_empty(self, cb: Callable[[], None]) -> None:
        if self.active:
            self._empty_waiters.append(cb)
        else:
            cb()

    # -- restart -------------------------------------------------------------------------
    def recover(self) -> None:
        """Rebuild the jobs of a restarted instance from their eventlogs in the KVS.

        Pending jobs return to the queue; jobs that were running when the instance
        stopped cannot be reattached, so they end with an exception saying so.
        """
        from strato.core.kvs import KvsDir

        root = self.kvs.get("job")
        if not isinstance(root, KvsDir):
            return
        found = []
        for ka, a in root.items():
            for kb, b in a.items():
                for kc, c in b.items():
                    for kd, d in c.items():
                        if isinstance(d, KvsDir) and "eventlog" in d and "jobspec" in d:
                            found.append((ids.parse(f"job.{ka}.{kb}.{kc}.{kd}"), d))
        lost = []
        for jobid, d in found:
            eventlog = d["eventlog"]
            submit = eventlog[0]
            ctx = submit.get("context", {})
            js = d["jobspec"]
            try:
                summary = self.instance.summarize(js)
            except Exception:
                continue
            job = Job(jobid, ctx.get("userid", 0), ctx.get("urgency", 16), js,
                      ctx.get("flags", 0), summary)
            job.eventlog = eventlog
            job.t_submit = submit["timestamp"]
            state = NEW
            for e in eventlog:
                name, ectx = e["name"], e.get("context", {})
                if name == "priority":
                    job.priority = ectx.get("priority", 0)
                    state = SCHED if state < SCHED else state
                elif name == "urgency":
                    job.urgency = ectx.get("urgency", job.urgency)
                elif name == "alloc":
                    state, job.t_run = RUN, e["timestamp"]
                elif name == "finish":
                    job.status = ectx.get("status")
                    state, job.t_cleanup = CLEANUP, e["timestamp"]
                elif name == "exception" and ectx.get("severity") == 0:
                    job.exception = ectx
                elif name == "clean":
                    state, job.t_inactive = INACTIVE, e["timestamp"]
            job.R = d.get("R")
            job.state = state
            self.jobs[jobid] = job
            if state == INACTIVE:
                exc = job.exception
                if exc is not None:
                    job.result = {"cancel": "CANCELED", "timeout": "TIMEOUT"}.get(
                        exc["type"], "FAILED")
                else:
                    job.result = "FAILED" if job.status else "COMPLETED"
                self.counts["inactive"] += 1
                continue
            self.active[jobid] = job
            if state & (RUN | CLEANUP):
                lost.append(job)
            elif state == SCHED and job.priority > 0:
                self._enqueue(job)
        self.jobs = dict(sorted(self.jobs.items()))
        for job in lost:
            job.R = None
            ctx = {"type": "restart", "severity": 0, "userid": job.userid,
                   "note": "job was running when the instance stopped"}
            job.exception = ctx
            self._post(job, "exception", ctx, CLEANUP)
            self._clean(job)
        if self.pending:
            self.request_schedule()
