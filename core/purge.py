"""Purging inactive jobs, so that a long-running instance stays bounded.

An inactive job is kept (in the job manager's memory, in job-list, and in the
KVS with its eventlog, jobspec, R and output, hence in the statedir) until it
is purged. As Flux's job manager does, jobs are purged oldest-inactive first,
by age and by count:

- automatically, under ``[job-manager] inactive-age-limit`` (an RFC 23
  duration: a job is purged once it has been inactive that long) and
  ``inactive-num-limit`` (at most that many inactive jobs are kept). The count
  is applied at the end of the event-loop turn in which jobs become inactive,
  the age by a timer set for the moment the oldest job reaches it; either
  purges at most `AUTO_BATCH` jobs per turn, so a restart over a large backlog
  does not stall the broker;
- on request, ``job-manager.purge`` (``strato job purge``): by the same two
  limits or by job id, counting only unless ``force`` is set.

A purged job is gone everywhere: its KVS directory (and the rows holding it in
the statedir, so a restarted instance does not see it again) and every table
of the job manager. Job ids are never reused after a purge: they are FLUIDs,
made from the time since the instance's first start.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque

from strato.core import ids
from strato.core.errors import ConfigError, RPCError
from strato.core.states import INACTIVE
from strato.jobspec.fsd import parse_fsd

#: most jobs an automatic purge removes in one event-loop turn (the rest follow
#: in the next turns)
AUTO_BATCH = 1000
#: most jobs one ``job-manager.purge`` request removes (Flux allows 100)
BATCH_MAX = 1000


def _age_limit(value: object) -> float | None:
    """``inactive-age-limit`` in seconds, None for no limit (absent or infinite)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"job-manager.inactive-age-limit: must be a duration such as"
                          f" \"7d\" (got {value!r})")
    try:
        seconds = parse_fsd(str(value))
    except ValueError as exc:
        raise ConfigError(f"job-manager.inactive-age-limit: {exc}") from None
    return None if math.isinf(seconds) else seconds


