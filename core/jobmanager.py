"""The job manager: RFC 21 job states, the job eventlog, and the services that
submit, watch, wait for, cancel and list jobs.

It talks to the scheduler and to exec only by messages (see `strato.core.schedutil`
for the scheduler protocol and `strato.core.exec` for exec's): it sends
``sched.alloc``/``sched.free``/``exec.start``/``exec.kill`` and applies the
batches of responses and events that come back. Speed by design: a submitted
batch goes through ingest, gets ids and its first eventlog entries in one call;
eventlogs are lists kept in the KVS and appended in place (watchers are fed from
memory); alloc and free requests that arise in one event-loop turn leave in one
message at the end of the turn.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import signal
import time
from collections.abc import Callable

from strato.core import dependencies, ids
from strato.core.errors import ConfigError, RPCError
from strato.core.plugins import call_hook, registry
from strato.core.purge import Purger
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
from strato.jobspec.idset import decode_idset_cached
from strato.jobspec.model import job_name

log = logging.getLogger("strato.job-manager")

URGENCY_HOLD, URGENCY_DEFAULT, URGENCY_EXPEDITE = 0, 16, 31
PRIORITY_MAX = 4294967295


class Job:
    """One job as the job manager keeps it (plain data: hooks read it)."""

    __slots__ = ("id", "userid", "urgency", "priority", "state", "jobspec", "flags", "eventlog",
                 "kvsdir", "t_submit", "t_run", "t_cleanup", "t_inactive", "R", "name",
                 "summary", "result", "status", "exception",
                 "alloc_pending", "deps_left", "state_watchers", "cc",
                 "annotations", "free_pending", "queued", "memo", "list_record")

    def __init__(self, jobid: int, userid: int, urgency: int, jobspec: dict, flags: int,
                 summary: dict, kvsdir: str | None = None, name: str | None = None) -> None:
        self.id = jobid
        self.userid = userid
        self.urgency = urgency
        self.priority = 0
        self.state = NEW
        self.jobspec = jobspec
        self.flags = flags
        self.eventlog: list = []
        self.kvsdir = kvsdir or ids.kvs_dir(jobid)
        self.t_submit = 0.0
        self.t_run = 0.0
        self.t_cleanup = 0.0
        self.t_inactive = 0.0
        self.R: dict | None = None
        self.name = job_name(jobspec) if name is None else name
        self.summary = summary
        self.result: str | None = None
        self.status: int | None = None
        self.exception: dict | None = None
        self.alloc_pending = False  # an alloc request is outstanding at the scheduler
        self.free_pending = False  # a free request is outstanding at the scheduler
        self.queued = False  # in the job manager's ordered queue of pending jobs
        self.deps_left = 0
        self.state_watchers: list | None = None
        self.cc: int | None = None  # this copy's index under --cc
        self.annotations: dict | None = None  # set by the scheduler (RFC 27)
        self.memo: dict | None = None  # from memo events, e.g. a child instance's uri
        self.list_record: dict | None = None  # job-list's record, kept once inactive

    @property
    def state_name(self) -> str:
        return STATE_NAMES[self.state]

    def placement(self) -> list | None:
        """Where the job ran, as job-list shows it: ``[ranks, nodelist, nnodes,
        expiration]`` from its R (None without one); nnodes is counted only for a
        job that did not ask for a number of nodes (else None)."""
        if self.R is None:
            return None
        ex = self.R["execution"]
        nnodes = None
        if self.summary["nnodes"] is None:  # -n without -N: as many nodes as R spans
            nnodes = len({r for e in ex["R_lite"] for r in decode_idset_cached(e["rank"])})
        return [",".join(e["rank"] for e in ex["R_lite"]), ",".join(ex.get("nodelist", [])),
                nnodes, ex.get("expiration", 0.0)]


def record_of(job: Job) -> list:
    """What an inactive job's sealed KVS directory records about it: every field the
    job manager and job-list keep, but its jobspec, eventlog and R (`SealedJob`), and
    its summary without the compiled constraint (a function; only a scheduler uses it)."""
    summary = {k: v for k, v in job.summary.items() if k != "constraint"}
    return [job.userid, job.urgency, job.priority, job.flags, job.t_submit, job.t_run,
            job.t_cleanup, job.t_inactive, job.status, job.exception, job.cc, job.memo,
            job.name, summary, job.placement()]


class SealedJob(Job):
    """An inactive job recovered from its sealed record (`record_of`): its jobspec,
    eventlog and R stay in the statedir until something reads them, so a restart
    over 100,000 inactive jobs reads none of them."""

    __slots__ = ("kvs", "where")

    @classmethod
    def from_record(cls, jobid: int, kvsdir: str, record: list, kvs) -> SealedJob:
        job = cls.__new__(cls)
        (job.userid, job.urgency, job.priority, job.flags, job.t_submit, job.t_run,
         job.t_cleanup, job.t_inactive, job.status, job.exception, job.cc, job.memo,
         job.name, job.summary, job.where) = record
        job.id, job.kvsdir, job.kvs, job.state = jobid, kvsdir, kvs, INACTIVE
        job.result = result_of(job)
        job.alloc_pending = job.free_pending = job.queued = False
        job.deps_left = 0
        job.state_watchers = job.annotations = job.list_record = None
        return job

    def placement(self) -> list | None:
        return self.where  # listing inactive jobs reads no R

    def __getattr__(self, name: str) -> object:
        """Read the jobspec, eventlog or R from the KVS the first time it is asked for."""
        if name not in ("jobspec", "eventlog", "R"):
            raise AttributeError(name)
        value = self.kvs.get(f"{self.kvsdir}.{name}")
        setattr(self, name, value)
        return value


def result_of(job: Job) -> str:
    """RFC 21 result of an ended job: an exception's type decides, else the status."""
    exc = job.exception
    if exc is not None and exc["severity"] == 0:
        return {"cancel": "CANCELED", "timeout": "TIMEOUT"}.get(exc["type"], "FAILED")
    return "FAILED" if job.status else "COMPLETED"


