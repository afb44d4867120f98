"""Submission throughput (issue 4): jobs accepted per second through the CLI.

Inside one fresh instance whose queue is stopped (so nothing runs and every job
stays queued), three times each, median:

- ``strato submit --cc=1-10000 --quiet true`` (one request of 10,000 copies);
- ``strato bulksubmit --quiet true {} ::: 1 ... 10000`` (10,000 different
  jobspecs in one request);

each timed as the wall time of the whole CLI command (interpreter start
included), side by side with ``python -c pass`` in the same run. Flux submits
about 1000 job/s on the reference machine; strato's target is > 3000 job/s.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import PYTHON, STRATO, median, print_table, write_results
from machine_limits import python_startup

INSIDE = r"""
import json, subprocess, sys, time
strato, n, reps, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
subprocess.run([strato, "queue", "stop"], check=True)
def timed(argv):
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0
cc = [timed([strato, "submit", f"--cc=1-{n}", "--quiet", "true"]) for _ in range(reps)]
inputs = [str(i) for i in range(1, n + 1)]
bulk = [timed([strato, "bulksubmit", "--quiet", "true", "{}", ":::", *inputs])
        for _ in range(reps)]
jobs = json.loads(subprocess.run([strato, "jobs", "--json", "-c", "0"], check=True,
                                 capture_output=True, text=True).stdout)["jobs"]
json.dump({"cc_s": cc, "bulk_s": bulk, "queued": len(jobs)}, open(out, "w"))
"""


def measure(n: int = 10_000, reps: int = 3) -> dict:
    with tempfile.TemporaryDirectory(prefix="strato-bench-") as tmp:
        out = Path(tmp) / "out.json"
        subprocess.run([STRATO, "start", PYTHON, "-c", INSIDE, STRATO, str(n), str(reps),
                        str(out)], check=True)
        data = json.loads(out.read_text())
    cc, bulk = median(data["cc_s"]), median(data["bulk_s"])
    return {"n": n, "reps": reps, "cc_s": data["cc_s"], "bulk_s": data["bulk_s"],
            "cc_jps": n / cc, "bulk_jps": n / bulk, "queued": data["queued"],
            "expected_queued": 2 * n * reps,
            "python_pass_ms": python_startup(10)["python_c_pass_s"] * 1000}


def main(argv=None) -> dict:
    r = measure()
    print_table("submission throughput (queue stopped, median of 3)", [
        ("python -c pass (same run)", r["python_pass_ms"], "ms"),
        (f"submit --cc=1-{r['n']} --quiet", r["cc_jps"], "job/s"),
        (f"bulksubmit, {r['n']} inputs", r["bulk_jps"], "job/s"),
        ("jobs queued afterwards", f"{r['queued']} / {r['expected_queued']}", ""),
    ], headers=("figure", "value", "unit"))
    write_results("bench_submit", r)
    return r


if __name__ == "__main__":
    main(sys.argv[1:])
