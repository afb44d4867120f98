"""Latency of the interactive commands, next to the interpreter's own start-up.

  run true     wall time of ``strato run true`` (a subprocess, timed by the driver
               inside one instance), 30 runs after 1 warm-up: median and p90
  start true   wall time of ``strato start true`` from outside, median of 10
  --help       ``strato --help``: wall time (median of 10) and whether it imports
               zmq, networkx or lark (``python -X importtime -m strato.cli.main --help``)

The figures are taken in the environment as it is. If PYTHONDONTWRITEBYTECODE is
set (as in some sandboxes), strato's own modules are recompiled by every command,
so ``run true`` and ``start true`` are also measured with bytecode cached in a
temporary PYTHONPYCACHEPREFIX (informative rows, "pyc cached").

    python tests/bench/bench_latency.py
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import machine_limits  # noqa: E402
from _common import (  # noqa: E402,E501
    PYTHON,
    STRATO,
    cached_bytecode_env,
    median,
    percentile,
    print_table,
    run_in_instance,
    write_results,
)

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


def measure(run_reps: int = 30, start_reps: int = 10, help_reps: int = 10) -> dict:
    res: dict = {}
    res["startup"] = machine_limits.python_startup()
    run = run_in_instance(["run-latency", "--reps", str(run_reps), "--warmup", "1"])
    res["run_true"] = run
    start = timed([STRATO, "start", "true"], start_reps)
    res["start_true"] = {"reps": start_reps, "times_s": start, "median_s": median(start),
                         "p90_s": percentile(start, 90), "min_s": min(start)}
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        with tempfile.TemporaryDirectory(prefix="strato-bench-pyc-") as pyc:
            env = cached_bytecode_env(pyc)
            timed([STRATO, "start", "true"], 1, env)  # fill the cache
            run_c = run_in_instance(["run-latency", "--reps", str(run_reps), "--warmup", "1"],
                                    env=env)
            start_c = timed([STRATO, "start", "true"], start_reps, env)
        res["pyc_cached"] = {"run_true_median_s": run_c["median_s"],
                             "run_true_p90_s": run_c["p90_s"],
                             "start_true_median_s": median(start_c),
                             "start_true_times_s": start_c}
    hlp = timed([STRATO, "--help"], help_reps)
    res["help"] = {"reps": help_reps, "median_s": median(hlp), "times_s": hlp,
                   **help_imports()}
    return res


def main(argv=None) -> dict:
    res = measure()
    write_results("bench_latency", res)
    st, r, s, h = res["startup"], res["run_true"], res["start_true"], res["help"]
    extra = []
    if "pyc_cached" in res:
        c = res["pyc_cached"]
        extra = [("strato run true median, pyc cached", c["run_true_median_s"] * 1000, "ms",
                  f"p90 {c['run_true_p90_s'] * 1000:.1f} ms; informative"),
                 ("strato start true median, pyc cached", c["start_true_median_s"] * 1000,
                  "ms", "informative")]
    print_table("latency", [
        ("python -c pass (median, same run)", st["python_c_pass_s"] * 1000, "ms", ""),
        ("python -c 'import zmq, msgspec'", st["python_import_zmq_msgspec_s"] * 1000, "ms", ""),
        (f"strato run true median ({r['reps']} runs)", r["median_s"] * 1000, "ms",
         f"p90 {r['p90_s'] * 1000:.1f} ms, rc={r['returncodes']}"),
        (f"strato start true median ({s['reps']} runs)", s["median_s"] * 1000, "ms",
         f"p90 {s['p90_s'] * 1000:.1f} ms"),
        ("strato --help median", h["median_s"] * 1000, "ms",
         f"imports zmq/networkx/lark: {h['forbidden_imported'] or 'none'}"),
        *extra,
    ], headers=("figure", "value", "unit", "note"))
    return res


if __name__ == "__main__":
    main()
