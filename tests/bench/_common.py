"""Shared helpers for the benchmarks in tests/bench/ (not a benchmark itself).

Every benchmark is plain Python, runnable as ``python tests/bench/NAME.py``; it
prints a small table and writes ``bench-results/NAME.json`` at the repo root.
Work that must happen *inside* an instance is done by ``_driver.py``, started
as ``strato start [--config F] [-S k=v ...] python tests/bench/_driver.py ...``;
the driver writes its JSON to a file named on its command line.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent.parent
RESULTS_DIR = REPO / "bench-results"
PYTHON = sys.executable
_BIN = Path(PYTHON).parent
STRATO = str(_BIN / "strato") if (_BIN / "strato").exists() else "strato"
DRIVER = str(BENCH_DIR / "_driver.py")

# 1024 virtual nodes x 32 cores (the example, without gpus).
VIRTUAL_NODES_TOML = """\
[[resource.config]]
hosts = "node[0-1023]"
cores = "0-31"
"""


def machine_cpu() -> tuple[int, int]:
    """(idle, total) clock ticks of all CPUs so far (/proc/stat): around a run, the
    share of the machine's CPU time it left idle. On a 2-core machine running two
    jobs at a time, a rate ratio is bounded by the CPU ratio times how busy the
    cores are kept, so both are reported."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:9]]
    return ticks[3] + ticks[4], sum(ticks)  # idle + iowait, all


def idle_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    """The share of CPU time left idle between two `machine_cpu` readings."""
    total = after[1] - before[1]
    return (after[0] - before[0]) / total if total else 0.0


def median(xs):
    return statistics.median(xs) if xs else None


def percentile(xs, p):
    """Nearest-rank percentile (p in 0..100)."""
    if not xs:
        return None
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(round(p / 100 * len(s) + 0.5)) - 1))
    return s[k]


def machine_info() -> dict:
    return {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        # other work on the machine skews every figure; keep a record of it
        "loadavg_1_5_15": os.getloadavg(),
    }


def write_results(name: str, data: dict) -> Path:
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    data = {"benchmark": name, "machine": machine_info(), **data}
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    return path


def print_table(title: str, rows: list[tuple], headers: tuple = ("figure", "value")) -> None:
    """Print rows of cells as an aligned plain-text table."""
    cells = [tuple(str(c) for c in headers)] + [tuple(_fmt(c) for c in r) for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    print(f"\n== {title} ==")
    for n, r in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
    sys.stdout.flush()


def _fmt(c) -> str:
    if isinstance(c, float):
        if abs(c) >= 100:
            return f"{c:.0f}"
        if abs(c) >= 1:
            return f"{c:.2f}"
        return f"{c:.4f}"
    return str(c)


def cached_bytecode_env(prefix: str) -> dict:
    """An environment in which Python caches bytecode under `prefix` (outside the repo).

    Some sandboxes set PYTHONDONTWRITEBYTECODE=1, and an editable install has no
    .pyc files, so every strato command recompiles strato's sources; this is what a
    user with a normal set-up (bytecode cached after the first run) gets instead.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = prefix
    return env


def run_script_in_instance(config_toml: str, script: str, args: list[str] = (),
                           timeout: float = 900, env: dict | None = None,
                           start_args: list[str] = ()) -> dict:
    """Start a fresh instance with `config_toml` running the Python `script`, which
    is called as ``script OUT_JSON ARGS...`` and writes its figures to OUT_JSON;
    return them, with the wall time of the whole ``strato start`` as
    ``instance_wall_s``. `env`: the environment (default: this process's);
    `start_args`: more options of ``strato start`` (``--test-size=4``)."""
    with tempfile.TemporaryDirectory(prefix="strato-bench-") as tmp:
        cfg = Path(tmp) / "config.toml"
        cfg.write_text(config_toml)
        drv = Path(tmp) / "driver.py"
        drv.write_text(script)
        out = Path(tmp) / "out.json"
        env = dict(os.environ if env is None else env)
        env["PATH"] = f"{Path(PYTHON).parent}:{env.get('PATH', '')}"
        cmd = [STRATO, "start", *start_args, "--config", str(cfg), PYTHON, str(drv), str(out),
               *args]
        t0 = time.perf_counter()
        p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                           env=env)
        wall = time.perf_counter() - t0
        if p.returncode != 0 or not out.exists():
            raise RuntimeError(f"{' '.join(cmd)} failed (rc={p.returncode}):\n"
                               f"stdout: {p.stdout[-2000:]}\nstderr: {p.stderr[-4000:]}")
        data = json.loads(out.read_text())
        data["instance_wall_s"] = wall
        return data


def run_in_instance(driver_args: list[str], config_toml: str | None = None,
                    overrides: list[str] = (), timeout: float = 600,
                    env: dict | None = None) -> dict:
    """Start a fresh instance running ``_driver.py driver_args`` and return its JSON.

    Also records the wall time of the whole ``strato start`` as ``instance_wall_s``.
    """
    with tempfile.TemporaryDirectory(prefix="strato-bench-") as tmp:
        out = Path(tmp) / "out.json"
        cmd = [STRATO, "start"]
        if config_toml is not None:
            cfg = Path(tmp) / "config.toml"
            cfg.write_text(config_toml)
            cmd += ["--config", str(cfg)]
        for o in overrides:
            cmd += ["-S", o]
        cmd += [PYTHON, DRIVER, "--out", str(out), *driver_args]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                              env=env)
        wall = time.perf_counter() - t0
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(
                f"{' '.join(cmd)} failed (rc={proc.returncode}):\n"
                f"stdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-4000:]}")
        data = json.loads(out.read_text())
        data["instance_wall_s"] = wall
        return data