def _order(job: Job) -> tuple[int, int]:
    return (-job.priority, job.id)


#: the events whose context `apply_event` reads (any other leaves the state as it is)
_READS_CONTEXT = frozenset(("priority", "urgency", "finish", "exception", "memo"))


def apply_event(job: Job, entry: dict) -> int:
    """Apply one eventlog entry to `job`'s fields and return the state it leads to.

    The one event-to-state function (RFC 21): the live job manager posts an event
    and moves the job to the state this returns; recovery after a restart replays
    a job's whole eventlog through it.
    """
    name = entry["name"]
    state = job.state
    if name == "validate":
        return DEPEND if state == NEW else state
    if name == "depend":
        return PRIORITY if state == DEPEND else state
    if name == "alloc":
        job.t_run = entry["timestamp"]
        return RUN
    if name == "clean":
        job.t_inactive = entry["timestamp"]
        return INACTIVE
    if name not in _READS_CONTEXT:  # submit, start, release, free, ...
        return state
    ctx = entry.get("context") or {}
    if name == "priority":
        job.priority = ctx.get("priority", 0)
        return SCHED if state == PRIORITY else state
    if name == "urgency":
        job.urgency = ctx.get("urgency", job.urgency)
    elif name == "finish":
        job.status = ctx.get("status")
        job.t_cleanup = entry["timestamp"]
        return CLEANUP
    elif name == "exception" and ctx.get("severity") == 0:
        if job.exception is None:
            job.exception = ctx
        if state & (NEW | PENDING):
            job.t_cleanup = entry["timestamp"]
            return CLEANUP
    elif name == "memo":
        memo = dict(job.memo or {})
        for key, value in ctx.items():  # as Flux: a null value removes the key
            if value is None:
                memo.pop(key, None)
            else:
                memo[key] = value
        job.memo = memo or None
    return state


