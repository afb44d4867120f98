"""The scheduler side of the scheduler protocol (RFC 27's shape, batched per turn).

A scheduler plugin is a plain object with the `strato.core.hookspecs.Scheduler`
methods; `SchedModule` runs it behind messages, as Flux's libschedutil does for
Fluxion, so the job manager never calls it and it never sees a job manager
object. The messages, all carried by the broker (so the scheduler could as well
live in another process or broker):

scheduler -> job manager
  ``job-manager.sched-hello`` (rpc)  -> ``{jobs: [{id, priority, userid, t_submit,
  jobspec, R}]}``: every allocation held now, so a scheduler loaded while jobs
  run starts with their resources taken.
  ``job-manager.sched-ready`` (rpc) ``{mode: "unlimited"|"limited", limit}``: the
  job manager may now send alloc requests (at most `limit` outstanding if limited).
  ``job-manager.sched`` (one-way) ``{responses: [...]}``, each response one of
  ``{id, type: "alloc", R, annotations?}``, ``{id, type: "deny", note}``,
  ``{id, type: "annotate", annotations}`` (None clears), ``{id, type: "cancel"}``
  (answer to a cancel of a pending request) and ``{id, type: "free"}`` (the
  resources of a free request are back).

job manager -> scheduler
  ``sched.alloc`` (one-way) ``{jobs: [{id, priority, userid, t_submit, jobspec}]}``;
  ``sched.cancel`` (one-way) ``{ids}``; ``sched.prioritize`` (one-way)
  ``{jobs: [[id, priority], ...]}``; ``sched.free`` (one-way) ``{jobs: [{id, R,
  final}]}`` (``final`` false: a partial release of the ranks in R);
  ``sched.feasibility`` (rpc) ``{jobspec}`` -> ``{error: None|str}``;
  ``sched.resource-status`` (rpc); ``sched.drain`` (one-way) ``{ranks, drained}``;
  ``sched.stats`` (rpc) -> ``{name, pending, running}``.

Every message that arrives in one event-loop turn is applied first; the plugin's
``schedule`` runs once at the end of the turn with the whole ordered queue.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from dataclasses import dataclass, field

from strato.core import gcpolicy
from strato.core.errors import RPCError

log = logging.getLogger("strato.sched")


class PendingJob:
    """A job waiting for resources, as the scheduler knows it (plain data)."""

    __slots__ = ("id", "priority", "userid", "t_submit", "jobspec", "summary")

    def __init__(self, jobid: int, priority: int, userid: int, t_submit: float,
                 jobspec: dict, summary: dict) -> None:
        self.id = jobid
        self.priority = priority
        self.userid = userid
        self.t_submit = t_submit
        self.jobspec = jobspec
        self.summary = summary

    def order(self) -> tuple[int, int]:
        """Queue order: priority high to low, then submission (ids grow with time)."""
        return (-self.priority, self.id)


@dataclass
class SchedulePass:
    """What one call of ``Scheduler.schedule`` decided.

    ``allocated``: (job, R) pairs; ``rejected``: (job, one-line reason) pairs for
    jobs that can never run; ``annotations``: jobid -> annotation dict for the
    jobs still pending that should show one (e.g. a reservation's t_estimate);
    a pending job left out has none. ``more``: the scheduler stopped before the
    end of the queue by a limit of its own (sched-graph's ``queue-depth``) after
    deciding for some jobs, and wants another pass; it follows in the next turn
    of the event loop, so the broker reads its messages in between.
    """

    allocated: list
    rejected: list
    annotations: dict
    more: bool = False


@dataclass
class SchedEnv:
    """What a scheduler is built from: the plugin manager's hooks (for policy
    registries), the instance's R and nodes, its queues and its whole config
    (for messages that name what is installed)."""

    hook: object
    R: dict
    nodes: list
    queues: object
    config: dict = field(default_factory=dict)


class SchedModule:
    """Runs one scheduler plugin object behind the scheduler protocol."""

    def __init__(self, broker, name: str, scheduler, env: SchedEnv) -> None:
        self.broker = broker
        self.name = name
        self.scheduler = scheduler
        self.env = env
        self.queue: list[PendingJob] = []
        self.by_id: dict[int, PendingJob] = {}
        self.running: set[int] = set()
        self.annotated: dict[int, dict] = {}
        self._summaries: dict[int, tuple[dict, dict]] = {}
        self._responses: list[dict] = []
        self.loaded = False

    # -- life ------------------------------------------------------------------------------
    async def prepare(self, drained: list[int]) -> None:
        """Learn every allocation held now (hello) and take its resources.

        Nothing is registered yet: if a held R cannot be booked (the exception
        says why), this scheduler is dropped and the one running stays in charge.
        """
        if drained:
            self.scheduler.drain(drained, True)
        hello = await self.broker.call("job-manager.sched-hello", {"name": self.name})
        with gcpolicy.paused():  # booking a thousand allocations makes long-lived objects
            for j in hello["jobs"]:
                job = PendingJob(j["id"], j["priority"], j["userid"], j["t_submit"],
                                 j["jobspec"], self.summary(j["jobspec"]))
                self.scheduler.allocate_existing(job, j["R"])
                self.running.add(job.id)

    async def start(self) -> None:
        """Register the services and tell the job manager to send requests (ready)."""
        for method, fn in (("alloc", self._alloc), ("cancel", self._cancel),
                           ("prioritize", self._prioritize), ("free", self._free),
                           ("feasibility", self._feasibility),
                           ("resource-status", self._status), ("drain", self._drain),
                           ("stats", self._stats)):
            self.broker.register(f"sched.{method}", fn)
        self.loaded = True
        await self.broker.call("job-manager.sched-ready", {"mode": "unlimited"})

    def unload(self) -> None:
        """Stop answering: the job manager forgets its outstanding requests."""
        self.broker.unregister_prefix("sched")
        self.loaded = False

    # -- helpers -----------------------------------------------------------------------
    def summary(self, jobspec: dict) -> dict:
        """The summary of a jobspec, computed once per distinct jobspec object."""
        key = id(jobspec)
        hit = self._summaries.get(key)
        if hit is not None and hit[0] is jobspec:
            return hit[1]
        s = self.env.queues.summarize(jobspec)
        if len(self._summaries) > 4096:
            self._summaries.clear()
        self._summaries[key] = (jobspec, s)
        return s

    def _respond(self, response: dict) -> None:
        if not self._responses:
            self.broker.defer(self._flush)
        self._responses.append(response)

    def _flush(self) -> None:
        out, self._responses = self._responses, []
        if out and self.loaded:
            self.broker.send("job-manager.sched", {"responses": out})

    def _request_pass(self) -> None:
        self.broker.defer(self._pass)

    def _remove(self, job: PendingJob) -> None:
        del self.by_id[job.id]
        i = bisect.bisect_left(self.queue, job.order(), key=PendingJob.order)
        if i < len(self.queue) and self.queue[i] is job:
            del self.queue[i]
        else:
            self.queue.remove(job)
        if self.annotated.pop(job.id, None) is not None:
            self._respond({"id": job.id, "type": "annotate", "annotations": None})

    def _insert(self, job: PendingJob) -> None:
        self.by_id[job.id] = job
        q = self.queue
        if not q or job.order() > q[-1].order():
            q.append(job)
        else:
            bisect.insort(q, job, key=PendingJob.order)

    # -- the scheduling pass -----------------------------------------------------------
    def _pass(self) -> None:
        if not self.loaded or not self.queue:
            return
        result = self.scheduler.schedule(self.queue)
        done = set()
        for job, R in result.allocated:
            done.add(job.id)
            self.running.add(job.id)
            self._respond({"id": job.id, "type": "alloc", "R": R})
        for job, reason in result.rejected:
            done.add(job.id)
            self._respond({"id": job.id, "type": "deny", "note": reason})
        if done:
            n = 0
            q = self.queue
            while n < len(q) and q[n].id in done:
                n += 1
            if n == len(done):
                del q[:n]
            else:
                self.queue = [j for j in q if j.id not in done]
            for jobid in done:
                del self.by_id[jobid]
                self.annotated.pop(jobid, None)
        new = result.annotations
        for jobid in [j for j in self.annotated if j not in new]:
            del self.annotated[jobid]
            self._respond({"id": jobid, "type": "annotate", "annotations": None})
        for jobid, ann in new.items():
            if self.annotated.get(jobid) != ann and jobid in self.by_id:
                self.annotated[jobid] = ann
                self._respond({"id": jobid, "type": "annotate", "annotations": ann})
        if result.more and self.queue:
            asyncio.get_running_loop().call_soon(self._request_pass)

    # -- services ----------------------------------------------------------------------
    def _alloc(self, req) -> None:
        for j in req.body["jobs"]:
            jobid = j["id"]
            if jobid in self.by_id or jobid in self.running:
                log.warning("alloc request for job %s that is already known", jobid)
                continue
            try:
                summary = self.summary(j["jobspec"])
            except Exception as exc:  # one bad request must not drop the rest of the batch
                self._respond({"id": jobid, "type": "deny",
                               "note": str(exc) if isinstance(exc, RPCError)
                               else f"scheduler cannot read this job: {exc}"})
                continue
            self._insert(PendingJob(jobid, j["priority"], j["userid"], j["t_submit"],
                                    j["jobspec"], summary))
        self._request_pass()

    def _cancel(self, req) -> None:
        for jobid in req.body["ids"]:
            job = self.by_id.get(jobid)
            if job is not None:
                self._remove(job)
                self._respond({"id": jobid, "type": "cancel"})
        self._request_pass()

    def _prioritize(self, req) -> None:
        for jobid, priority in req.body["jobs"]:
            job = self.by_id.get(jobid)
            if job is not None and job.priority != priority:
                self._remove(job)
                job.priority = priority
                self._insert(job)
        self._request_pass()

    def _free(self, req) -> None:
        for j in req.body["jobs"]:
            jobid = j["id"]
            final = j.get("final", True)
            try:
                self.scheduler.free(jobid, j["R"], final)
            except Exception:  # answered anyway: the job must not stay in CLEANUP
                log.exception("%s: free of job %s failed", self.name, jobid)
            if final:
                self.running.discard(jobid)
            self._respond({"id": jobid, "type": "free"})
        self._request_pass()

    def _feasibility(self, req) -> None:
        jobspec = (req.body or {}).get("jobspec")
        if not isinstance(jobspec, dict):
            raise RPCError("sched.feasibility: a jobspec is required")
        if req.sender is not None:  # from a client, not from the job manager's ingest
            from strato.jobspec.model import JobspecError, validate_v1

            try:
                validate_v1(jobspec)
            except JobspecError as exc:
                raise RPCError(f"sched.feasibility: {exc}") from None
        job = PendingJob(0, 16, 0, 0.0, jobspec, self.summary(jobspec))
        req.respond({"error": self.scheduler.feasibility(job)})

    def _status(self, req) -> None:
        req.respond(self.scheduler.resource_status())

    def _drain(self, req) -> None:
        body = req.body
        self.scheduler.drain(body["ranks"], bool(body["drained"]))
        self._request_pass()

    def _stats(self, req) -> None:
        req.respond({"name": self.name, "pending": len(self.queue),
                     "running": len(self.running)})
