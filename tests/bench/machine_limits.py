"""This machine's own limits, measured next to every strato figure.

(a) bare spawn rate: N=1000 ``/bin/true`` processes, at most os.cpu_count() in
    flight, (1) with asyncio.create_subprocess_exec and (2) with os.posix_spawn
    plus a waitpid loop; the best of the two (median of 3 runs each) is the
    "bare spawn rate" that strato's real-exec throughput is compared with;
(b) ``python -c pass``: median wall time over 20 runs (interpreter start);
(c) ``python -c "import zmq, msgspec"``: median over 20 runs (the floor for any
    CLI command that talks to an instance).

Other benchmarks import `spawn_rate` / `python_startup` to measure the limit in
the same run as their own figure.

    python tests/bench/machine_limits.py
"""

from __future__ import annotations

import asyncio
import os
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (  # noqa: E402
    PYTHON,
    idle_share,
    machine_cpu,
    median,
    print_table,
    write_results,
)

TRUE = "/bin/true"


async def _asyncio_spawn(n: int, concurrency: int) -> float:
    sem = asyncio.Semaphore(concurrency)
    dn = subprocess.DEVNULL

    async def one() -> None:
        async with sem:
            p = await asyncio.create_subprocess_exec(TRUE, stdin=dn, stdout=dn, stderr=dn)
            await p.wait()

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    return time.perf_counter() - t0


def asyncio_spawn_rate(n: int = 1000, concurrency: int | None = None) -> float:
    """Processes per second spawned and reaped by a bare asyncio loop."""
    concurrency = concurrency or os.cpu_count() or 1
    return n / asyncio.run(_asyncio_spawn(n, concurrency))


def _cpu_s(who: int) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def posix_spawn_cpu(n: int = 1000, concurrency: int | None = None) -> dict:
    """`posix_spawn_rate`, with the CPU it cost per process: the spawning loop's own
    and its children's (user + system, from getrusage). CPU is what a loaded machine
    disturbs least, and on 2 cores the rate is bounded by it."""
    self0, kids0 = _cpu_s(resource.RUSAGE_SELF), _cpu_s(resource.RUSAGE_CHILDREN)
    cpu0 = machine_cpu()
    rate = posix_spawn_rate(n, concurrency)
    return {"per_s": rate, "idle_share": idle_share(cpu0, machine_cpu()),
            "cpu_ms_per_proc_self": 1000 * (_cpu_s(resource.RUSAGE_SELF) - self0) / n,
            "cpu_ms_per_proc_child": 1000 * (_cpu_s(resource.RUSAGE_CHILDREN) - kids0) / n}


def posix_spawn_rate(n: int = 1000, concurrency: int | None = None) -> float:
    """Processes per second with os.posix_spawn and a blocking waitpid loop."""
    concurrency = concurrency or os.cpu_count() or 1
    env = dict(os.environ)
    devnull = os.open(os.devnull, os.O_RDWR)
    actions = [(os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, devnull, 1),
               (os.POSIX_SPAWN_DUP2, devnull, 2)]
    inflight: set[int] = set()
    started = done = 0
    t0 = time.perf_counter()
    try:
        while done < n:
            while started < n and len(inflight) < concurrency:
                inflight.add(os.posix_spawn(TRUE, [TRUE], env, file_actions=actions))
                started += 1
            pid, _ = os.waitpid(-1, 0)
            if pid in inflight:
                inflight.discard(pid)
                done += 1
    finally:
        os.close(devnull)
    return n / (time.perf_counter() - t0)


def spawn_rate(n: int = 1000, reps: int = 3) -> dict:
    """Bare spawn rate: median of `reps` runs of each method, and the best method."""
    conc = os.cpu_count() or 1
    a = [asyncio_spawn_rate(n, conc) for _ in range(reps)]
    runs = [posix_spawn_cpu(n, conc) for _ in range(reps)]
    p = [r["per_s"] for r in runs]
    res = {
        "n": n,
        "concurrency": conc,
        "asyncio_per_s": median(a),
        "asyncio_runs": a,
        "posix_spawn_per_s": median(p),
        "posix_spawn_runs": p,
        # CPU per process, loop plus child: the least of the runs (what a run costs
        # when nothing else disturbs it)
        "posix_spawn_cpu_ms_per_proc": min(r["cpu_ms_per_proc_self"]
                                           + r["cpu_ms_per_proc_child"] for r in runs),
        "posix_spawn_idle_share": median([r["idle_share"] for r in runs]),
    }
    res["best_method"] = "asyncio" if res["asyncio_per_s"] >= res["posix_spawn_per_s"] else \
        "posix_spawn"
    res["best_per_s"] = max(res["asyncio_per_s"], res["posix_spawn_per_s"])
    return res


def _time_cmd(argv: list[str], reps: int) -> list[float]:
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        out.append(time.perf_counter() - t0)
    return out


def python_startup(reps: int = 20) -> dict:
    """Median wall time of ``python -c pass`` and of importing zmq+msgspec."""
    bare = _time_cmd([PYTHON, "-c", "pass"], reps)
    imp = _time_cmd([PYTHON, "-c", "import zmq, msgspec"], reps)
    return {
        "python": PYTHON,
        "reps": reps,
        "python_c_pass_s": median(bare),
        "python_import_zmq_msgspec_s": median(imp),
    }


def measure() -> dict:
    return {"spawn": spawn_rate(), "startup": python_startup()}


def main() -> dict:
    res = measure()
    s, st = res["spawn"], res["startup"]
    write_results("machine_limits", res)
    print_table("machine limits", [
        (f"bare spawn asyncio (n={s['n']}, conc={s['concurrency']})", s["asyncio_per_s"],
         "proc/s"),
        (f"bare spawn posix_spawn+waitpid (conc={s['concurrency']})", s["posix_spawn_per_s"],
         "proc/s"),
        (f"bare spawn rate (best: {s['best_method']})", s["best_per_s"], "proc/s"),
        ("python -c pass (median of 20)", st["python_c_pass_s"] * 1000, "ms"),
        ("python -c 'import zmq, msgspec' (median)", st["python_import_zmq_msgspec_s"] * 1000,
         "ms"),
    ], headers=("figure", "value", "unit"))
    return res


if __name__ == "__main__":
    main()
