"""dependency-after: the RFC 26 schemes that wait on another job.

``after`` (the target started), ``afterany`` (it ended), ``afterok`` (it
completed successfully), ``afternotok`` (it ended unsuccessfully) and
``afterexcept`` (it ended with an exception, e.g. cancelled or timed out). The
value is the target's job id in any form; a dependency whose condition can no
longer come true ends the dependent job with a ``dependency`` exception.
"""

from __future__ import annotations

from strato.core import ids
from strato.core.hookspecs import hookimpl
from strato.core.states import CLEANUP, INACTIVE, RUN


def _started(target) -> str | None:
    return None if target.t_run else "never started"


def _any(target) -> str | None:
    return None


def _ok(target) -> str | None:
    return None if target.result == "COMPLETED" else target.result.lower()


def _notok(target) -> str | None:
    return "succeeded" if target.result == "COMPLETED" else None


def _except(target) -> str | None:
    return None if target.exception is not None else "ended without an exception"


# scheme -> (states that settle it, reason it failed or None)
SCHEMES = {
    "after": (RUN | CLEANUP | INACTIVE, _started),
    "afterany": (INACTIVE, _any),
    "afterok": (INACTIVE, _ok),
    "afternotok": (INACTIVE, _notok),
    "afterexcept": (INACTIVE, _except),
}


class AfterJob:
    """One ``after*`` scheme."""

    def __init__(self, scheme: str) -> None:
        self.mask, self.verdict = SCHEMES[scheme]

    def check(self, dep: dict, jobs) -> None:
        value = dep.get("value")
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            raise ValueError("value must be a job id")
        jobs.lookup(value)  # an unknown job is an error now, not a job held forever

    def add(self, d) -> None:
        target = d.jobs.lookup(d.dep["value"])

        def settled(t) -> None:
            why = self.verdict(t)
            if why is None:
                d.resolve()
            else:
                d.fail(f"job {ids.f58(t.id)} {why}")

        d.jobs.watch_state(target, self.mask, settled)


@hookimpl
def job_register_dependency_schemes(register):
    for scheme in SCHEMES:
        register(scheme, AfterJob(scheme))
