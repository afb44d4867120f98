"""Bounded growth: 200,000 simulated jobs through one instance that purges.

An instance with a statedir, exec-sim (duration 0) and
``job-manager.inactive-num-limit`` runs the jobs in chunks (submit a chunk,
wait until the queue is empty); after each chunk the driver, running as the
instance's initial program, records the broker's RSS and the statedir's size
(database, WAL and shared-memory files). The bound asserted: from the middle of
the run to its end, neither grows by more than a small fraction of what
keeping every job would cost (the growth per job of the first half, when the
kept jobs and the database are filling up, against the second half's).

    python tests/bench/bench_purge.py [--jobs 200000] [--chunk 10000] [--num-limit 1000]

Exit status 0 if the bound holds. ``tests/integration/test_purge.py`` runs it
with 20,000 jobs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import PYTHON, REPO, STRATO, print_table, write_results  # noqa: E402

#: the second half may grow by at most this fraction of the first half's growth
#: per job (keeping every job, both halves grow alike: a ratio near 1)
FLAT_RATIO = 0.25
#: growth below this is noise (allocator, page cache of the database), not a trend
SLACK_MB = {"rss": 8.0, "statedir": 4.0}


def statedir_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file()) / 1e6


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError(f"no VmRSS for pid {pid}")


def drive(out: str, jobs: int, chunk: int) -> None:
    """Inside the instance: run the jobs in chunks, sampling after each."""
    import strato
    from strato import instance, job, queue

    h = strato.Handle()
    info = instance.info(h)
    pid, statedir = info["pid"], Path(info["statedir"])
    js = strato.JobspecV1.from_command(["true"])
    samples = [{"jobs": 0, "rss_mb": rss_mb(pid), "statedir_mb": statedir_mb(statedir),
                "t": 0.0}]
    t0 = time.perf_counter()
    done = 0
    while done < jobs:
        n = min(chunk, jobs - done)
        job.submit_many(h, js, n)
        queue.drain(h)
        done += n
        stats = job.stats(h)
        samples.append({"jobs": done, "rss_mb": rss_mb(pid),
                        "statedir_mb": statedir_mb(statedir),
                        "t": time.perf_counter() - t0, "kept": stats.inactive,
                        "purged": stats.inactive_purged})
        print(f"{done:>8} jobs  broker RSS {samples[-1]['rss_mb']:7.1f} MB  statedir"
              f" {samples[-1]['statedir_mb']:7.1f} MB  kept {stats.inactive}", flush=True)
    Path(out).write_text(json.dumps({"samples": samples}))


def verdict(samples: list[dict]) -> dict:
    """Growth per job in the first and second half, and whether it stayed flat."""
    first, mid, last = samples[0], samples[len(samples) // 2], samples[-1]
    out = {}
    for key in ("rss", "statedir"):
        field = f"{key}_mb"
        grow1 = mid[field] - first[field]
        grow2 = last[field] - mid[field]
        per_job1 = grow1 / max(mid["jobs"] - first["jobs"], 1)
        per_job2 = grow2 / max(last["jobs"] - mid["jobs"], 1)
        out[key] = {"first_half_mb": grow1, "second_half_mb": grow2,
                    "first_half_kb_per_job": per_job1 * 1000,
                    "second_half_kb_per_job": per_job2 * 1000,
                    "flat": grow2 <= SLACK_MB[key] or per_job2 <= FLAT_RATIO * per_job1}
    return out


def run(jobs: int, chunk: int, num_limit: int, timeout: float = 3600) -> dict:
    """Start the instance, let `drive` run inside it, and return its samples."""
    with tempfile.TemporaryDirectory(prefix="strato-bench-purge-") as tmp:
        out = Path(tmp) / "out.json"
        cmd = [STRATO, "start", "--statedir", str(Path(tmp) / "state"),
               "-S", "exec.backend=sim", "-S", f"job-manager.inactive-num-limit={num_limit}",
               PYTHON, os.path.abspath(__file__), "--drive", str(out),
               "--jobs", str(jobs), "--chunk", str(chunk)]
        env = dict(os.environ, PATH=f"{Path(PYTHON).parent}:{os.environ.get('PATH', '')}")
        t0 = time.perf_counter()
        p = subprocess.run(cmd, cwd=REPO, text=True, stderr=subprocess.PIPE, timeout=timeout,
                           env=env)
        if p.returncode != 0 or not out.exists():
            raise RuntimeError(f"{' '.join(cmd)} failed (rc={p.returncode}): {p.stderr[-3000:]}")
        data = json.loads(out.read_text())
    data.update(jobs=jobs, chunk=chunk, num_limit=num_limit,
                wall_s=time.perf_counter() - t0)
    data["verdict"] = verdict(data["samples"])
    return data


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=200_000)
    ap.add_argument("--chunk", type=int, default=10_000)
    ap.add_argument("--num-limit", type=int, default=1000)
    ap.add_argument("--drive", metavar="OUT", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.drive:
        drive(args.drive, args.jobs, args.chunk)
        return 0
    res = run(args.jobs, args.chunk, args.num_limit)
    write_results("bench_purge", res)
    last = res["samples"][-1]
    rows = [("jobs run", res["jobs"], ""), ("inactive-num-limit", res["num_limit"], ""),
            ("wall time", res["wall_s"], "s"),
            ("broker RSS at the end", last["rss_mb"], "MB"),
            ("statedir at the end", last["statedir_mb"], "MB")]
    for key in ("rss", "statedir"):
        v = res["verdict"][key]
        rows.append((f"{key}: growth per job, first half", v["first_half_kb_per_job"], "kB"))
        rows.append((f"{key}: growth per job, second half", v["second_half_kb_per_job"], "kB"))
        rows.append((f"{key}: flat", v["flat"], ""))
    print_table("purge: bounded growth", rows, headers=("figure", "value", "unit"))
    return 0 if all(v["flat"] for v in res["verdict"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