class JobManager:
    """Jobs from submission to INACTIVE (see module docstring)."""

    def __init__(self, instance) -> None:
        self.instance = instance
        self.broker = instance.broker
        self.kvs = instance.kvs
        self.hook = instance.pm.hook
        self.nodes = instance.nodes
        self.jobs: dict[int, Job] = {}
        self.active: dict[int, Job] = {}
        # SCHED jobs with priority > 0 and no allocation, kept in scheduling order
        # (priority high to low, then submission order).
        self.pending: list[Job] = []
        self.fluid = ids.FluidGenerator(0, instance.fluid_epoch)
        self.queues = instance.queues
        self._has_state_hook = bool(self.hook.job_state_change.get_hookimpls())
        # ended jobs are also counted by result (COMPLETED, FAILED, ...), so
        # job-list.job-stats answers without walking every job ever run
        self.counts = {"submitted": 0, "inactive": 0}
        self.closing = False  # the instance is shutting down: no new jobs
        try:
            self.kill_timeout = parse_fsd(str(instance.config.get("exec", {})
                                              .get("kill-timeout", 5.0)))
        except ValueError as exc:
            raise ConfigError(f"exec.kill-timeout: {exc}") from None
        self.dep_schemes = registry(self.hook.job_register_dependency_schemes,
                                    "dependency scheme")
        self.purger = Purger(self, instance.config)
        # the scheduler protocol
        self.sched_ready = False
        self.sched_limit = 0  # 0: unlimited
        self.outstanding = 0  # alloc requests the scheduler holds
        self._unsent: list[Job] = []  # pending jobs not yet sent (unlimited mode)
        self._cancels: list[int] = []
        self._reprios: list[list[int]] = []
        self._frees: list[Job] = []
        self._stale = 0  # jobs in `pending` that are no longer queued
        self.held: dict[int, dict[int, tuple[set, set]]] = {}  # rank -> jobid -> cores, gpus
        for topic, fn in (("job-manager.sched-hello", self._sched_hello),
                          ("job-manager.sched-ready", self._sched_ready),
                          ("job-manager.sched", self._sched_responses),
                          ("job-manager.exec", self._exec_events)):
            self.broker.register(topic, fn)

    # -- eventlog and states -----------------------------------------------------------
    def _post(self, job: Job, name: str, context: dict | None = None) -> None:
        """Append an event to the job's eventlog and move it to the state it leads to."""
        entry = {"timestamp": time.time(), "name": name}
        if context is not None:
            entry["context"] = context
        job.eventlog.append(entry)
        self.kvs.notify_append(job.kvsdir + ".eventlog", job.eventlog, (entry,))
        state = apply_event(job, entry)
        if state != job.state:
            self._set_state(job, state)

    def _set_state(self, job: Job, state: int) -> None:
        old = job.state
        job.state = state
        if self._has_state_hook:
            call_hook(self.hook, "job_state_change", job=job, old=STATE_NAMES[old],
                      new=STATE_NAMES[state])
        watchers = job.state_watchers
        if watchers:
            for mask, _ in watchers:  # usually none is for this state: nothing is built
                if mask & state:
                    self._fire_watchers(job, state)
                    break

    @staticmethod
    def _fire_watchers(job: Job, state: int) -> None:
        """Call, once, the state watchers of `job` that wait for `state`."""
        fire = [w for w in job.state_watchers if w[0] & state]
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
            call_hook(self.hook, "ingest_frobnicate", jobspec=jobspec, user=userid)
            call_hook(self.hook, "ingest_validate", jobspec=jobspec, user=userid)
        except Exception as exc:
            raise RPCError(str(exc) or exc.__class__.__name__) from None
        dependencies.check(jobspec, self.dep_schemes, self)
        summary = self.queues.summarize(jobspec)
        queue = self.queues.of(jobspec)
        if not queue.enabled:
            what = f"queue {queue.name}" if queue.name else "job submission"
            raise RPCError(f"{what} is disabled: {queue.disable_reason}")
        return summary

    async def submit(self, jobspecs: list[dict], userid: int, urgency: int = URGENCY_DEFAULT,
                     flags: int = 0, cc: list[int] | None = None) -> list[int]:
        """Validate every jobspec, ask the scheduler whether each can ever run, then
        create the jobs; all or nothing.

        `cc` gives each job its copy index (``--cc``), seen by the shell as
        ``STRATO_JOB_CC`` and ``{{cc}}`` in output templates.
        """
        if self.closing:
            raise RPCError("the instance is shutting down", "ENOSYS")
        if self.kvs.failure is not None:  # a job it could not record would be lost
            raise RPCError(f"{self.kvs.failure}; new jobs refused", self.kvs.failure_errno)
        if cc is not None and (len(cc) != len(jobspecs)
                               or not all(isinstance(c, int) for c in cc)):
            raise RPCError("cc must be a list of integers, one per job")
        if not isinstance(urgency, int) or not 0 <= urgency <= 31:
            raise RPCError("urgency must be an integer from 0 to 31")
        summaries = []  # (summary, name) of each job: the same for a shared jobspec
        cache: dict[int, tuple[dict, str]] = {}
        distinct = []
        for i, js in enumerate(jobspecs):
            key = id(js)
            if key in cache:
                summaries.append(cache[key])
                continue
            try:
                cache[key] = known = (self.ingest(js, userid), job_name(js))
            except RPCError as exc:
                raise RPCError(self._prefix(i, jobspecs) + str(exc)) from None
            summaries.append(known)
            distinct.append((i, js))
        if "sched.feasibility" in self.broker.services:
            for i, js in distinct:
                why = (await self.broker.call("sched.feasibility", {"jobspec": js}))["error"]
                if why is not None:
                    raise RPCError(self._prefix(i, jobspecs) + why)
        out = []
        now = time.time()
        for i, (js, (summary, name)) in enumerate(zip(jobspecs, summaries, strict=True)):
            job = Job(self.fluid.next(), userid, urgency, js, flags, summary, name=name)
            if cc is not None:
                job.cc = cc[i]
            self._create(job, now)
            out.append(job.id)
        self.counts["submitted"] += len(out)
        return out

    @staticmethod
    def _prefix(i: int, jobspecs: list) -> str:
        return f"job {i}: " if len(jobspecs) > 1 else ""

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
        validate = {"timestamp": now, "name": "validate"}
        ev.append(validate)
        self.kvs.put_quiet(job.kvsdir + ".eventlog", ev)
        if self._has_state_hook:
            self._set_state(job, NEW)
        self._set_state(job, apply_event(job, validate))
        deps = dependencies.dependencies_of(job.jobspec)
        if not deps:
            self._post(job, "depend")
            self._reprioritize(job)
            return
        job.deps_left = len(deps)
        for dep in deps:
            self._post(job, "dependency-add", {"description": dependencies.describe(dep)})
        for dep in deps:
            if job.state != DEPEND:
                break
            self.dep_schemes[dep["scheme"]].add(dependencies.Dependency(job, dep, self))

    def _sealed_job(self, kvsdir: str, digits: str, record: list,
                    shared: dict[tuple, dict]) -> SealedJob:
        jobid = int(digits, 16) if len(digits) == 16 else ids.parse(kvsdir)
        job = SealedJob.from_record(jobid, kvsdir, record, self.kvs)
        summary = job.summary
        summary["constraint"] = None
        job.summary = shared.setdefault(tuple(summary.items()), summary)
        return job

    def dependency_resolved(self, d: dependencies.Dependency) -> None:
        job = d.job
        if job.state != DEPEND:
            return
        self._post(job, "dependency-remove", {"description": dependencies.describe(d.dep)})
        job.deps_left -= 1
        if job.deps_left == 0:
            self._post(job, "depend")
            self._reprioritize(job)

    def dependency_failed(self, d: dependencies.Dependency, note: str) -> None:
        if d.job.state == DEPEND:
            self.raise_exception(d.job, "dependency", 0,
                                 f"{dependencies.describe(d.dep)}: {note}")

    def _reprioritize(self, job: Job) -> None:
        prio = call_hook(self.hook, "job_priority", job=job)
        old = job.priority
        self._post(job, "priority", {"priority": int(prio) if prio is not None
                                     else job.urgency})
        if job.state != SCHED or job.R is not None:
            return
        if job.queued:
            if job.priority == old:
                return
            self._dequeue(job)
            if job.alloc_pending:
                if job.priority == 0:
                    self._cancel_request(job)
                else:
                    self._reprios.append([job.id, job.priority])
                    self._request_flush()
        if job.priority > 0:
            self._enqueue(job)

    def _dequeue(self, job: Job) -> None:
        """Take a job out of the ordered queue (a rare path: urgency, exceptions)."""
        if job.queued:
            job.queued = False
            self.pending.remove(job)

    def _prune(self) -> None:
        """Drop the jobs that left the queue this turn; usually a prefix, in one step."""
        p = self.pending
        n = 0
        while n < len(p) and not p[n].queued:
            n += 1
        if n == self._stale:
            del p[:n]
        else:
            self.pending = [j for j in p if j.queued]
        self._stale = 0

    def _enqueue(self, job: Job) -> None:
        """Insert into `pending` in order (a new job usually goes at the end) and
        have it sent to the scheduler at the end of the turn."""
        job.queued = True
        pending = self.pending
        if not pending or _order(job) > _order(pending[-1]):
            pending.append(job)
        else:
            bisect.insort(pending, job, key=_order)
        if not job.alloc_pending:
            self._unsent.append(job)
            self._request_flush()

    def _cancel_request(self, job: Job) -> None:
        """Withdraw the job's outstanding alloc request."""
        job.alloc_pending = False
        self.outstanding -= 1
        self._cancels.append(job.id)
        if self.sched_limit:  # a slot is free: the next job in order may be sent
            self.request_schedule()
        self._request_flush()

    # -- the scheduler protocol ------------------------------------------------------------
    def request_schedule(self) -> None:
        """Send the requests that arose this turn at its end (kept for callers that
        changed what may be scheduled, e.g. a started queue)."""
        self._unsent = [j for j in self.pending if j.queued and not j.alloc_pending]
        self._request_flush()

    def _request_flush(self) -> None:
        self.broker.defer(self._flush)

    def _flush(self) -> None:
        """Send this turn's cancel, prioritize, free and alloc requests, one message each."""
        if not self.sched_ready:
            return
        send = self.broker.send
        if self._cancels:
            send("sched.cancel", {"ids": self._cancels})
            self._cancels = []
        if self._reprios:
            send("sched.prioritize", {"jobs": self._reprios})
            self._reprios = []
        if self._frees:
            frees, self._frees = self._frees, []
            send("sched.free", {"jobs": [{"id": j.id, "R": j.R, "final": True}
                                         for j in frees]})
        if self._unsent:
            self._send_allocs()

    def _send_allocs(self) -> None:
        unsent, self._unsent = self._unsent, []
        limit = self.sched_limit
        if limit:  # only the first few in queue order may be outstanding
            unsent = [j for j in self.pending if j.queued and not j.alloc_pending]
        queues = self.queues.named(None)
        stopped = {q.name for q in queues if not q.started}
        batch = []
        for job in unsent:
            if job.alloc_pending or not job.queued or job.summary["queue"] in stopped:
                continue
            if limit and self.outstanding >= limit:
                break
            job.alloc_pending = True
            self.outstanding += 1
            batch.append({"id": job.id, "priority": job.priority, "userid": job.userid,
                          "t_submit": job.t_submit, "jobspec": job.jobspec})
        if batch:
            self.broker.send("sched.alloc", {"jobs": batch})

    def stop_queue(self, names: set[str]) -> None:
        """Withdraw the outstanding alloc requests of jobs in the stopped queues."""
        for job in self.pending:
            if job.alloc_pending and job.summary["queue"] in names:
                self._cancel_request(job)

    def _sched_hello(self, req) -> None:
        """A scheduler is loading: tell it every allocation held now (RFC 27 hello)."""
        req.respond({"jobs": [{"id": j.id, "priority": j.priority, "userid": j.userid,
                               "t_submit": j.t_submit, "jobspec": j.jobspec, "R": j.R}
                              for j in self.active.values() if j.R is not None]})

    def _sched_ready(self, req) -> None:
        """{mode: unlimited|limited, limit}: the scheduler takes requests now."""
        body = req.body or {}
        mode = body.get("mode", "unlimited")
        if mode not in ("unlimited", "limited"):
            raise RPCError(f"unknown scheduler mode '{mode}'")
        limit = body.get("limit", 0) if mode == "limited" else 0
        if not isinstance(limit, int) or limit < 0 or (mode == "limited" and limit == 0):
            raise RPCError("limited mode needs a positive limit")
        self.sched_unloaded()  # whatever a previous scheduler held is forgotten
        self.sched_limit = limit
        self.sched_ready = True
        # frees that waited for a scheduler: the hello listed those jobs as allocated
        self._frees = [j for j in self.active.values() if j.free_pending]
        self.request_schedule()
        req.respond()

    def sched_unloaded(self) -> None:
        """The scheduler went away: its requests are forgotten; they are sent again
        to the next one after its hello."""
        self.sched_ready = False
        for job in self.pending:
            job.alloc_pending = False
        self.outstanding = 0
        self._cancels, self._reprios, self._frees = [], [], []

    def _sched_responses(self, req) -> None:
        """A batch of scheduler responses (alloc, deny, annotate, cancel, free)."""
        try:
            for r in req.body["responses"]:
                try:
                    self._sched_response(r)
                except Exception:  # one bad response must not drop the rest
                    log.exception("bad scheduler response %.200r", r)
        finally:
            if self._stale:
                self._prune()

    def _sched_response(self, r: dict) -> None:
        job = self.active.get(r.get("id"))
        rtype = r.get("type")
        if rtype == "alloc":
            self._sched_alloc(job, r)
        elif job is None:
            return
        elif rtype == "annotate":
            job.annotations = r.get("annotations") or None
        elif rtype == "deny":
            if not job.alloc_pending:
                return  # the request was withdrawn meanwhile: the answer is stale
            self._request_done(job)
            self.raise_exception(job, "alloc", 0, str(r.get("note", "denied")))
        elif rtype == "cancel":
            pass  # withdrawn: already settled on this side
        elif rtype == "free":
            if job.free_pending:
                job.free_pending = False
                self._post(job, "free")
                self._clean(job)
        else:
            log.warning("unknown scheduler response type %r", rtype)

    def _request_done(self, job: Job) -> None:
        """The job's alloc request is answered: it leaves the queue (lazily)."""
        job.alloc_pending = False
        self.outstanding -= 1
        if self.sched_limit:
            self.request_schedule()
        if job.queued:
            job.queued = False
            self._stale += 1

    def _sched_alloc(self, job: Job | None, r: dict) -> None:
        R = r.get("R")
        if job is None or not job.alloc_pending:
            # canceled meanwhile: the resources go straight back
            if isinstance(R, dict):
                self.broker.send("sched.free", {"jobs": [{"id": r.get("id"), "R": R,
                                                          "final": True}]})
            return
        self._request_done(job)
        why = self._check_R(job, R)
        if why is not None:
            if isinstance(R, dict):
                self.broker.send("sched.free", {"jobs": [{"id": job.id, "R": R,
                                                          "final": True}]})
            self.raise_exception(job, "alloc", 0, f"scheduler returned invalid R: {why}")
            return
        self._alloc(job, R)

    def _check_R(self, job: Job, R: object) -> str | None:
        """Why `R` cannot be the job's allocation (None: it can): malformed, not in
        the instance, held by another job, or not the shape the job asked for."""
        try:
            entries = R["execution"]["R_lite"]
            taken = []
            for e in entries:
                children = e.get("children", {})
                cores = set(decode_idset_cached(children.get("core", "")))
                gpus = set(decode_idset_cached(children.get("gpu", "")))
                for rank in decode_idset_cached(e["rank"]):
                    taken.append((rank, cores, gpus))
        except (KeyError, TypeError, ValueError, AttributeError):
            return "malformed R"
        nodes = self.nodes
        nnodes = len(nodes)
        ncores = ngpus = 0
        for rank, cores, gpus in taken:
            if not 0 <= rank < nnodes:
                return f"rank {rank} is not in this instance"
            node = nodes[rank]
            if not cores.issubset(node.cores) or (gpus and not gpus.issubset(node.gpus)):
                return f"rank {rank} has no such core or gpu"
            held = self.held.get(rank)
            if held:
                for other in held.values():
                    if cores & other[0] or gpus & other[1]:
                        return f"resources on rank {rank} are held by another job"
            ncores += len(cores)
            if gpus:
                ngpus += len(gpus)
        s = job.summary
        if ncores < s["nslots"] * s["cores_per_slot"] or ngpus < s["nslots"] * s["gpus_per_slot"]:
            return "fewer cores or gpus than the job asked for"
        if s["nnodes"] is not None and len({t[0] for t in taken}) != s["nnodes"]:
            return f"not {s['nnodes']} node(s)"
        for rank, cores, gpus in taken:
            self.held.setdefault(rank, {})[job.id] = (cores, gpus)
        return None

    def _release_held(self, job: Job) -> None:
        for entry in job.R["execution"]["R_lite"]:
            for rank in decode_idset_cached(entry["rank"]):
                held = self.held.get(rank)
                if held is not None:
                    held.pop(job.id, None)

    def _alloc(self, job: Job, R: dict) -> None:
        job.R = R
        job.annotations = None
        self.kvs.put_quiet(job.kvsdir + ".R", R)
        self._post(job, "alloc")
        self.broker.send("exec.start", {"id": job.id, "jobspec": job.jobspec, "R": R,
                                        "userid": job.userid, "cc": job.cc})

    # -- exec events -----------------------------------------------------------------------
    def _exec_events(self, req) -> None:
        """A batch of exec events: ``{events: [{id, name, context}]}`` with names
        start, finish {status}, release {ranks, final} and exception {type, note}."""
        for ev in req.body["events"]:
            try:
                self._exec_event(ev)
            except Exception:  # one bad event must not drop the rest
                log.exception("bad exec event %.200r", ev)

    def _exec_event(self, ev: dict) -> None:
        job = self.active.get(ev.get("id"))
        if job is None or job.state not in (RUN, CLEANUP):
            return
        name = ev.get("name")
        if name == "start":
            if job.state == RUN:
                self._post(job, "start")
        elif name == "finish":
            self._finish(job, (ev.get("context") or {}).get("status", 0))
        elif name == "exception":
            if job.state == RUN:
                ctx = ev.get("context") or {}
                self.raise_exception(job, str(ctx.get("type", "exec")), 0,
                                     str(ctx.get("note", "")))
        else:
            log.warning("unknown exec event %r for job %s", name, ids.f58(job.id))

    def _finish(self, job: Job, status: int) -> None:
        """All tasks have exited with the highest wait status `status`."""
        if job.state != RUN:
            return
        if not isinstance(status, int):
            status = 1 << 8
        if job.exception is None and job.memo and "uri" in job.memo and status & 0x7F:
            # A child instance that was killed (not asked to stop) must say so, or its
            # job would look like an ordinary failed command.
            self.raise_exception(job, "exec", 0,
                                 f"child instance terminated by signal {status & 0x7F}")
        self._post(job, "finish", {"status": status})
        self._post(job, "release", {"ranks": "all", "final": True})
        self._release_held(job)
        job.free_pending = True
        self._frees.append(job)
        self._request_flush()

    def _clean(self, job: Job) -> None:
        job.result = result_of(job)
        self._post(job, "clean")
        # nothing changes it any more; its record is made only if a statedir keeps it
        self.kvs.seal(job.kvsdir, lambda: record_of(job))
        del self.active[job.id]
        self._count_ended(job)
        self.instance.job_ended(job)
        self.purger.add(job)

    def _count_ended(self, job: Job) -> None:
        counts = self.counts
        counts["inactive"] += 1
        counts[job.result] = counts.get(job.result, 0) + 1

    def kill(self, job: Job, signum: int) -> None:
        """Send a signal to the tasks of a running job."""
        self.broker.send("exec.kill", {"id": job.id, "signum": signum})

    # -- exceptions, cancel, urgency --------------------------------------------------------
    def raise_exception(self, job: Job, etype: str, severity: int, note: str = "",
                        userid: int | None = None) -> None:
        """Post an exception; severity 0 ends the job (killing its tasks if running)."""
        if job.state == INACTIVE:
            raise RPCError(f"job {ids.f58(job.id)} is inactive", "EINVAL")
        ctx = {"type": etype, "severity": severity, "note": note,
               "userid": job.userid if userid is None else userid}
        pending = bool(job.state & (NEW | PENDING))
        if pending and severity == 0:
            if job.alloc_pending:
                self._cancel_request(job)
            self._dequeue(job)
        self._post(job, "exception", ctx)
        if severity != 0:
            return
        if pending:
            self._clean(job)
        elif job.state == RUN:
            self.kill(job, signal.SIGTERM)
            loop = asyncio.get_running_loop()
            loop.call_later(self.kill_timeout, self._kill_hard, job)

    async def shutdown(self, keep_pending: bool = False, keep_running: bool = False) -> None:
        """End the jobs of an instance that is stopping (its initial program exited).

        Nothing is submitted or scheduled any more; every running job is cancelled
        (SIGTERM, then SIGKILL after ``exec.kill-timeout``) unless `keep_running`,
        and so is every pending one unless `keep_pending` (a statedir keeps them
        for the restart: running ones keep running meanwhile). Returns
        once all of those are inactive, so that their eventlogs say how they ended
        (a child's ``--dump``) and their processes are gone before this instance's
        own job ends: a child instance among them does the same first, which makes
        a tree's teardown complete from the top. Gives up after the kill timeout and
        a few seconds more: the shell host then kills what is left."""
        self.closing = True
        for q in self.queues.named(None):
            q.started, q.stop_reason = False, "the instance is shutting down"
        self.stop_queue({q.name for q in self.queues.named(None)})
        ending = [j for j in self.active.values()
                  if not (keep_pending and j.state & (NEW | PENDING))
                  and not (keep_running and j.state == RUN)]
        if not ending:
            return
        left = {j.id for j in ending}
        done = asyncio.get_running_loop().create_future()

        def gone(job: Job) -> None:
            left.discard(job.id)
            if not left and not done.done():
                done.set_result(None)

        for job in ending:
            if job.state & (NEW | PENDING | RUN):  # CLEANUP: already ending
                self.raise_exception(job, "cancel", 0, "the instance is shutting down")
        for job in ending:
            self.watch_state(job, INACTIVE, gone)
        try:
            await asyncio.wait_for(done, self.kill_timeout + 5.0)
        except TimeoutError:
            log.warning("%d job(s) did not end at shutdown", len(left))

    def _kill_hard(self, job: Job) -> None:
        if job.state == RUN:
            self.kill(job, signal.SIGKILL)

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

    def memo(self, job: Job, memo: object) -> None:
        """Post a ``memo`` event: small facts a running job tells about itself
        (a child instance posts its ``uri``); keys with null values are removed."""
        if not isinstance(memo, dict) or not memo or not all(isinstance(k, str) for k in memo):
            raise RPCError("memo must be a non-empty object")
        if job.state & INACTIVE:
            raise RPCError(f"job {ids.f58(job.id)} is inactive", "EINVAL")
        self._post(job, "memo", memo)

    def set_urgency(self, job: Job, urgency: int, userid: int) -> int:
        if not isinstance(urgency, int) or not 0 <= urgency <= 31:
            raise RPCError("urgency must be an integer from 0 to 31")
        if not job.state & (NEW | PENDING):
            raise RPCError(f"job {ids.f58(job.id)} is not pending", "EINVAL")
        old = job.urgency
        self._post(job, "urgency", {"userid": userid, "urgency": urgency})
        if job.state & (PRIORITY | SCHED):
            self._reprioritize(job)  # a job still in DEPEND gets its priority later
        return old

    # -- restart -------------------------------------------------------------------------
    def recover(self) -> None:
        """Rebuild the jobs of a restarted instance from their eventlogs in the KVS.

        Every eventlog is replayed through `apply_event`, the function the live job
        manager uses. Pending jobs return to the queue. Jobs that were running hold
        their resources again (the scheduler learns them from its hello) and go back
        to exec (``exec.start`` with ``reattach``), whose backend takes them up where
        they are (their tasks kept running) or ends them; jobs whose end was
        recorded give their resources back once a scheduler is loaded.
        """
        from strato.core.kvs import KvsDir, SealedDir, name_of_dir

        root = self.kvs.get("job")
        if not isinstance(root, KvsDir):
            return
        found = []
        inactive: list[Job] = []
        shared: dict[tuple, dict] = {}  # jobs submitted together share their summary
        for ka, a in root.items():
            for kb, b in a.items():
                for kc, c in b.items():
                    for kd, d in c.items():
                        if type(d) is SealedDir:  # an inactive job: its record only
                            kvsdir = f"job.{ka}.{kb}.{kc}.{kd}"
                            try:
                                job = self._sealed_job(kvsdir, ka + kb + kc + kd, d.record,
                                                       shared)
                            except (ValueError, TypeError):
                                log.error("%s: its record in statedir %s is corrupt; it is "
                                          "left out", name_of_dir(kvsdir), self.kvs.statedir)
                                continue
                            self.jobs[job.id] = job
                            self._count_ended(job)
                            inactive.append(job)
                        elif isinstance(d, KvsDir) and "eventlog" in d and "jobspec" in d:
                            found.append((f"job.{ka}.{kb}.{kc}.{kd}", ka + kb + kc + kd, d))
        running: list[Job] = []
        cleaning: list[Job] = []
        summaries: dict[int, tuple[dict, str]] = {}
        waiting: list[tuple[Job, list]] = []
        for kvsdir, digits, d in found:
            try:  # the KVS form of a job id is its 64 bits in four groups of hex digits
                jobid = int(digits, 16) if len(digits) == 16 else ids.parse(kvsdir)
            except ValueError:
                continue
            eventlog = d["eventlog"]
            submit = eventlog[0]
            ctx = submit.get("context", {})
            js = d["jobspec"]
            known = summaries.get(id(js))  # jobs submitted together share a jobspec
            if known is None:
                try:
                    known = summaries[id(js)] = (self.queues.summarize(js), job_name(js))
                except Exception:
                    continue  # no longer valid here (its queue is gone): nothing to recover
            job = Job(jobid, ctx.get("userid", 0), ctx.get("urgency", 16), js,
                      ctx.get("flags", 0), known[0], kvsdir, known[1])
            job.eventlog = eventlog
            job.t_submit = submit["timestamp"]
            job.cc = ctx.get("cc")
            for e in eventlog:
                job.state = apply_event(job, e)
            job.R = d.get("R")
            state = job.state
            self.jobs[jobid] = job
            if state == INACTIVE:  # from a format 1 statedir: sealed from now on
                job.result = result_of(job)
                self._count_ended(job)
                inactive.append(job)
                self.kvs.seal(kvsdir, record_of(job))
                continue
            self.active[jobid] = job
            if state == RUN:
                running.append(job)
            elif state == CLEANUP:
                cleaning.append(job)
            elif state == SCHED and job.priority > 0:
                self._enqueue(job)
            elif state == PRIORITY:
                waiting.append((job, []))
            elif state == DEPEND:
                removed = {(e.get("context") or {}).get("description") for e in eventlog
                           if e["name"] == "dependency-remove"}
                deps = [dep for dep in dependencies.dependencies_of(js)
                        if dependencies.describe(dep) not in removed]
                waiting.append((job, deps))
        self.jobs = dict(sorted(self.jobs.items()))
        if self.jobs:  # a new job must not take a recovered one's id
            self.fluid.advance_past(next(reversed(self.jobs)))
        inactive.sort(key=lambda j: j.t_inactive)
        for job in inactive:  # oldest first; the limits apply at the end of this turn
            self.purger.add(job)
        for job, deps in waiting:  # every job is known again: targets can be found
            job.deps_left = len(deps)
            if job.state == PRIORITY:
                self._reprioritize(job)
                continue
            if not deps:
                self._post(job, "depend")
                self._reprioritize(job)
            for dep in deps:
                handler = self.dep_schemes.get(dep["scheme"])
                if handler is None:
                    self.raise_exception(job, "dependency", 0,
                                         f"scheme {dep['scheme']} is no longer loaded")
                    break
                handler.add(dependencies.Dependency(job, dep, self))
        for job in cleaning:
            if job.R is None:  # it never had resources: nothing to give back
                self._clean(job)
            else:
                job.free_pending = True  # sent once the scheduler is ready
        for job in running:
            why = self._check_R(job, job.R) if isinstance(job.R, dict) else "no R"
            if why is not None:
                log.error("job %s cannot run on: %s", ids.f58(job.id), why)
                job.R = None
                self.raise_exception(job, "node-failure", 0, f"after the restart: {why}")
                self._post(job, "finish", {"status": signal.SIGKILL})
                self._clean(job)
                continue
            started = any(e["name"] == "start" for e in job.eventlog)
            self.broker.send("exec.start", {"id": job.id, "jobspec": job.jobspec, "R": job.R,
                                            "userid": job.userid, "cc": job.cc,
                                            "reattach": True, "started": started,
                                            "t_run": job.t_run})
