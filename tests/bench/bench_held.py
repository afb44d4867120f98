"""100,000 held jobs: accepted without error, and ``strato jobs -a`` on them.

In a fresh instance (exec-sim, so nothing would run even if released), the
driver submits 100,000 jobs of /bin/true with urgency 0 (held) through
``job.submit_many`` in chunks of 10,000, then times ``strato jobs -a > /dev/null``
(a subprocess; median of 3) and reads the broker's RSS.

    python tests/bench/bench_held.py [--count N] [--chunk C]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import print_table, run_in_instance, write_results  # noqa: E402

SIM = ["exec.backend=sim", "exec.sim-duration=0"]


def measure(count: int = 100_000, chunk: int = 10_000, reps: int = 3) -> dict:
    return run_in_instance(["held", "--count", str(count), "--chunk", str(chunk),
                            "--reps", str(reps)], None, SIM)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--chunk", type=int, default=10_000)
    args = ap.parse_args(argv)
    res = measure(args.count, args.chunk)
    write_results("bench_held", res)
    print_table("held jobs", [
        ("held jobs accepted", f"{res['accepted']} / {res['count']}", "",
         f"error: {res['error']}" if res["error"] else "no error"),
        (f"time to submit (chunks of {res['chunk']})", res["submit_s"], "s",
         f"{res['submit_per_s']:.0f} job/s" if res["submit_per_s"] else ""),
        ("strato jobs -a > /dev/null (median of 3)", res["jobs_a_median_s"], "s",
         f"{res['jobs_a_lines']} lines, rc={res['jobs_a_rc']}"),
        ("broker RSS after submit", res["mem_after_submit"]["rss_mb"], "MB", ""),
        ("broker RSS after jobs -a", res["mem_after_jobs"]["rss_mb"], "MB",
         f"peak {res['mem_after_jobs']['hwm_mb']:.0f} MB"),
    ], headers=("figure", "value", "unit", "note"))
    return res


if __name__ == "__main__":
    main()
