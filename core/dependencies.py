"""RFC 26 job dependencies: the link between the job manager and the plugins that
implement each scheme (see ``job_register_dependency_schemes`` in hookspecs).

A job with dependencies stays in DEPEND with one ``dependency-add`` event per
dependency; each one a plugin resolves posts ``dependency-remove``, and when none
is left the job posts ``depend`` and moves on. A dependency that can never be
satisfied ends the job with a severity 0 ``dependency`` exception.
"""

from __future__ import annotations

from strato.core.errors import RPCError


def describe(dep: dict) -> str:
    return f"{dep.get('scheme')}={dep.get('value')}"


class Dependency:
    """One outstanding dependency of one job, handed to the scheme's plugin."""

    __slots__ = ("job", "dep", "jobs", "done")

    def __init__(self, job, dep: dict, jobs) -> None:
        self.job = job
        self.dep = dep
        self.jobs = jobs
        self.done = False

    def resolve(self) -> None:
        """The dependency is satisfied."""
        if not self.done:
            self.done = True
            self.jobs.dependency_resolved(self)

    def fail(self, note: str) -> None:
        """The dependency can never be satisfied: the job ends with an exception."""
        if not self.done:
            self.done = True
            self.jobs.dependency_failed(self, note)


def dependencies_of(jobspec: dict) -> list:
    try:
        deps = jobspec["attributes"]["system"].get("dependencies") or []
    except (KeyError, TypeError, AttributeError):
        return []
    return deps if isinstance(deps, list) else []


def check(jobspec: dict, schemes: dict, jobs) -> None:
    """Reject unknown schemes and bad values at submission (RPCError, one line)."""
    for i, dep in enumerate(dependencies_of(jobspec)):
        where = f"attributes.system.dependencies[{i}]"
        if not isinstance(dep, dict) or not isinstance(dep.get("scheme"), str):
            raise RPCError(f"{where}: must be a mapping with a scheme")
        handler = schemes.get(dep["scheme"])
        if handler is None:
            raise RPCError(f"dependency scheme '{dep['scheme']}' is not supported"
                           f" (have: {', '.join(sorted(schemes))})")
        try:
            handler.check(dep, jobs)
        except (ValueError, TypeError, RPCError) as exc:
            raise RPCError(f"dependency {describe(dep)}: {exc}") from None
