"""dependency-singleton: at most one job of a user with a given name runs at once.

A job with ``--dependency=singleton`` is released when no other job of the same
user and name is running, nor was released by this scheme and is still active;
waiting singletons are released one at a time in submission order.
"""

from __future__ import annotations

from collections import deque

from strato.core.hookspecs import hookimpl
from strato.core.states import CLEANUP, DEPEND, INACTIVE, RUN


class Singleton:
    def __init__(self) -> None:
        self.waiting: dict[tuple, deque] = {}
        self.released: set[int] = set()

    def check(self, dep: dict, jobs) -> None:
        if dep.get("value") not in (None, "", "singleton"):
            raise ValueError("singleton takes no value")

    def add(self, d) -> None:
        key = (d.job.userid, d.job.name)
        self.waiting.setdefault(key, deque()).append(d)
        self._advance(key, d.jobs)

    def _blocker(self, job, jobs):
        for other in jobs.active.values():
            if other is job or other.userid != job.userid or other.name != job.name:
                continue
            if other.state & (RUN | CLEANUP) or other.id in self.released:
                return other
        return None

    def _advance(self, key: tuple, jobs) -> None:
        queue = self.waiting.get(key)
        while queue and queue[0].job.state != DEPEND:
            queue.popleft()  # cancelled while waiting
        if not queue:
            self.waiting.pop(key, None)
            return
        d = queue[0]
        blocker = self._blocker(d.job, jobs)
        if blocker is not None:
            jobs.watch_state(blocker, INACTIVE, lambda _j: self._advance(key, jobs))
            return
        queue.popleft()
        self.released.add(d.job.id)

        def ended(job) -> None:
            self.released.discard(job.id)
            self._advance(key, jobs)

        jobs.watch_state(d.job, INACTIVE, ended)
        d.resolve()


@hookimpl
def job_register_dependency_schemes(register):
    register("singleton", Singleton())
