"""dependency-begin-time: hold a job until a wall-clock time (``--begin-time``).

The value is a Unix timestamp (seconds, a number); a time already past releases
the job at once.
"""

from __future__ import annotations

import asyncio
import math
import time

from strato.core.hookspecs import hookimpl


class BeginTime:
    def check(self, dep: dict, jobs) -> None:
        value = dep.get("value")
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or value < 0:
            raise ValueError("value must be a Unix timestamp in seconds")

    def add(self, d) -> None:
        delay = float(d.dep["value"]) - time.time()
        if delay <= 0:
            d.resolve()
        else:
            asyncio.get_running_loop().call_later(delay, d.resolve)


@hookimpl
def job_register_dependency_schemes(register):
    register("begin-time", BeginTime())
