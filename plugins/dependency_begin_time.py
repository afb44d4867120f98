"""dependency-begin-time: hold a job until a wall-clock time (``--begin-time``).

The value is a Unix timestamp in seconds (RFC 26 values are strings, so
``"1764000000.5"``; a number is accepted too); a time already past releases the
job at once.
"""

from __future__ import annotations

import asyncio
import math
import time

from strato.core.hookspecs import hookimpl


class BeginTime:
    @staticmethod
    def when(dep: dict) -> float:
        value = dep.get("value")
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError("value must be a Unix timestamp in seconds")
        try:
            t = float(value)
        except ValueError:
            raise ValueError("value must be a Unix timestamp in seconds") from None
        if not math.isfinite(t) or t < 0:
            raise ValueError("value must be a Unix timestamp in seconds")
        return t

    def check(self, dep: dict, jobs) -> None:
        self.when(dep)

    def add(self, d) -> None:
        delay = self.when(d.dep) - time.time()
        if delay <= 0:
            d.resolve()
        else:
            asyncio.get_running_loop().call_later(delay, d.resolve)


@hookimpl
def job_register_dependency_schemes(register):
    register("begin-time", BeginTime())
