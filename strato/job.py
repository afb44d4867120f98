"""Job verbs over a handle, named as in Flux's ``flux.job``: submit, wait,
event_watch, event_wait, cancel, kill, list, info, urgency; the ``*_async`` forms
take an `AsyncHandle`. `JobExecutor` (Flux's ``FluxExecutor``) runs jobspecs as
`concurrent.futures` futures; it lives in `strato.executor` and is imported on
first use.

A job id is an int or any RFC 19 form of one (``ƒ2Xm...``, ``0x...``). Verbs that
act on jobs (cancel, raise_exception, kill) take one id or several, sent in one
request. Errors from the instance (an unknown job id, a job in the wrong state, a
bad value) raise `strato.core.errors.RPCError` with a one-line message; a lost
instance raises `NoInstanceError`.
"""

from __future__ import annotations

import time
from collections import namedtuple
from collections.abc import AsyncIterator, Iterable, Iterator

from strato.core import ids
from strato.core.errors import StratoError
from strato.core.states import ACTIVE, PENDING, RUNNING, STATES  # noqa: F401 (public names)
from strato.handle import Handle, _raise

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see below)
if TYPE_CHECKING:
    from strato.async_handle import AsyncHandle

JobId = int | str


# The result types are named tuples, not dataclasses: importing dataclasses (which
# imports inspect) would cost ``strato run`` about 10 ms, a quarter of its own time.
class JobResult(namedtuple("JobResult", "id result status success exception",
                           defaults=(None,))):
    """How a job ended: `id`, `result` (COMPLETED, FAILED, ...), wait `status`,
    `success` and the ending `exception` (a dict, or None)."""

    __slots__ = ()

    @property
    def returncode(self) -> int:
        """The shell-style exit code (128+signal for a signalled job)."""
        if self.status is None:
            return 1 if not self.success else 0
        if self.status & 0x7F:
            return 128 + (self.status & 0x7F)
        return (self.status >> 8) & 0xFF


def _jobspec_dict(jobspec) -> dict:
    if hasattr(jobspec, "jobspec"):
        return jobspec.jobspec
    if isinstance(jobspec, (str, bytes)):
        import json  # not at the top: a short command pays for each import

        return json.loads(jobspec)
    return jobspec


def submit(h: Handle, jobspec, urgency: int = 16, flags: int = 0) -> int:
    """Submit one job; returns its id."""
    return submit_many(h, jobspec, 1, urgency, flags)[0]


def submit_many(h: Handle, jobspec, count: int, urgency: int = 16, flags: int = 0,
                cc: list[int] | None = None) -> list[int]:
    """Submit `count` copies of one jobspec in one request; returns their ids.

    `cc` gives each copy its ``{{cc}}`` index (``submit --cc``), one per copy.
    Raises RPCError if the instance rejects the jobspec (then no job is created).
    """
    body = {"jobspec": _jobspec_dict(jobspec), "count": count, "urgency": urgency,
            "flags": flags}
    if cc is not None:
        body["cc"] = cc
    return h.rpc("job-manager.submit", body)["ids"]


def submit_list(h: Handle, jobspecs: Iterable, urgency: int = 16, flags: int = 0,
                cc: list[int] | None = None) -> list[int]:
    """Submit different jobspecs in one request (all or none are accepted).

    Returns their ids in order; `cc` gives each its ``{{cc}}`` index, one per jobspec.
    Raises RPCError if the instance rejects any of them.
    """
    body = {"jobspecs": [_jobspec_dict(j) for j in jobspecs], "urgency": urgency,
            "flags": flags}
    if cc is not None:
        body["cc"] = cc
    return h.rpc("job-manager.submit", body)["ids"]


