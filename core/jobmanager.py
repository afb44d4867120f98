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
import json
import logging
import os
import signal
import time
from collections.abc import Callable

from strato.core import dependencies, ids
from strato.core.errors import ConfigError, RPCError
from strato.core.plugins import registry
from strato.core.states import (
    CLEANUP,
    DEPEND,
    INACTIVE,
    NEW,
    PENDING,
    PRIORITY,
    RUN,
    SCHED,
    STATE_NAMES,
)
from strato.jobspec.fsd import parse_fsd

log = logging.getLogger("strato.job-manager")

URGENCY_HOLD, URGENCY_DEFAULT, URGENCY_EXPEDITE = 0, 16, 31
PRIORITY_MAX = 4294967295


class Job:
    """One job as the job manager keeps it (plain data: hooks read it)."""

    __slots__ = ("id", "userid", "urgency", "priority", "state", "jobspec", "flags", "eventlog",
                 "kvsdir", "t_submit", "t_run", "t_cleanup", "t_inactive", "R", "name",
                 "summary", "result", "status", "exception", "backend",
                 "alloc_pending", "deps_left", "state_watchers", "cc",
                 "annotations")

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
        self.alloc_pending = False
        self.deps_left = 0
        self.state_watchers: list | None = None
        self.cc: int | None = None  # this copy's index under --cc
        self.annotations: dict | None = None  # set by the scheduler (RFC 27)

    @property
    def state_name(self) -> str:
        return STATE_NAMES[self.state]


