"""Broker services of the job manager: submit, watch, wait, cancel, signal, list.

Each is a thin layer between a request body and `JobManager`; the shapes of the
bodies are documented on each handler, and `strato.job` is their client.
"""

from __future__ import annotations

import asyncio
import os
import time

from strato.core import ids
from strato.core.dependencies import dependencies_of, describe
from strato.core.errors import RPCError
from strato.core.jobmanager import Job, JobManager
from strato.core.states import INACTIVE, PENDING, STATE_NAMES

#: seconds between two messages of results to one waiter while jobs keep ending:
#: each message wakes the waiting client, and the broker's send of it costs as much
#: as a job's own bookkeeping; a result after a quiet spell goes at once
WAIT_BATCH_INTERVAL = 0.005


def job_record(job: Job) -> dict:
    """The summary of a job that ``strato jobs`` and ``job.list`` show (shared: copy
    it to change it).

    Nothing of an inactive job changes any more, and most jobs of a long-lived
    instance are inactive, so their record is made once: ``strato jobs -a`` on
    1000 ended jobs then costs the broker the encoding of the answer only."""
    if job.list_record is not None:
        return job.list_record
    s = job.summary
    rec = {"id": job.id, "userid": job.userid, "urgency": job.urgency,
           "priority": job.priority, "state": STATE_NAMES[job.state], "name": job.name,
           "ntasks": s["ntasks"], "nnodes": s["nnodes"],
           "ncores": s["nslots"] * s["cores_per_slot"], "duration": s["duration"],
           "t_submit": job.t_submit, "t_run": job.t_run, "t_cleanup": job.t_cleanup,
           "t_inactive": job.t_inactive, "result": job.result, "waitstatus": job.status,
           "success": job.result == "COMPLETED" if job.result else None}
    if s.get("queue"):
        rec["queue"] = s["queue"]
    if job.cc is not None:
        rec["cc"] = job.cc
    if job.annotations:
        rec["annotations"] = job.annotations
    if job.memo:
        rec["memo"] = job.memo
    if job.state & PENDING and job.deps_left:
        rec["dependencies"] = [describe(d) for d in dependencies_of(job.jobspec)]
    where = job.placement()
    if where is not None:
        rec["ranks"], rec["nodelist"], nnodes, rec["expiration"] = where
        if rec["nnodes"] is None:
            rec["nnodes"] = nnodes
    if job.exception is not None:
        rec["exception"] = {"type": job.exception["type"], "note": job.exception["note"],
                            "severity": job.exception["severity"]}
    if job.state == INACTIVE:
        job.list_record = rec
    return rec