def submit_and_watch(h: Handle, jobspec, urgency: int = 16, flags: int = 0,
                     output: bool = False) -> tuple[int, Iterator[dict]]:
    """Submit one job and follow it on the same stream (what ``strato run`` does).

    One request instead of a submit and an `event_watch`, so nothing of the job is
    missed and no round trip is spent. Returns the job's id and an iterator of the
    entries `event_watch` would yield (with `output`, its output too); closing the
    iterator early stops the stream. Raises RPCError if the jobspec is rejected.
    """
    body = {"jobspec": _jobspec_dict(jobspec), "count": 1, "urgency": urgency,
            "flags": flags, "watch": True, "output": output}
    stream = h.rpc_stream("job-manager.submit", body)
    try:
        first = next(stream)
    except StopIteration:
        raise StratoError("submit: no answer from the instance") from None
    return first["ids"][0], stream


def _result(r: dict) -> JobResult:
    return JobResult(r["id"], r["result"], r["status"], r["success"], r.get("exception"))


def wait(h: Handle, jobid: JobId) -> JobResult:
    """Wait for a job to become inactive."""
    return _result(h.rpc("job-manager.wait", {"ids": [jobid]})["results"][0])


def wait_all(h: Handle, jobids: Iterable[JobId]) -> list[JobResult]:
    """Wait for every job in `jobids`; returns their results in the order they ended."""
    return [r for batch in wait_stream(h, jobids) for r in batch]


def wait_stream(h: Handle, jobids: Iterable[JobId]) -> Iterator[list[JobResult]]:
    """Wait for many jobs on one stream, yielding results as the jobs end.

    Each item holds the jobs that ended together: in the same turn of the
    instance, or, while jobs keep ending, within a few milliseconds of the last
    item (the broker's ``WAIT_BATCH_INTERVAL``), so a progress display redraws once
    per batch and a waiter on thousands of short jobs is not woken for each; the
    stream ends after the last job. Raises RPCError (before any result) if an id is unknown.
    """
    tag = h.send("job-manager.wait", {"ids": [*jobids]}, stream=True)
    finished = False
    try:
        while True:
            body, err, more = h.recv(tag)
            if err is not None:
                finished = True
                _raise(body, err)
            finished = not more
            yield [_result(r) for r in body["results"]]
            if not more:
                return
    finally:
        if not finished:
            h.cancel_stream(tag)


def event_watch(h: Handle, jobid: JobId, output: bool = False) -> Iterator[dict]:
    """Yield ``{"log": "eventlog"|"output", "entry": {...}}`` until the job is clean.

    The entries so far come first, then new ones as they are posted; closing the
    iterator early stops the stream. Raises RPCError for an unknown job id.
    """
    yield from h.rpc_stream("job-manager.events", {"id": jobid, "output": output})


def event_wait(h: Handle, jobid: JobId, name: str, timeout: float | None = None,
               context: dict[str, object] | None = None) -> dict:
    """Wait until event `name` is in the job's eventlog; returns that entry.

    With `context`, only an entry whose context has each key with that value
    (compared as text, as given on a command line) counts. Raises TimeoutError
    after `timeout` seconds, StratoError if the job ended without the event, and
    RPCError for an unknown job id.
    """
    tag = h.send("job-manager.events", {"id": jobid}, stream=True)
    deadline = None if timeout is None else time.monotonic() + timeout
    want = {k: str(v) for k, v in (context or {}).items()}
    try:
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            body, err, more = h.recv(tag, timeout=left)
            if err is not None:
                _raise(body, err)
            if not more:
                raise StratoError(f"event '{name}' never occurred")
            entry = body["entry"]
            got = entry.get("context") or {}
            if entry["name"] == name and all(str(got.get(k)) == v for k, v in want.items()):
                return entry
    finally:
        h.cancel_stream(tag)


