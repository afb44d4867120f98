"""Load at full size (issue 13, "Load"): 10 clients x 10,000 simulated jobs each, half
through the Python API and half through the CLI, mixed shapes, some cancelled
mid-way; then the same again with the broker SIGKILLed once half the jobs are in and
started again on its statedir ("kill"), and once more with a clean ``strato shutdown``
instead of the SIGKILL ("stop"). `load_check.check` compares what every client was told
with what the instance recorded (the rules are in load_check's docstring).

Prints the checker's counts and the timings of each run, writes
``bench-results/bench_load.json``, and exits 1 if the checker found anything.

    python tests/bench/bench_load.py [--clients 10] [--jobs 10000] [--only plain|kill|stop]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import load_check  # noqa: E402
from _common import print_table, write_results  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--jobs", type=int, default=10000, help="jobs per client")
    ap.add_argument("--only", choices=["plain", "kill", "stop"])
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    results, failed = {}, False
    for variant in ("plain", "kill", "stop"):
        if args.only and variant != args.only:
            continue
        load0 = os.getloadavg()[0]
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="strato-load-") as tmp:
            out = load_check.run_load(Path(tmp), args.clients, args.jobs,
                                      restart=variant if variant != "plain" else None,
                                      seed=args.seed)
        report = out.pop("report")
        out.update(wall_s=time.perf_counter() - t0, loadavg_before=load0,
                   counts=report.counts, failures=report.failures)
        results[variant] = out
        rows = [(k, v) for k, v in sorted(report.counts.items())]
        rows += [(k, out[k]) for k in ("startup_s", "killed_at_jobs", "restart_s",
                                       "clients_s", "all_done_s", "check_s",
                                       "clean_restart_s", "reconnects", "wall_s")
                 if k in out]
        rows.append(("jobs per second (all clients, to all done)",
                     report.counts.get("instance_jobs", 0) / out["all_done_s"]))
        print_table(f"load {variant}: {args.clients} clients x {args.jobs} jobs "
                    f"(load average {load0:.1f} at start)", rows)
        for f in report.failures[:50]:
            print("FAILED:", f)
        failed = failed or bool(report.failures)
    write_results("bench_load", {"clients": args.clients, "jobs_per_client": args.jobs,
                                 "runs": results, "ok": not failed})
    print("checker: all promises kept" if not failed else "checker: FAILURES (see above)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
