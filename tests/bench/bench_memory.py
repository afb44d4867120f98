"""Broker memory after 4000 simulated jobs.

In a fresh instance with exec-sim (duration 0), the driver reads the broker's
VmRSS and VmHWM (/proc/PID/status, PID from ``broker.info``) before and after
submitting 4000 jobs in bulk and waiting for them. Done on the default
resources and on 1024 virtual nodes x 32 cores.

    python tests/bench/bench_memory.py
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import VIRTUAL_NODES_TOML, print_table, run_in_instance, write_results  # noqa: E402

SIM = ["exec.backend=sim", "exec.sim-duration=0"]


def measure(count: int = 4000) -> dict:
    return {
        "count": count,
        "default": run_in_instance(["memory", "--count", str(count)], None, SIM),
        "vnodes": run_in_instance(["memory", "--count", str(count)], VIRTUAL_NODES_TOML, SIM),
    }


def main(argv=None) -> dict:
    res = measure()
    write_results("bench_memory", res)
    rows = []
    for key, label in (("default", "default R"), ("vnodes", "1024x32 virtual nodes")):
        d = res[key]
        rows.append((f"broker RSS before jobs ({label})", d["before"]["rss_mb"], "MB"))
        rows.append((f"broker RSS after {res['count']} sim jobs ({label})",
                     d["after"]["rss_mb"], "MB"))
        rows.append((f"broker peak RSS (VmHWM) ({label})", d["after"]["hwm_mb"], "MB"))
    print_table("broker memory", rows, headers=("figure", "value", "unit"))
    return res


if __name__ == "__main__":
    main()