def eventlog(h: Handle, jobid: JobId, name: str = "eventlog") -> list[dict]:
    """The entries of a job's eventlog, or with ``name="output"`` its output eventlog.

    Empty if that log has nothing yet (a job that has not run has no output).
    Raises RPCError for an unknown job id and ValueError for an unknown log name.
    """
    from strato import kvs

    logs = {"eventlog": ".eventlog", "output": ".guest.output"}
    if name not in logs:
        raise ValueError(f"unknown eventlog '{name}' (use eventlog or output)")
    key = ids.encode(info(h, jobid)["id"], "kvs") + logs[name]  # unknown job: RPCError
    try:
        return kvs.get(h, key)
    except StratoError:
        return []


def _ids(jobids: JobId | Iterable[JobId]) -> list[JobId]:
    return [jobids] if isinstance(jobids, (int, str)) else [*jobids]


def cancel(h: Handle, jobids: JobId | Iterable[JobId], note: str = "") -> None:
    """Cancel one job or several (a severity 0 exception of type ``cancel``).

    `note` is recorded with the exception. Every job is tried; RPCError names the
    ones that could not be canceled (unknown, or already inactive).
    """
    h.rpc("job-manager.cancel", {"ids": _ids(jobids), "note": note})


def raise_exception(h: Handle, jobids: JobId | Iterable[JobId], etype: str,
                    severity: int = 0, note: str = "") -> None:
    """Raise an exception of type `etype` on jobs (``flux job raise``).

    Severity 0 ends the job; 1-7 are recorded only. RPCError as for `cancel`.
    """
    h.rpc("job-manager.cancel", {"ids": _ids(jobids), "type": etype, "severity": severity,
                                 "note": note})


def kill(h: Handle, jobids: JobId | Iterable[JobId], signum: int = 15) -> None:
    """Send signal `signum` (1-64) to the tasks of running jobs.

    Raises RPCError for an invalid signal, an unknown job or one that is not running.
    """
    h.rpc("job-manager.kill", {"ids": _ids(jobids), "signum": signum})


def urgency(h: Handle, jobid: JobId, value: int) -> int:
    """Change a pending job's urgency; returns the old one."""
    return h.rpc("job-manager.urgency", {"id": jobid, "urgency": value})["old_urgency"]


def list_jobs(h: Handle, states: int = ACTIVE, results: list[str] | None = None,
              name: str | None = None, max_entries: int = 0, userid: int | None = None,
              queue: str | None = None, since: float | None = None,
              ids: Iterable[JobId] | None = None) -> list[dict]:
    """Job records (the fields ``strato jobs`` shows), newest first.

    Filters: a state mask, results (COMPLETED, FAILED, ...), name, owner `userid`
    (None: every user), `queue`, `since` (a time: inactive jobs that ended
    before it are left out) and `ids` (only these jobs; RPCError for an unknown
    one); `max_entries` 0 means all. A job that is a running child instance has
    ``memo: {"uri": ...}``.
    """
    return h.rpc("job-list.list", list_request(states, results, name, max_entries, userid,
                                               queue, since, ids))["jobs"]


def list_request(states: int = ACTIVE, results: list[str] | None = None,
                 name: str | None = None, max_entries: int = 0, userid: int | None = None,
                 queue: str | None = None, since: float | None = None,
                 ids: Iterable[JobId] | None = None) -> dict:
    """The body of a ``job-list.list`` request for `list_jobs`'s filters (a walk of
    the hierarchy sends the same one to many instances at once)."""
    body: dict = {"states": states, "max": max_entries}
    if ids is not None:
        body["ids"] = [*ids]
    if results:
        body["results"] = results
    if name:
        body["name"] = name
    if userid is not None:
        body["userid"] = userid
    if queue:
        body["queue"] = queue
    if since:
        body["since"] = since
    return body


_STATS_FIELDS = ("new", "depend", "priority", "sched", "run", "cleanup", "inactive", "total",
                 "successful", "failed", "canceled", "timeout", "inactive_purged")


