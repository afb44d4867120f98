"""Restart time (issue 13, "Speed"): <= 3 s for an instance with 100,000 inactive and
1000 running jobs, on 1024 x 32 virtual nodes with exec-sim.

A first instance on a fresh statedir runs 100,000 simulated jobs to completion,
then starts 1000 that each hold a core for an hour, and stops (``strato
shutdown``'s path: its initial program exits): with a statedir the running jobs
are kept. A second ``strato start`` on the same statedir is then timed from its
launch to the moment its initial program has its first answer (``job-list
.job-stats``: 100,000 inactive, 1000 running; running sim jobs are simulated
again from their start). Beside it, in the same run: ``strato start`` of the same
config on an empty statedir, timed the same way (the floor any restart pays:
interpreter, imports, broker), and ``python -c pass``. The broker's CPU time up to
that answer is reported too: on a loaded machine it says what the wall time
cannot.

    python tests/bench/bench_restart.py [--inactive N] [--running N] [--reps N]
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
from _common import (  # noqa: E402
    PYTHON,
    REPO,
    STRATO,
    VIRTUAL_NODES_TOML,
    median,
    print_table,
    write_results,
)
from machine_limits import python_startup  # noqa: E402

CONFIG = '[exec]\nbackend = "sim"\n' + VIRTUAL_NODES_TOML

FILL = """\
import json, sys
import strato
from strato import job
h = strato.Handle()
inactive, running = int(sys.argv[2]), int(sys.argv[3])
done = strato.JobspecV1.from_command(["true"], environment={})
for start in range(0, inactive, 10000):
    job.submit_many(h, done, min(10000, inactive - start))
h.rpc("queue.wait", {"what": "empty"})
hold = strato.JobspecV1.from_command(["true"], environment={})
hold.setattr("system.exec.test.run_duration", 3600)
ids = job.submit_many(h, hold, running)
job.event_wait(h, ids[-1], "start", timeout=600)
with open(sys.argv[1], "w") as f:
    json.dump(job.stats(h).as_dict(), f)
"""

FIRST_ANSWER = """\
import json, os, sys, time
import strato
from strato import job
h = strato.Handle()
stats = job.stats(h).as_dict()
t_answer = time.time()
pid = h.rpc("attr.get", {"name": "broker.pid"})["value"]
with open(f"/proc/{pid}/stat") as f:
    fields = f.read().rpartition(")")[2].split()
cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
with open(sys.argv[1], "w") as f:
    json.dump({"t_answer": t_answer, "stats": stats, "broker_cpu_s": cpu}, f)
"""


def start(tmp: Path, statedir: Path, script: str, *args: str) -> tuple[float, dict]:
    """Run ``strato start --statedir`` with `script`; (seconds from launch to the
    script's answer, the script's JSON)."""
    cfg, drv, out = tmp / "config.toml", tmp / "driver.py", tmp / "out.json"
    cfg.write_text(CONFIG)
    drv.write_text(script)
    out.unlink(missing_ok=True)
    env = dict(os.environ, PATH=f"{Path(PYTHON).parent}:{os.environ.get('PATH', '')}")
    env.pop("STRATO_URI", None)
    cmd = [STRATO, "start", "--config", str(cfg), "--statedir", str(statedir), PYTHON,
           str(drv), str(out), *args]
    t0 = time.time()
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1800, env=env)
    if p.returncode != 0 or not out.exists():
        raise RuntimeError(f"{' '.join(cmd)} failed (rc={p.returncode}):\n{p.stderr[-4000:]}")
    data = json.loads(out.read_text())
    return data.get("t_answer", t0) - t0, data


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--inactive", type=int, default=100_000)
    ap.add_argument("--running", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="strato-bench-") as d:
        tmp = Path(d)
        state = tmp / "state"
        t0 = time.perf_counter()
        _, filled = start(tmp, state, FILL, str(args.inactive), str(args.running))
        fill_s = time.perf_counter() - t0
        restarts, empties, seen, cpus, empty_cpus = [], [], [], [], []
        for i in range(args.reps):
            secs, data = start(tmp, state, FIRST_ANSWER)
            restarts.append(secs)
            cpus.append(data["broker_cpu_s"])
            seen.append(data["stats"])
            secs, data = start(tmp, tmp / f"empty{i}", FIRST_ANSWER)
            empties.append(secs)
            empty_cpus.append(data["broker_cpu_s"])
    st = python_startup(10)
    want = {"inactive": args.inactive, "run": args.running}
    kept = all({k: s[k] for k in want} == want for s in seen)
    restart_s, empty_s = median(restarts), median(empties)
    cpu_s, empty_cpu_s = median(cpus), median(empty_cpus)
    res = {"inactive": args.inactive, "running": args.running, "reps": args.reps,
           "restart_s": restart_s, "restarts_s": restarts, "empty_start_s": empty_s,
           "broker_cpu_s": cpu_s, "empty_broker_cpu_s": empty_cpu_s,
           "python_c_pass_s": st["python_c_pass_s"], "fill_s": fill_s,
           "filled": filled, "seen": seen, "jobs_kept": kept, "target_s": 3.0,
           "ok": kept and restart_s <= 3.0}
    write_results("bench_restart", res)
    print_table(f"restart on a statedir with {args.inactive} inactive + {args.running} "
                f"running sim jobs (median of {args.reps})", [
                    ("strato start to first answer, restart", f"{restart_s:.2f} s", "<= 3 s",
                     f"empty statedir {empty_s:.2f} s, python -c pass "
                     f"{st['python_c_pass_s'] * 1000:.0f} ms"),
                    ("broker CPU time to that answer, restart", f"{cpu_s:.2f} s", "",
                     f"empty statedir {empty_cpu_s:.2f} s (load-independent)"),
                    ("every job kept (inactive, running)", kept, "", ""),
                ], headers=("figure", "strato", "target", "machine floor (same run)"))
    return res


if __name__ == "__main__":
    main(sys.argv[1:])
