"""exec-sim: a job "runs" for a set duration without any process.

Chosen per job with ``--setattr=system.exec.test.run_duration=FSD`` (the attribute
Flux's test exec uses) or for a whole instance with ``[exec] backend = "sim"`` and
``[exec] sim-duration = "1s"`` (default 0). This is how one machine schedules
thousands of virtual nodes in tests and benchmarks.
"""

from __future__ import annotations

import asyncio
import time
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

    def __init__(self, service, config: dict) -> None:
        self.service = service
        self.loop = asyncio.get_running_loop()
        try:
            self.default = parse_fsd(str(config.get("sim-duration", 0)))
        except ValueError as exc:
            raise ConfigError(f"exec.sim-duration: {exc}") from None
        self.timers: dict[int, asyncio.TimerHandle] = {}

    def start(self, job) -> None:
        self.service.event(job.id, "start")
        self._simulate(job, 0.0)

    def _simulate(self, job, elapsed: float) -> None:
        """Run `job`'s timers; `elapsed` seconds of it have run already (a restart)."""
        event = self.service.event
        try:
            duration = run_duration(job, self.default)
        except ValueError as exc:
            event(job.id, "exception", {"type": "exec",
                                        "note": f"system.exec.test.run_duration: {exc}"})
            self.timers[job.id] = self.loop.call_soon(self._finish, job.id, 1 << 8)
            return
        limit = job.summary["duration"]
        if limit and duration > limit:
            self.timers[job.id] = self.loop.call_later(max(0.0, limit - elapsed),
                                                       self._timeout, job.id)
        elif duration <= elapsed:
            self.timers[job.id] = self.loop.call_soon(self._finish, job.id, 0)
        else:
            self.timers[job.id] = self.loop.call_later(duration - elapsed, self._finish,
                                                       job.id, 0)

    def reattach(self, job, started: bool, t_run: float) -> None:
        """A simulated job that was running when the instance stopped is simulated
        again from when it got its resources: it ends when it would have, or at once
        if that time has passed (a time limit that passed meanwhile ends it with a
        ``timeout`` exception)."""
        if not started:
            self.service.event(job.id, "start")
        self._simulate(job, max(time.time() - t_run, 0.0) if t_run else 0.0)

    def _finish(self, jobid: int, status: int) -> None:
        self.timers.pop(jobid, None)
        self.service.event(jobid, "finish", {"status": status})

    def _timeout(self, jobid: int) -> None:
        self.service.event(jobid, "exception", {"type": "timeout",
                                                "note": "resource allocation expired"})

    def kill(self, jobid: int, signum: int) -> None:
        timer = self.timers.pop(jobid, None)
        if timer is not None:
            timer.cancel()
            self.timers[jobid] = self.loop.call_soon(self._finish, jobid, signum)

    def shutdown(self) -> None:
        for timer in self.timers.values():
            timer.cancel()
        self.timers.clear()

    def stats(self) -> dict:
        return {"running": len(self.timers)}


@hookimpl
def exec_register_backends(register):
    register("sim", SimExec)


@hookimpl
def core_declare_config(declare: Callable[..., None]) -> None:
    declare("exec", "sim-duration", default=0, check=duration,
            help="how long a simulated job runs when it does not say (seconds or \"1m\")")