class JobStats(namedtuple("JobStats", _STATS_FIELDS, defaults=(0,) * len(_STATS_FIELDS))):
    """How many jobs an instance has in each state, and how the ended ones ended.

    As Flux's ``flux.job.stats.JobStats``: `failed` counts every unsuccessful
    job (nonzero exit, canceled, timed out), so ``str()`` gives Flux's summary
    ``PD:1 R:2 CD:3 F:0`` where pending, running, completed and failed add up to
    `total`; `canceled` and `timeout` are also kept apart;
    ``inactive_purged`` counts the inactive jobs purged since the broker started
    (``strato job purge``, limits).
    """

    __slots__ = ()

    @classmethod
    def from_answer(cls, body: dict) -> JobStats:
        """From a ``job-list.job-stats`` answer (the RPC's ``failed`` is nonzero
        exits only; here it becomes every unsuccessful job)."""
        st = body["job_states"]
        return cls(**{k: st.get(k, 0) for k in ("new", "depend", "priority", "sched", "run",
                                                  "cleanup", "inactive", "total")},
                   successful=body["successful"],
                   failed=body["failed"] + body["canceled"] + body["timeout"],
                   canceled=body["canceled"], timeout=body["timeout"],
                   inactive_purged=body.get("inactive_purged", 0))

    @property
    def pending(self) -> int:
        return self.new + self.depend + self.priority + self.sched

    @property
    def running(self) -> int:
        return self.run + self.cleanup

    @property
    def active(self) -> int:
        return self.total - self.inactive

    def as_dict(self) -> dict[str, int]:
        """Every count, the derived ones (pending, running, active) included."""
        out = self._asdict()
        out.update(pending=self.pending, running=self.running, active=self.active)
        return out

    def __str__(self) -> str:
        return f"PD:{self.pending} R:{self.running} CD:{self.successful} F:{self.failed}"


def stats(h: Handle, queue: str | None = None) -> JobStats:
    """The instance's job counts (Flux's ``job-list.job-stats``): cheap at any
    size, which is why ``strato jobs`` can show a child instance's progress.
    With `queue`, the counts of that queue's jobs only."""
    return JobStats.from_answer(h.rpc("job-list.job-stats",
                                      {} if queue is None else {"queue": queue}))


class PurgeResult(namedtuple("PurgeResult", "count inactive")):
    """What `purge` did: `count` jobs purged (or, without ``force``, that would
    be) and `inactive` jobs left in the instance."""

    __slots__ = ()


def purge(h: Handle, jobids: Iterable[JobId] = (), age_limit: float | str | None = None,
          num_limit: int | None = None, force: bool = False, batch: int = 50) -> PurgeResult:
    """Purge inactive jobs (``flux job purge``): gone from job lists, the KVS and
    the statedir for good.

    Either `jobids` (each must be inactive), or the oldest inactive jobs that are
    older than `age_limit` (seconds, or an RFC 23 duration such as ``"7d"``) or
    beyond the newest `num_limit`. Without `force` nothing is purged: the count
    says how many would be. With it, jobs go `batch` per request (at most 1000),
    so a large purge never holds the instance up for long. Raises ValueError
    for a bad limit, RPCError for an unknown or active job.
    """
    from strato.jobspec.fsd import parse_fsd

    jobids = [*jobids]
    if jobids and (age_limit is not None or num_limit is not None):
        raise ValueError("give job ids or limits, not both")
    if isinstance(age_limit, str):
        age_limit = parse_fsd(age_limit)
    if age_limit is not None and (isinstance(age_limit, bool) or not age_limit >= 0):
        raise ValueError(f"invalid age limit {age_limit!r}")
    if num_limit is not None and (isinstance(num_limit, bool) or not isinstance(num_limit, int)
                                  or num_limit < 0):
        raise ValueError(f"invalid num limit {num_limit!r} (must be an integer >= 0)")
    if jobids:
        ans = h.rpc("job-manager.purge", {"ids": jobids, "force": force})
        return PurgeResult(ans["count"], ans["inactive"])
    body = {"age_limit": age_limit, "num_limit": num_limit, "batch": batch, "force": force}
    total = 0
    while True:
        ans = h.rpc("job-manager.purge", body)
        total += ans["count"]
        if not force or ans["count"] < batch:
            return PurgeResult(total, ans["inactive"])