def register(broker, jobs: JobManager, kvs) -> None:
    uid = os.getuid()

    async def submit(req) -> None:
        """{jobspecs: [...]} or {jobspec, count}; urgency, flags; watch streams events."""
        body = req.body or {}
        if "jobspecs" in body:
            jobspecs = body["jobspecs"]
            if not isinstance(jobspecs, list):
                raise RPCError("jobspecs must be a list")
        else:
            count = body.get("count", 1)
            if not isinstance(count, int) or count < 1:
                raise RPCError("count must be a positive integer")
            jobspecs = [body.get("jobspec")] * count
        new = await jobs.submit(jobspecs, uid, body.get("urgency", 16), body.get("flags", 0),
                          body.get("cc"))
        if body.get("watch") and req.streaming:
            req.send({"ids": new})
            _stream_events(req, jobs.jobs[new[0]], kvs, bool(body.get("output")))
        else:
            req.respond({"ids": new})

    def events(req) -> None:
        """{id, output}: stream eventlog (and output) entries until the job is clean."""
        body = req.body or {}
        job = jobs.lookup(body.get("id"))
        _stream_events(req, job, kvs, bool(body.get("output")))

    def wait(req) -> None:
        """{ids}: respond (stream) a result per job as each becomes inactive."""
        body = req.body or {}
        targets = [jobs.lookup(i) for i in _ids(body)]
        if body.get("all"):
            targets = list(jobs.active.values())
        if not targets:
            req.respond({"results": []})
            return
        left = [len(targets)]
        batch: list[dict] = []
        last_sent = [0.0]

        def done(job: Job) -> None:
            batch.append(_result(job))
            left[0] -= 1
            if left[0] == 0:
                req.respond({"results": batch[:]})
            elif len(batch) == 1 and req.streaming:
                # What ended this turn goes in one message at the end of the turn, or,
                # if one went less than WAIT_BATCH_INTERVAL ago, with what ends until then.
                loop = asyncio.get_running_loop()
                wait = last_sent[0] + WAIT_BATCH_INTERVAL - time.monotonic()
                if wait > 0:
                    loop.call_later(wait, flush)
                else:
                    loop.call_soon(flush)

        def flush() -> None:
            if batch and left[0]:
                req.send({"results": batch[:]})
                batch.clear()
                last_sent[0] = time.monotonic()

        for job in targets:
            jobs.watch_state(job, INACTIVE, done)

    def cancel(req) -> None:
        """{ids, type?, note?}: raise a severity 0 exception (default type cancel)."""
        body = req.body or {}
        errors = []
        for jid in _ids(body):
            try:
                job = jobs.lookup(jid)
                jobs.raise_exception(job, body.get("type", "cancel"), body.get("severity", 0),
                                     body.get("note", ""), uid)
            except RPCError as exc:
                errors.append(str(exc))
        if errors:
            raise RPCError("; ".join(errors), "EINVAL")
        req.respond()

    def kill(req) -> None:
        """{ids, signum}: send a signal to the tasks of running jobs."""
        body = req.body or {}
        signum = body.get("signum", 15)
        if not isinstance(signum, int) or not 0 < signum < 65:
            raise RPCError(f"invalid signal {signum}")
        for jid in _ids(body):
            job = jobs.lookup(jid)
            if job.state & INACTIVE or job.R is None:
                raise RPCError(f"job {ids.f58(job.id)} is not running")
            jobs.kill(job, signum)
        req.respond()

    def memo(req) -> None:
        """{id, memo}: merge ``memo`` into the job's memo (a ``memo`` event)."""
        body = req.body or {}
        jobs.memo(jobs.lookup(body.get("id")), body.get("memo"))
        req.respond()

    def urgency(req) -> None:
        body = req.body or {}
        job = jobs.lookup(body.get("id"))
        old = jobs.set_urgency(job, body.get("urgency"), uid)
        req.respond({"old_urgency": old})

    def list_jobs(req) -> None:
        """{states: mask, results: [...], ids: [...], name, queue, userid, since, max}.

        ``since``: only jobs active at or after that time (inactive ones that ended
        earlier are left out)."""
        body = req.body or {}
        queue = body.get("queue")
        userid = body.get("userid")
        since = body.get("since") or 0.0
        mask = body.get("states", 0x7F)
        results = body.get("results")
        if body.get("ids"):
            src = [jobs.lookup(i) for i in _ids(body)]
        else:
            src = jobs.jobs.values()
        name = body.get("name")
        out = []
        limit = body.get("max", 0) or None
        for job in reversed(list(src)):
            if not job.state & mask:
                continue
            if results and job.state == INACTIVE and job.result not in results:
                continue
            if name and job.name != name:
                continue
            if queue is not None and job.summary.get("queue") != queue:
                continue
            if userid is not None and job.userid != userid:
                continue
            if since and job.state == INACTIVE and job.t_inactive < since:
                continue
            out.append(job_record(job))
            if limit and len(out) >= limit:
                break
        req.respond({"jobs": out})

    def info(req) -> None:
        body = req.body or {}
        job = jobs.lookup(body.get("id"))
        rec = dict(job_record(job))
        rec["jobspec"] = job.jobspec
        rec["R"] = job.R
        rec["eventlog"] = job.eventlog
        req.respond(rec)

    def job_stats(req) -> None:
        """{queue?}: how many jobs are in each state and how the ended ones ended, as
        Flux's job-list.job-stats answers it (``failed`` is a nonzero exit only;
        canceled and timed-out jobs have their own counts). What ``strato jobs``
        shows of a child instance's progress, so it must cost little: a walk over
        the active jobs, the ended ones are counted as they end. With ``queue``,
        only that queue's jobs, counted by a walk over every job."""
        queue = (req.body or {}).get("queue")
        states = dict.fromkeys(("new", "depend", "priority", "sched", "run", "cleanup"), 0)
        if queue is not None:
            mine = [j for j in jobs.jobs.values() if j.summary.get("queue") == queue]
            active = [j for j in mine if j.state != INACTIVE]
            c = {"inactive": len(mine) - len(active)}
            for job in mine:
                if job.state == INACTIVE:
                    c[job.result] = c.get(job.result, 0) + 1
            total = len(mine)
            purged = jobs.purger.purged_by_queue.get(queue, 0)
        else:
            active, c, total = jobs.active.values(), jobs.counts, len(jobs.jobs)
            purged = jobs.purger.purged
        for job in active:
            states[STATE_NAMES[job.state].lower()] += 1
        states["inactive"] = c["inactive"]
        states["total"] = total
        req.respond({"job_states": states, "successful": c.get("COMPLETED", 0),
                     "failed": c.get("FAILED", 0), "canceled": c.get("CANCELED", 0),
                     "timeout": c.get("TIMEOUT", 0),
                     "inactive_purged": purged})

    for topic, fn in (("job-manager.submit", submit), ("job-manager.events", events),
                      ("job-manager.wait", wait), ("job-manager.cancel", cancel),
                      ("job-manager.kill", kill), ("job-manager.urgency", urgency),
                      ("job-manager.memo", memo),
                      ("job-list.list", list_jobs), ("job-list.info", info),
                      ("job-list.job-stats", job_stats)):
        broker.register(topic, fn)


def _ids(body: dict) -> list:
    """The ``ids`` of a request body: a list (RPCError if it is anything else)."""
    ids = body.get("ids", [])
    if not isinstance(ids, list):
        raise RPCError("ids must be a list of job ids", "EPROTO")
    return ids


def _result(job: Job) -> dict:
    out = {"id": job.id, "result": job.result, "status": job.status,
           "success": job.result == "COMPLETED"}
    if job.exception is not None:
        out["exception"] = job.exception
    return out


def _stream_events(req, job: Job, kvs, output: bool) -> None:
    """Send every eventlog (and output) entry of `job`, then new ones, until clean."""
    cancels = []

    def stop() -> None:
        for c in cancels:
            c()
        cancels.clear()

    def send(log: str, entries) -> None:
        for e in entries:
            req.send({"log": log, "entry": e})
            if log == "eventlog" and e["name"] == "clean":
                stop()
                req.respond()
                return

    out_key = job.kvsdir + ".guest.output"
    if output:
        existing = kvs.get(out_key)
        if existing:
            send("output", list(existing))
        cancels.append(kvs.watch(out_key, lambda op, v: send("output",
                                                            v if op == "append" else [])))
    if req.done:
        return
    events = list(job.eventlog)
    if job.state != INACTIVE:
        cancels.append(kvs.watch(job.kvsdir + ".eventlog",
                                 lambda op, v: send("eventlog", v if op == "append" else [])))
    req.on_cancel = stop
    send("eventlog", events)
