"""Named queues (RFC 33) and the job policy of an instance.

Config, as in Flux::

    [policy.jobspec.defaults.system]   # defaults for every job
    duration = "1h"
    queue = "batch"                    # the default queue
    [policy.limits]                    # limits for every job
    duration = "8h"
    job-size.max.nnodes = 64
    [queues.batch]
    requires = ["batch"]               # nodes with these properties only
    [queues.debug]
    requires = ["debug"]
    policy.limits.duration = "30m"     # a queue's policy overrides the instance's
    policy.jobspec.defaults.system.duration = "5m"

Without ``[queues]`` there is one anonymous queue and naming a queue is an error.
Each queue can be disabled (no submissions) or stopped (no scheduling) alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from strato.core.errors import ConfigError, RPCError
from strato.jobspec.fsd import parse_fsd

SIZE_KEYS = ("nnodes", "ncores", "ngpus")


@dataclass
class Limits:
    """Job limits: a maximum duration and min/max job sizes."""

    duration: float = 0.0  # 0: no limit
    max: dict = field(default_factory=dict)
    min: dict = field(default_factory=dict)


@dataclass
class Queue:
    name: str
    requires: list[str] = field(default_factory=list)
    limits: Limits = field(default_factory=Limits)
    defaults: dict = field(default_factory=dict)  # attributes.system defaults
    enabled: bool = True
    disable_reason: str = ""
    started: bool = True
    stop_reason: str = ""


def _limits(table: object, where: str, base: Limits | None = None) -> Limits:
    out = Limits(base.duration, dict(base.max), dict(base.min)) if base else Limits()
    if table is None:
        return out
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    if "duration" in table:
        try:
            out.duration = parse_fsd(str(table["duration"]))
        except ValueError as exc:
            raise ConfigError(f"{where}.duration: {exc}") from None
        if out.duration == float("inf"):
            out.duration = 0.0
    size = table.get("job-size", {})
    if not isinstance(size, dict):
        raise ConfigError(f"{where}.job-size must be a table")
    for bound in ("max", "min"):
        for key, value in (size.get(bound) or {}).items():
            if key not in SIZE_KEYS:
                raise ConfigError(f"{where}.job-size.{bound}: unknown key '{key}'")
            if isinstance(value, bool) or not isinstance(value, int) or value < -1:
                raise ConfigError(f"{where}.job-size.{bound}.{key}: must be an integer")
            getattr(out, bound)[key] = value
    return out


def _defaults(policy: dict, where: str, base: dict | None = None) -> dict:
    out = dict(base or {})
    d = policy.get("jobspec", {}).get("defaults", {}).get("system", {})
    if not isinstance(d, dict):
        raise ConfigError(f"{where}.jobspec.defaults.system must be a table")
    out.update(d)
    if "duration" in out and isinstance(out["duration"], str):
        try:
            out["duration"] = parse_fsd(out["duration"])
        except ValueError as exc:
            raise ConfigError(f"{where}.jobspec.defaults.system.duration: {exc}") from None
    return out


class Queues:
    """The queues of an instance and its job policy."""

    def __init__(self, config: dict) -> None:
        policy = config.get("policy", {})
        if not isinstance(policy, dict):
            raise ConfigError("[policy] must be a table")
        self.limits = _limits(policy.get("limits"), "policy.limits")
        self.defaults = _defaults(policy, "policy")
        table = config.get("queues", {})
        if not isinstance(table, dict):
            raise ConfigError("[queues] must be a table")
        self.queues: dict[str, Queue] = {}
        for name, q in table.items():
            where = f"queues.{name}"
            if not isinstance(q, dict):
                raise ConfigError(f"{where} must be a table")
            requires = q.get("requires", [])
            if not isinstance(requires, list) or not all(isinstance(r, str) for r in requires):
                raise ConfigError(f"{where}.requires must be a list of properties")
            qpol = q.get("policy", {})
            self.queues[name] = Queue(
                name, requires, _limits(qpol.get("limits"), f"{where}.policy.limits",
                                        self.limits),
                _defaults(qpol, f"{where}.policy"))
        self.default = self.defaults.pop("queue", None)
        if self.default is not None and self.default not in self.queues:
            raise ConfigError(f"policy.jobspec.defaults.system.queue: no queue "
                              f"'{self.default}'")
        self.anonymous = Queue("")

    def of(self, jobspec: dict) -> Queue:
        """The queue a (validated) jobspec names; RPCError for an unknown one."""
        name = jobspec.get("attributes", {}).get("system", {}).get("queue")
        if not self.queues:
            if name is not None:
                raise RPCError(f"queue '{name}' does not exist (no queues are configured)")
            return self.anonymous
        if name is None:
            raise RPCError("no queue given and there is no default queue")
        q = self.queues.get(name)
        if q is None:
            raise RPCError(f"queue '{name}' does not exist (have: "
                           f"{', '.join(sorted(self.queues))})")
        return q

    def named(self, name: str | None) -> list[Queue]:
        """Queues a command addresses: one by name, or all (the anonymous one if none)."""
        if name:
            if name not in self.queues:
                raise RPCError(f"queue '{name}' does not exist")
            return [self.queues[name]]
        return list(self.queues.values()) or [self.anonymous]

    def summarize(self, jobspec: dict) -> dict:
        """What a scheduler needs of a valid jobspec: counts, queue and constraint.

        The job manager computes it at submission and a scheduler again from the
        jobspec of an alloc request, so both read the same queue ``requires``.
        """
        from strato.jobspec.model import summarize

        summary = summarize(jobspec)
        queue = self.of(jobspec)
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