def _num_limit(value: object) -> int | None:
    """``inactive-num-limit``, None for no limit (absent)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"job-manager.inactive-num-limit: must be an integer >= 0"
                          f" (got {value!r})")
    return value


class Purger:
    """The inactive jobs of one job manager, oldest first, and their purging."""

    def __init__(self, jobs, config: dict) -> None:
        self.jobs = jobs
        table = config.get("job-manager", {})
        self.age_limit = _age_limit(table.get("inactive-age-limit"))
        self.num_limit = _num_limit(table.get("inactive-num-limit"))
        # Inactive jobs in the order they became inactive. A job purged by id is
        # left in place and skipped when it comes first (`_live`).
        self.queue: deque = deque()
        self.purged = 0  # since this broker started, as Flux's inactive_purged
        self.purged_by_queue: dict[str | None, int] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._auto_pending = False
        jobs.broker.register("job-manager.purge", self._purge_request)

    @property
    def automatic(self) -> bool:
        return self.age_limit is not None or self.num_limit is not None

    # -- the queue of inactive jobs ------------------------------------------------------
    def _live(self, job) -> bool:
        return self.jobs.jobs.get(job.id) is job

    def add(self, job) -> None:
        """`job` just became inactive (or was recovered inactive, oldest first)."""
        self.queue.append(job)
        if not self.automatic:
            return
        if self.num_limit is not None and self.jobs.counts["inactive"] > self.num_limit:
            self._request_auto()
        elif self.age_limit is not None and self._timer is None:
            self._arm()

    def _eligible(self, job, now: float, left: int, age_limit: float | None,
                  num_limit: int | None) -> bool:
        """As Flux: a job may go if it is older than the age limit, or if more
        inactive jobs than the count limit are left."""
        return (age_limit is not None and now - job.t_inactive > age_limit) or \
            (num_limit is not None and left > num_limit)

    def count(self, age_limit: float | None, num_limit: int | None) -> int:
        """How many jobs `purge` would remove under these limits (no batch limit)."""
        now = time.time()
        left = self.jobs.counts["inactive"]
        n = 0
        for job in self.queue:
            if not self._live(job):
                continue
            if not self._eligible(job, now, left - n, age_limit, num_limit):
                break
            n += 1
        return n

    def purge(self, age_limit: float | None, num_limit: int | None, most: int) -> int:
        """Purge the oldest inactive jobs the limits allow, at most `most` of them."""
        now = time.time()
        queue = self.queue
        n = 0
        while queue and n < most:
            job = queue[0]
            if not self._live(job):
                queue.popleft()
                continue
            if not self._eligible(job, now, self.jobs.counts["inactive"], age_limit,
                                  num_limit):
                break
            queue.popleft()
            self.remove(job)
            n += 1
        return n

    def remove(self, job) -> None:
        """Forget one inactive job everywhere: job manager, job-list, KVS, statedir."""
        jm = self.jobs
        del jm.jobs[job.id]
        counts = jm.counts
        counts["inactive"] -= 1
        counts[job.result] -= 1
        self.purged += 1
        queue = job.summary.get("queue")
        self.purged_by_queue[queue] = self.purged_by_queue.get(queue, 0) + 1
        jm.kvs.unlink(job.kvsdir, prune=True)

    # -- automatic purging ---------------------------------------------------------------
    def _request_auto(self) -> None:
        if not self._auto_pending:
            self._auto_pending = True
            self.jobs.broker.defer(self._auto)

    def _auto(self) -> None:
        self._auto_pending = False
        if self.purge(self.age_limit, self.num_limit, AUTO_BATCH) == AUTO_BATCH:
            # more to do: let the next turn read requests first
            self._auto_pending = True
            asyncio.get_running_loop().call_soon(self._auto)
            return
        if self.age_limit is not None and self._timer is None:
            self._arm()

    def _arm(self) -> None:
        """Wake up when the oldest inactive job passes the age limit."""
        while self.queue and not self._live(self.queue[0]):
            self.queue.popleft()
        if not self.queue:
            return
        due = self.queue[0].t_inactive + self.age_limit - time.time()
        self._timer = asyncio.get_running_loop().call_later(max(due, 0.0) + 0.01,
                                                            self._expired)

    def _expired(self) -> None:
        self._timer = None
        self._request_auto()

    # -- the service -----------------------------------------------------------------------
    def _purge_request(self, req) -> None:
        """``job-manager.purge`` {ids?, age_limit?, num_limit?, batch, force}:
        ``{count, inactive}``, the jobs purged (or, without ``force``, that would
        be) and the inactive jobs left. With ``ids`` every one must be inactive;
        otherwise at most ``batch`` jobs go per request, oldest first."""
        body = req.body or {}
        force = bool(body.get("force"))
        jobids = body.get("ids")
        if jobids:
            if not isinstance(jobids, list):
                raise RPCError("ids must be a list of job ids")
            targets = []
            for jobid in jobids:
                job = self.jobs.lookup(jobid)
                if job.state != INACTIVE:
                    raise RPCError(f"cannot purge active job {ids.f58(job.id)}")
                if job not in targets:
                    targets.append(job)
            if force:
                for job in targets:
                    self.remove(job)
            req.respond({"count": len(targets), "inactive": self.jobs.counts["inactive"]})
            return
        age_limit = body.get("age_limit")
        if age_limit is not None and (isinstance(age_limit, bool)
                                      or not isinstance(age_limit, (int, float))
                                      or not age_limit >= 0):
            raise RPCError("age limit must be a number of seconds >= 0")
        num_limit = body.get("num_limit")
        if num_limit is not None and (isinstance(num_limit, bool)
                                      or not isinstance(num_limit, int) or num_limit < 0):
            raise RPCError("num limit must be an integer >= 0")
        batch = body.get("batch", 50)
        if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= BATCH_MAX:
            raise RPCError(f"batch must be an integer from 1 to {BATCH_MAX}")
        if force:
            n = self.purge(age_limit, num_limit, batch)
        else:
            n = self.count(age_limit, num_limit)
        req.respond({"count": n, "inactive": self.jobs.counts["inactive"]})
