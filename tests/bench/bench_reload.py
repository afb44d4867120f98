"""Scheduler reload while jobs run (issue 8, "Speed"): <= 1 s with 10,000 queued and
1000 running simulated jobs, on 1024 x 32 virtual nodes.

A driver inside a fresh instance (sched-simple, exec-sim) submits 1000 jobs that
each hold a whole node for an hour, then 10,000 that each need 100 nodes (so they
queue behind the first, fcfs), and times, with ``time.perf_counter`` around the
call, ``strato.module.reload(h, "sched")`` (a fresh sched-simple) and then
``strato.module.load(h, "sched-graph")`` (a switch: the graph is built and the
1000 allocations are booked in it). After each it checks that the 1000 still run
and the 10,000 still wait. Next to it, the same run's time for one round trip
(``broker.ping``) as this machine's floor.

    python tests/bench/bench_reload.py [--reps N]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import median, print_table, run_script_in_instance, write_results  # noqa: E402

CONFIG = """\
[exec]
backend = "sim"
[[resource.config]]
hosts = "node[0-1023]"
cores = "0-31"
"""

DRIVER = """\
import json, sys, time
import strato
from strato import job, module
h = strato.Handle()
hold = strato.JobspecV1.from_command(["true"], num_nodes=1, num_tasks=1, exclusive=True,
                                     environment={})
hold.setattr("system.exec.test.run_duration", 3600)
wide = strato.JobspecV1.from_command(["true"], num_nodes=100, num_tasks=100, environment={})
job.submit_many(h, hold, 1000)
job.submit_many(h, wide, 10000)

def states():
    out = {}
    for r in job.list_jobs(h, states=0x7F):
        out[r["state"]] = out.get(r["state"], 0) + 1
    return out

def timed(fn, *args):
    t0 = time.perf_counter()
    fn(h, *args)
    return time.perf_counter() - t0

t0 = time.perf_counter()
h.rpc("broker.ping")
ping = time.perf_counter() - t0
before = states()
reload_s = timed(module.reload, "sched")
after_reload = states()
switch_s = timed(module.load, "sched-graph")
after_switch = states()
with open(sys.argv[1], "w") as f:
    json.dump({"ping_s": ping, "reload_s": reload_s, "switch_s": switch_s,
               "before": before, "after_reload": after_reload,
               "after_switch": after_switch}, f)
"""

TARGET_S = 1.0


def run_once() -> dict:
    return run_script_in_instance(CONFIG, DRIVER)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args(argv)
    runs = [run_once() for _ in range(args.reps)]
    want = {"RUN": 1000, "SCHED": 10000}
    kept = all(r["before"] == r["after_reload"] == r["after_switch"] == want for r in runs)
    reload_s = median([r["reload_s"] for r in runs])
    switch_s = median([r["switch_s"] for r in runs])
    ping_ms = median([r["ping_s"] for r in runs]) * 1000
    res = {"reps": args.reps, "reload_s": reload_s, "switch_s": switch_s, "ping_ms": ping_ms,
           "jobs_kept": kept, "runs": runs, "target_s": TARGET_S,
           "ok": kept and reload_s <= TARGET_S and switch_s <= TARGET_S}
    write_results("bench_reload", res)
    print_table(f"scheduler reload, 10,000 queued + 1000 running sim jobs (median of "
                f"{args.reps})", [
                    ("module reload sched (sched-simple)", f"{reload_s:.3f} s",
                     f"<= {TARGET_S:.0f} s", f"ping {ping_ms:.2f} ms"),
                    ("module load sched-graph (switch)", f"{switch_s:.3f} s",
                     f"<= {TARGET_S:.0f} s", ""),
                    ("every job kept its state", kept, "", ""),
                ], headers=("figure", "strato", "target", "machine floor"))
    return res


if __name__ == "__main__":
    main(sys.argv[1:])
