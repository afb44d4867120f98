"""Latency of the interactive commands, next to the interpreter's own start-up.

  run true     ``strato run true`` inside one instance: 30 runs after 1 warm-up, each a
               subprocess timed by the driver (wall, and its CPU from wait4), each
               followed by a ``python -c pass`` timed the same way (the figure to
               compare with, taken under the same load); target <= 60 ms median
  jobs -a      ``strato jobs -a`` in the same instance once it holds 1000 inactive
               jobs, the same way; target <= 150 ms median
  start true   wall time of ``strato start true`` from outside, median of 10
  --help       ``strato --help``: wall time (median of 10) and whether it imports
               zmq, networkx or lark (``python -X importtime -m strato.cli.main --help``)

Bytecode: a user's install has its modules compiled (pip compiles them), but an
editable install in a sandbox with PYTHONDONTWRITEBYTECODE=1 would recompile
strato's sources in every command. So strato's sources are first compiled in place
with compileall, as pip does; every figure is taken with that bytecode.

    python tests/bench/bench_latency.py
"""

from __future__ import annotations

import compileall
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import machine_limits  # noqa: E402
from _common import (  # noqa: E402,E501
    PYTHON,
    REPO,
    STRATO,
    median,
    percentile,
    print_table,
    run_in_instance,
    write_results,
)

SOURCE_DIRS = ("strato", "core", "cli", "jobspec", "shell", "plugins")
RUN_TARGET_S = 0.060
JOBS_TARGET_S = 0.150

HEAVY = ("zmq", "networkx", "lark", "msgspec", "sqlite3", "pluggy", "asyncio")
FORBIDDEN = ("zmq", "networkx", "lark")


def timed(argv: list[str], reps: int, env: dict | None = None) -> list[float]:
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        p = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        out.append(time.perf_counter() - t0)
        if p.returncode != 0:
            raise RuntimeError(f"{argv} failed: {p.stderr.decode()[-1000:]}")
    return out


def help_imports() -> dict:
    """Top-level packages `strato --help` imports (from -X importtime)."""
    env = dict(os.environ)
    env.pop("STRATO_URI", None)
    p = subprocess.run([PYTHON, "-X", "importtime", "-m", "strato.cli.main", "--help"],
                       capture_output=True, text=True, env=env)
    mods = set()
    cumulative_us = {}
    for line in p.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if m:
            name = m.group(4)
            mods.add(name)
            top = name.split(".")[0]
            if len(m.group(3)) <= 2:  # top-level import: cumulative time
                cumulative_us[top] = cumulative_us.get(top, 0) + int(m.group(2))
    tops = {m.split(".")[0] for m in mods}
    heaviest = sorted(cumulative_us.items(), key=lambda kv: -kv[1])[:8]
    return {
        "rc": p.returncode,
        "n_modules": len(mods),
        "heavy_imported": sorted(t for t in HEAVY if t in tops),
        "forbidden_imported": sorted(t for t in FORBIDDEN if t in tops),
        "ok": p.returncode == 0 and not any(t in tops for t in FORBIDDEN),
        "heaviest_top_level_ms": {k: v / 1000 for k, v in heaviest},
    }


def compile_sources() -> bool:
    """strato's modules compiled in place, as pip compiles an installed package."""
    return all(compileall.compile_dir(str(REPO / d), quiet=1) for d in SOURCE_DIRS)


def measure(run_reps: int = 30, start_reps: int = 10, help_reps: int = 10,
            jobs: int = 1000) -> dict:
    res: dict = {"bytecode_compiled": compile_sources()}
    res["startup"] = machine_limits.python_startup()
    run = run_in_instance(["run-latency", "--reps", str(run_reps), "--warmup", "1",
                           "--jobs", str(jobs)], timeout=1800)
    res["jobs_a"] = run.pop("jobs")
    res["run_true"] = run
    start = timed([STRATO, "start", "true"], start_reps)
    res["start_true"] = {"reps": start_reps, "times_s": start, "median_s": median(start),
                         "p90_s": percentile(start, 90), "min_s": min(start)}
    hlp = timed([STRATO, "--help"], help_reps)
    res["help"] = {"reps": help_reps, "median_s": median(hlp), "times_s": hlp,
                   **help_imports()}
    return res


def main(argv=None) -> dict:
    res = measure()
    write_results("bench_latency", res)
    st, r, j, s, h = (res["startup"], res["run_true"], res["jobs_a"], res["start_true"],
                      res["help"])

    def ms(x: float) -> float:
        return x * 1000

    print_table("latency (bytecode compiled)", [
        ("python -c pass median, beside run true", ms(r["python_c_pass_median_s"]), "ms",
         f"CPU {ms(r['python_c_pass_cpu_median_s']):.1f} ms"),
        (f"strato run true median ({r['reps']} runs)", ms(r["median_s"]), "ms",
         f"p90 {ms(r['p90_s']):.1f} ms, CPU {ms(r['cpu_median_s']):.1f} ms, "
         f"rc={r['returncodes']}, target <= {ms(RUN_TARGET_S):.0f} ms"),
        ("python -c pass median, beside jobs -a", ms(j["python_c_pass_median_s"]), "ms",
         f"CPU {ms(j['python_c_pass_cpu_median_s']):.1f} ms"),
        (f"strato jobs -a median, {j['inactive_jobs']} inactive jobs", ms(j["median_s"]),
         "ms", f"p90 {ms(j['p90_s']):.1f} ms, CPU {ms(j['cpu_median_s']):.1f} ms, "
         f"target <= {ms(JOBS_TARGET_S):.0f} ms"),
        ("python -c pass (machine_limits, median)", ms(st["python_c_pass_s"]), "ms", ""),
        (f"strato start true median ({s['reps']} runs)", ms(s["median_s"]), "ms",
         f"p90 {ms(s['p90_s']):.1f} ms"),
        ("strato --help median", ms(h["median_s"]), "ms",
         f"imports zmq/networkx/lark: {h['forbidden_imported'] or 'none'}"),
    ], headers=("figure", "value", "unit", "note"))
    return res


if __name__ == "__main__":
    main()