# Flux's name for this verb; defined last in the module, after every use of the builtin.
list = list_jobs  # noqa: A001


def info(h: Handle, jobid: JobId) -> dict:
    """The job's record plus its ``jobspec``, ``R`` (None before it has resources)
    and ``eventlog``. Raises RPCError for an unknown job id."""
    return h.rpc("job-list.info", {"id": jobid})


def uri(h: Handle, jobid: JobId, wait: bool = False) -> str:
    """The URI of the strato instance a job runs (``strato batch``/``alloc``), as
    its ``memo`` event gives it.

    With `wait`, wait for a pending or starting instance to post it. Raises
    StratoError (one line: why there is none) if the job is not an instance, has
    not started or has finished, RPCError if it is unknown.
    """
    rec = info(h, jobid)
    name = ids.f58(rec["id"])
    found = (rec.get("memo") or {}).get("uri")
    from strato.core.exec import runs_instance

    if not found and not runs_instance(rec["jobspec"]):
        raise StratoError(f"job {name} is not a strato instance (it has no URI)")
    if rec["state"] == "INACTIVE":
        why = "has finished" if found else "ended before its instance started"
        raise StratoError(f"job {name} {why}: there is no instance to reach")
    if found:
        return found
    if not wait:
        state = "has not started" if rec["state"] != "RUN" else "is still starting"
        raise StratoError(f"job {name} {state}: its instance has no URI yet (try --wait)")
    try:
        return event_wait(h, rec["id"], "memo")["context"]["uri"]
    except StratoError:
        raise StratoError(f"job {name} ended before its instance started") from None


def id_parse(text: str) -> int:
    """A job id in any RFC 19 form as an int; ValueError if it is not one."""
    return ids.parse(text)


# -- asyncio ---------------------------------------------------------------------------------
async def submit_async(h: AsyncHandle, jobspec, urgency: int = 16, flags: int = 0) -> int:
    """`submit` on an asyncio handle."""
    body = {"jobspec": _jobspec_dict(jobspec), "count": 1, "urgency": urgency, "flags": flags}
    return (await h.rpc("job-manager.submit", body))["ids"][0]


async def wait_async(h: AsyncHandle, jobid: JobId) -> JobResult:
    """`wait` on an asyncio handle."""
    return _result((await h.rpc("job-manager.wait", {"ids": [jobid]}))["results"][0])


async def wait_stream_async(h: AsyncHandle,
                            jobids: Iterable[JobId]) -> AsyncIterator[list[JobResult]]:
    """`wait_stream` on an asyncio handle: results in batches as the jobs end."""
    async for body in h.rpc_stream("job-manager.wait", {"ids": [*jobids]}, final=True):
        yield [_result(r) for r in body["results"]]


async def event_watch_async(h: AsyncHandle, jobid: JobId,
                            output: bool = False) -> AsyncIterator[dict]:
    """`event_watch` on an asyncio handle."""
    async for body in h.rpc_stream("job-manager.events", {"id": jobid, "output": output}):
        yield body


async def cancel_async(h: AsyncHandle, jobids: JobId | Iterable[JobId], note: str = "") -> None:
    """`cancel` (of one job or several) on an asyncio handle."""
    await h.rpc("job-manager.cancel", {"ids": _ids(jobids), "note": note})


def __getattr__(name: str):
    # JobExecutor needs asyncio: imported only when asked for, so the
    # CLI's commands (which import this module) do not pay for it.
    if name in ("JobExecutor", "JobExecutorFuture"):
        from strato import executor

        return getattr(executor, name)
    raise AttributeError(f"module 'strato.job' has no attribute {name!r}")