def _result_of(job: Job) -> str:
    """RFC 21 result of an ended job: an exception's type decides, else the status."""
    exc = job.exception
    if exc is not None and exc["severity"] == 0:
        return {"cancel": "CANCELED", "timeout": "TIMEOUT"}.get(exc["type"], "FAILED")
    return "FAILED" if job.status else "COMPLETED"


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
        self.queues = instance.queues
        self._state_hook = self.hook.job_state_change
        self._has_state_hook = bool(self._state_hook.get_hookimpls())
        self.counts = {"submitted": 0, "inactive": 0}
        try:
            self.kill_timeout = parse_fsd(str(instance.config.get("exec", {})
                                              .get("kill-timeout", 5.0)))
        except ValueError as exc:
            raise ConfigError(f"exec.kill-timeout: {exc}") from None
        self.default_backend = instance.config.get("exec", {}).get("backend", "local")
        self.dep_schemes = registry(self.hook.job_register_dependency_schemes,
                                    "dependency scheme")

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
        if job.state_watchers:
            fire = [w for w in job.state_watchers if w[0] & state]
            if fire:
                job.state_watchers = [w for w in job.state_watchers if not w[0] & state]
                for _, cb in fire:
                    cb(job)

    def watch_state(self, job: Job, mask: int, cb: Callable[[Job], None]) -> None:
        """Call ``cb(job)`` once, when `job` enters one of the states in `mask`
        (at once if it is in one now)."""
        if job.state & mask:
            cb(job)
        elif job.state_watchers is None:
            job.state_watchers = [(mask, cb)]
        else:
            job.state_watchers.append((mask, cb))

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
        dependencies.check(jobspec, self.dep_schemes, self)
        summary = self.summarize(jobspec)
        feasibility = getattr(self.instance.scheduler, "feasibility", None)
        if feasibility is not None:
            why = feasibility(summary, jobspec)
            if why is not None:
                raise RPCError(why)
        queue = self.queues.of(jobspec)
        if not queue.enabled:
            what = f"queue {queue.name}" if queue.name else "job submission"
            raise RPCError(f"{what} is disabled: {queue.disable_reason}")
        return summary

    def summarize(self, jobspec: dict) -> dict:
        """What the scheduler needs of a valid jobspec: counts, queue and constraint."""
        summary = self.instance.summarize(jobspec)
        queue = self.queues.of(jobspec)
        summary["queue"] = queue.name
        constraint = jobspec["attributes"]["system"].get("constraints")
        if queue.requires:
            need = {"properties": list(queue.requires)}
            constraint = {"and": [constraint, need]} if constraint else need
        summary["constraint"] = None
        summary["constraint_key"] = ""
        if constraint:
            from strato.jobspec.constraints import compile_constraint

            try:
                summary["constraint"] = compile_constraint(constraint)
            except ValueError as exc:
                raise RPCError(f"attributes.system.constraints: {exc}") from None
            summary["constraint_key"] = json.dumps(constraint, sort_keys=True)
        return summary

    def submit(self, jobspecs: list[dict], userid: int, urgency: int = URGENCY_DEFAULT,
               flags: int = 0, cc: list[int] | None = None) -> list[int]:
        """Validate every jobspec, then create the jobs; all or nothing.

        `cc` gives each job its copy index (``--cc``), seen by the shell as
        ``STRATO_JOB_CC`` and ``{{cc}}`` in output templates.
        """
        if cc is not None and (len(cc) != len(jobspecs)
                               or not all(isinstance(c, int) for c in cc)):
            raise RPCError("cc must be a list of integers, one per job")
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
        for i, (js, summary) in enumerate(zip(jobspecs, summaries, strict=True)):
            job = Job(self.fluid.next(), userid, urgency, js, flags, summary)
            if cc is not None:
                job.cc = cc[i]
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
        ctx = {"userid": job.userid, "urgency": job.urgency, "flags": job.flags, "version": 1}
        if job.cc is not None:
            ctx["cc"] = job.cc
        ev.append({"timestamp": now, "name": "submit", "context": ctx})
        ev.append({"timestamp": now, "name": "validate"})
        self.kvs.put_quiet(job.kvsdir + ".eventlog", ev)
        if self._has_state_hook:
            self._set_state(job, NEW, now)
        self._set_state(job, DEPEND, now)
        deps = dependencies.dependencies_of(job.jobspec)
        if not deps:
            self._post(job, "depend", None, PRIORITY)
            self._reprioritize(job)
            return
        job.deps_left = len(deps)
        for dep in deps:
            self._post(job, "dependency-add", {"description": dependencies.describe(dep)})
        for dep in deps:
            if job.state != DEPEND:
                break
            self.dep_schemes[dep["scheme"]].add(dependencies.Dependency(job, dep, self))

    def dependency_resolved(self, d: dependencies.Dependency) -> None:
        job = d.job
        if job.state != DEPEND:
            return
        self._post(job, "dependency-remove", {"description": dependencies.describe(d.dep)})
        job.deps_left -= 1
        if job.deps_left == 0:
            self._post(job, "depend", None, PRIORITY)
            self._reprioritize(job)

    def dependency_failed(self, d: dependencies.Dependency, note: str) -> None:
        if d.job.state == DEPEND:
            self.raise_exception(d.job, "dependency", 0,
                                 f"{dependencies.describe(d.dep)}: {note}")

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
        if not self.pending:
            return
        queues = self.queues.named(None)
        if all(q.started for q in queues):
            candidates = self.pending
        else:
            stopped = {q.name for q in queues if not q.started}
            candidates = [j for j in self.pending if j.summary["queue"] not in stopped]
            if not candidates:
                return
        allocated, rejected = self.instance.scheduler.schedule(candidates)
        if not allocated and not rejected:
            return
        done = {job.id for job, _ in allocated} | {job.id for job, _ in rejected}
        # A queue policy usually settles a prefix of the queue: drop it in one step.
        n = 0
        pending = self.pending
        while n < len(pending) and pending[n].id in done:
            n += 1
        if n == len(done):
            del pending[:n]
        else:
            self.pending = [j for j in pending if j.id not in done]
        # The queue is settled before anything is started, so a failure below
        # cannot leave a started job in it.
        for job, R in allocated:
            job.alloc_pending = False
            self._alloc(job, R)
        for job, reason in rejected:
            job.alloc_pending = False
            self.raise_exception(job, "alloc", 0, reason)

    def _alloc(self, job: Job, R: dict) -> None:
        job.R = R
        job.annotations = None
        self.kvs.put_quiet(job.kvsdir + ".R", R)
        self._post(job, "alloc", None, RUN)
        try:
            self.instance.start_exec(job)
        except Exception as exc:  # a backend bug must not wedge the queue behind it
            log.exception("exec failed to start job %s", ids.f58(job.id))
            ctx = {"type": "exec", "severity": 0, "userid": job.userid,
                   "note": f"exec failed to start: {exc}"}
            job.exception = ctx
            self._post(job, "exception", ctx)
            self.exec_finished(job, 1 << 8)

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
        job.result = _result_of(job)
        self._post(job, "clean", None, INACTIVE)
        del self.active[job.id]
        self.counts["inactive"] += 1
        self.instance.job_ended(job)

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
        if job.state & (PRIORITY | SCHED):
            self._reprioritize(job)  # a job still in DEPEND gets its priority later
        return old

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
        waiting: list[tuple[Job, list]] = []
        for jobid, d in found:
            eventlog = d["eventlog"]
            submit = eventlog[0]
            ctx = submit.get("context", {})
            js = d["jobspec"]
            try:
                summary = self.summarize(js)
            except Exception:
                continue  # no longer valid here (its queue is gone): nothing to recover
            job = Job(jobid, ctx.get("userid", 0), ctx.get("urgency", 16), js,
                      ctx.get("flags", 0), summary)
            job.eventlog = eventlog
            job.t_submit = submit["timestamp"]
            job.cc = ctx.get("cc")
            state = DEPEND
            removed = set()
            for e in eventlog:
                name, ectx = e["name"], e.get("context", {})
                if name == "dependency-remove":
                    removed.add(ectx.get("description"))
                elif name == "depend":
                    state = PRIORITY
                elif name == "priority":
                    job.priority = ectx.get("priority", 0)
                    state = SCHED if state == PRIORITY else state
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
                job.result = _result_of(job)
                self.counts["inactive"] += 1
                continue
            self.active[jobid] = job
            if state & (RUN | CLEANUP):
                lost.append(job)
            elif state == SCHED and job.priority > 0:
                self._enqueue(job)
            elif state == PRIORITY:
                waiting.append((job, []))
            elif state == DEPEND:
                deps = [dep for dep in dependencies.dependencies_of(js)
                        if dependencies.describe(dep) not in removed]
                waiting.append((job, deps))
        self.jobs = dict(sorted(self.jobs.items()))
        for job, deps in waiting:  # every job is known again: targets can be found
            job.deps_left = len(deps)
            if job.state == PRIORITY:
                self._reprioritize(job)
                continue
            if not deps:
                self._post(job, "depend", None, PRIORITY)
                self._reprioritize(job)
            for dep in deps:
                handler = self.dep_schemes.get(dep["scheme"])
                if handler is None:
                    self.raise_exception(job, "dependency", 0,
                                         f"scheme {dep['scheme']} is no longer loaded")
                    break
                handler.add(dependencies.Dependency(job, dep, self))
        for job in lost:
            job.R = None
            ctx = {"type": "restart", "severity": 0, "userid": job.userid,
                   "note": "job was running when the instance stopped"}
            job.exception = ctx
            self._post(job, "exception", ctx, CLEANUP)
            self._clean(job)
        if self.pending:
            self.request_schedule()
