"""Job throughput, each case in a fresh instance, next to the bare spawn rate.

Cases (each run REPS times, a fresh ``strato start`` per run, median reported):
  real        1000 jobs of /bin/true, exec-local on this machine's own resources;
              also as a ratio to the bare spawn rate (machine_limits.spawn_rate,
              measured in this same run), with the CPU per job of each process
              and the share of the machine's CPU time left idle, each beside the
              bare loop's
  real (CLI)  the same through ``strato submit --cc=1-1000 --quiet --wait /bin/true``
              (one run; includes the CLI's own start-up)
  sim 1000 / sim 4000, exec-sim (duration 0), both on 1024 virtual nodes x 32 cores
              and on the default (this machine's) resources.

Job/s is measured inside the instance (``_driver.py``), with time.perf_counter
around submit_many + wait_all: from the start of the submit to the last result.

    python tests/bench/bench_throughput.py [--reps N]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import machine_limits  # noqa: E402
from _common import VIRTUAL_NODES_TOML, median, print_table, run_in_instance, write_results  # noqa: E402,E501

SIM = ["exec.backend=sim", "exec.sim-duration=0"]


def case(driver_args, reps, config_toml=None, overrides=()) -> dict:
    runs = [run_in_instance(driver_args, config_toml, list(overrides)) for _ in range(reps)]
    rates = [r["jobs_per_s"] for r in runs]
    bad = [r["results"] for r in runs if set(r["results"]) != {"COMPLETED"}]
    return {"jobs_per_s": median(rates), "runs_jobs_per_s": rates,
            "total_s": median([r["total_s"] for r in runs]),
            "submit_s": median([r["submit_s"] for r in runs]),
            "instance_wall_s": median([r["instance_wall_s"] for r in runs]),
            "all_completed": not bad, "bad_results": bad[:3],
            "broker_rss_mb": median([r["broker_mem"]["rss_mb"] for r in runs]),
            # the least CPU per job of the runs, by process (see _driver.do_throughput)
            "cpu_ms_per_job": min((r["cpu_ms_per_job"] for r in runs),
                                  key=lambda c: sum(c.values())),
            "idle_share": median([r.get("idle_share", 0.0) for r in runs])}


def measure(reps: int = 3) -> dict:
    res: dict = {"reps": reps}
    res["spawn"] = machine_limits.spawn_rate()
    bare = res["spawn"]["best_per_s"]
    res["real_1000"] = case(["throughput", "--count", "1000", "/bin/true"], reps)
    res["real_1000"]["ratio_to_bare_spawn"] = res["real_1000"]["jobs_per_s"] / bare
    res["real_1000"]["ratio_to_asyncio_spawn"] = (res["real_1000"]["jobs_per_s"]
                                                  / res["spawn"]["asyncio_per_s"])
    # the same ratio as CPU allows it: bare spawn's CPU per process over strato's
    # CPU per job (broker + shell host + task); the rate ratio cannot exceed it on a
    # machine whose cores both run flat out in the bare loop
    strato_cpu = sum(res["real_1000"]["cpu_ms_per_job"].values())
    res["real_1000"]["cpu_ratio_to_bare_spawn"] = (res["spawn"]["posix_spawn_cpu_ms_per_proc"]
                                                   / strato_cpu)
    cli = run_in_instance(["cli-throughput", "--count", "1000", "/bin/true"])
    res["real_1000_cli"] = cli
    for n in (1000, 4000):
        res[f"sim_{n}_vnodes"] = case(["throughput", "--count", str(n)], reps,
                                      VIRTUAL_NODES_TOML, SIM)
        res[f"sim_{n}_default"] = case(["throughput", "--count", str(n)], reps, None, SIM)
    return res


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args(argv)
    res = measure(args.reps)
    write_results("bench_throughput", res)
    s = res["spawn"]
    r = res["real_1000"]
    rows = [
        ("bare spawn rate (best, same run)", s["best_per_s"], "proc/s", s["best_method"]),
        ("bare asyncio spawn (same run)", s["asyncio_per_s"], "proc/s", ""),
        ("real 1000 x /bin/true (API)", r["jobs_per_s"], "job/s",
         f"{r['ratio_to_bare_spawn'] * 100:.0f}% of bare spawn; all ok={r['all_completed']}"),
        ("real: CPU per job, broker + shell host + task", sum(r["cpu_ms_per_job"].values()),
         "ms", ", ".join(f"{k} {v:.3f}" for k, v in r["cpu_ms_per_job"].items())
         + f"; bare spawn {s['posix_spawn_cpu_ms_per_proc']:.3f} ms/proc: CPU ratio "
         f"{r['cpu_ratio_to_bare_spawn'] * 100:.0f}%"),
        ("real: CPU time left idle during the run", round(r["idle_share"] * 100), "%",
         f"bare spawn loop: {s['posix_spawn_idle_share'] * 100:.0f}% (the rate ratio is "
         "about the CPU ratio times how busy the cores are kept)"),
        ("real 1000 x /bin/true (CLI submit --cc --wait)", res["real_1000_cli"]["jobs_per_s"],
         "job/s", f"rc={res['real_1000_cli']['rc']}, incl. CLI start"),
    ]
    for n in (1000, 4000):
        for where, label in (("vnodes", "1024x32 virtual nodes"), ("default", "default R")):
            c = res[f"sim_{n}_{where}"]
            rows.append((f"sim {n} ({label})", c["jobs_per_s"], "job/s",
                         f"all ok={c['all_completed']}"))
    print_table(f"throughput (median of {res['reps']} fresh instances)", rows,
                headers=("figure", "value", "unit", "note"))
    return res


if __name__ == "__main__":
    main()
