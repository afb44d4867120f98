"""exec-sim: a job "runs" for a set duration without any process.

Chosen per job with ``--setattr=system.exec.test.run_duration=FSD`` (the attribute
Flux's test exec uses) or for a whole instance with ``[exec] backend = "sim"`` and
``[exec] sim-duration = "1s"`` (default 0). This is how one machine schedules
thousands of virtual nodes in tests and benchmarks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from strato.core.config import duration
from strato.core.errors import ConfigError
from strato.core.hookspecs import hookimpl
from strato.jobspec.fsd import parse_fsd


def run_duration(job, default: float) -> float:
    test = job.jobspec.get("attributes", {}).get("system", {}).get("exec", {}).get("test")
    if isinstance(test, dict) and "run_duration" in test:
        value = test["run_duration"]
        return float(value) if isinstance(value, (int, float)) else parse_fsd(str(value))
    return default


class SimExec:
    """Exec backend ``sim`` (see module docstring)."""

    name = "sim"

    def __init__(self, instance, config: dict) -> None:
        self.instance = instance
        self.loop = asyncio.get_running_loop()
        try:
            self.default = parse_fsd(str(instance.config.get("exec", {}).get("sim-duration", 0)))
        except ValueError as exc:
            raise ConfigError(f"exec.sim-duration: {exc}") from None
        self.timers: dict[int, asyncio.TimerHandle] = {}

    def start(self, job) -> None:
        jobs = self.instance.jobs
        jobs.exec_started(job)
        try:
            duration = run_duration(job, self.default)
        except ValueError as exc:
            jobs.raise_exception(job, "exec", 0, f"system.exec.test.run_duration: {exc}")
            return
        limit = job.summary["duration"]
        if limit and duration > limit:
            self.timers[job.id] = self.loop.call_later(limit, self._timeout, job)
        elif duration <= 0:
            self.loop.call_soon(self._finish, job, 0)
        else:
            self.timers[job.id] = self.loop.call_later(duration, self._finish, job, 0)

    def _finish(self, job, status: int) -> None:
        self.timers.pop(job.id, None)
        self.instance.jobs.exec_finished(job, status)

    def _timeout(self, job) -> None:
        self.instance.jobs.raise_exception(job, "timeout", 0, "resource allocation expired")

    def kill(self, job, signum: int) -> None:
        timer = self.timers.pop(job.id, None)
        if timer is not None:
            timer.cancel()
            self.loop.call_soon(self._finish, job, signum)


@hookimpl
def exec_register_backends(register):
    register("sim", SimExec)


@hookimpl
def core_declare_config(declare: Callable[..., None]) -> None:
    declare("exec", "sim-duration", default=0, check=duration,
            help="how long a simulated job runs when it does not say (seconds or \"1m\")")
