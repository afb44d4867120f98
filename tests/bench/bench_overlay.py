"""Multi-broker instances (``--test-size``), next to this machine's limits in the same run.

  start 4 / 16   wall time of ``strato start --test-size=N true`` from outside (median of
                 REPS), and the CPU time of the whole process tree (every broker is
                 reaped inside it, so RUSAGE_CHILDREN counts them all)
  jobs 4         1000 jobs of /bin/true submitted at once to a 4-broker instance
                 (submit_many + wait_all, timed inside it), the ranks they ran on, and the
                 CPU of every process of the instance per job (brokers, shell hosts and
                 the tasks they reaped)
  ping 16        round trip of an empty request (``broker.ping``) from a client of the
                 deepest rank of a 16-broker tree (fanout 2) to rank 0: median and p90
                 of REQS requests, and the CPU each broker on the path spent per request
  size 64        ``strato start --test-size=64`` running ``strato run -N64 hostname``
                 twice (cold: every rank's shell host starts; warm): wall times, the
                 hosts printed, and the memory of the instance's processes (RSS, and PSS,
                 which counts a page shared by k processes as 1/k in each)

Limits, measured in the same run: ``python -c pass`` (interpreter start), the bare spawn
rate of /bin/true (machine_limits.spawn_rate), and the 1-broker figures for comparison.

    python tests/bench/bench_overlay.py [--reps N] [--jobs N] [--quick]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import machine_limits  # noqa: E402
from _common import (  # noqa: E402
    STRATO,
    median,
    percentile,
    print_table,
    run_script_in_instance,
    write_results,
)

# Helpers shared by the scripts that run inside an instance: the CPU and memory of
# every process below a pid, read from /proc.
_PROC = r'''
import json, os, subprocess, sys, time
import strato
from strato import job

TICK = os.sysconf("SC_CLK_TCK")


def children(pid):
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out


def tree(pid):
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        try:
            todo += children(p)
        except OSError:
            pass
    return pids


def cpu_s(pids):
    """utime + stime of `pids` and of the children they reaped (cutime, cstime)."""
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
            total += sum(int(x) for x in fields[11:15])
        except OSError:
            pass
    return total / TICK


def mem_kb(pids):
    rss = pss = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    k, _, v = line.partition(":")
                    if k == "Rss":
                        rss += int(v.split()[0])
                    elif k == "Pss":
                        pss += int(v.split()[0])
        except OSError:
            pass
    return rss, pss


h = strato.Handle()
ROOT = h.rpc("attr.get", {"name": "broker.pid"})["value"]
RUNDIR = h.rpc("attr.get", {"name": "rundir"})["value"]
SIZE = h.rpc("attr.get", {"name": "size"})["value"]
OUT = sys.argv[1]
'''

JOBS_SCRIPT = _PROC + r'''
count = int(sys.argv[2])
js = strato.JobspecV1.from_command(["/bin/true"]).jobspec
job.wait_all(h, job.submit_many(h, js, 8))  # every shell host is up
before = cpu_s(tree(ROOT))
t0 = time.perf_counter()
ids = job.submit_many(h, js, count)
t1 = time.perf_counter()
results = job.wait_all(h, ids)
t2 = time.perf_counter()
cpu = cpu_s(tree(ROOT)) - before
ranks = {}
for jobid in ids[::max(1, count // 200)]:
    for entry in job.info(h, jobid)["R"]["execution"]["R_lite"]:
        ranks[entry["rank"]] = ranks.get(entry["rank"], 0) + 1
counts = {}
for r in results:
    counts[r.result] = counts.get(r.result, 0) + 1
json.dump({"count": count, "size": SIZE, "submit_s": t1 - t0, "total_s": t2 - t0,
           "jobs_per_s": count / (t2 - t0), "results": counts,
           "cpu_ms_per_job": cpu * 1000 / count, "ranks_of_sample": ranks}, open(OUT, "w"))
'''

PING_SCRIPT = _PROC + r'''
reqs = int(sys.argv[2])
deep = SIZE - 1  # in a k-ary tree the last rank is (one of) the deepest
fanout = h.rpc("attr.get", {"name": "tbon.fanout"})["value"]
path, r = [deep], deep
while r > 0:
    r = (r - 1) // fanout
    path.append(r)
dh = strato.Handle(f"local://{RUNDIR}/{deep}/local")
pids = [h.rpc("attr.get", {"name": "broker.pid"}, nodeid=r)["value"] for r in path]
level = dh.rpc("attr.get", {"name": "tbon.level"})["value"]


def pings(handle, n):
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        handle.rpc("broker.ping", {}, nodeid=0)
        times.append(time.perf_counter() - t0)
    return times


pings(dh, 100)
before = [cpu_s([p]) for p in pids]
deep_times = pings(dh, reqs)
cpu = [(cpu_s([p]) - b) * 1e6 / reqs for p, b in zip(pids, before)]
pings(h, 100)
local_times = pings(h, reqs)
json.dump({"size": SIZE, "from_rank": deep, "hops": level, "path": path, "reqs": reqs,
           "deep_times_s": sorted(deep_times), "local_times_s": sorted(local_times),
           "cpu_us_per_request_on_path": dict(zip(map(str, path), cpu))}, open(OUT, "w"))
'''

SIZE64_SCRIPT = _PROC + r'''
runs = []
for _ in range(2):
    t0 = time.perf_counter()
    p = subprocess.run([os.environ["STRATO_BENCH_CLI"], "run", f"-N{SIZE}", "hostname"],
                       capture_output=True, text=True)
    runs.append({"wall_s": time.perf_counter() - t0, "rc": p.returncode,
                 "lines": len(p.stdout.splitlines()), "stderr": p.stderr[-500:]})
procs = tree(ROOT)
brokers = [h.rpc("attr.get", {"name": "broker.pid"}, nodeid=r)["value"] for r in range(SIZE)]
rss, pss = mem_kb(procs)
brss, bpss = mem_kb(brokers)
json.dump({"size": SIZE, "runs": runs, "processes": len(procs), "rss_mb": rss / 1024,
           "pss_mb": pss / 1024, "broker_rss_mb_each": brss / 1024 / SIZE,
           "broker_pss_mb_each": bpss / 1024 / SIZE}, open(OUT, "w"))
'''


def start_true(size: int, reps: int) -> dict:
    """Wall and tree CPU of ``strato start --test-size=SIZE true``."""
    walls, cpus = [], []
    for _ in range(reps):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        p = subprocess.run([STRATO, "start", f"--test-size={size}", "true"],
                           capture_output=True, text=True, timeout=600)
        walls.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        if p.returncode != 0:
            raise RuntimeError(f"strato start --test-size={size} true failed: {p.stderr}")
    return {"size": size, "reps": reps, "wall_s": walls, "median_s": median(walls),
            "cpu_s": cpus, "median_cpu_s": median(cpus)}


def in_instance(size: int, script: str, args: list[str], config: str = "") -> dict:
    env = dict(os.environ, STRATO_BENCH_CLI=STRATO)
    env.pop("STRATO_URI", None)
    return run_script_in_instance(config, script, args, env=env,
                                  start_args=[f"--test-size={size}"])


def measure(reps: int, jobs: int, reqs: int, quick: bool) -> dict:
    res: dict = {"reps": reps}
    res["startup"] = machine_limits.python_startup(reps=10)
    res["spawn"] = machine_limits.spawn_rate(reps=1 if quick else 3)
    res["start_1"] = start_true(1, reps)
    res["start_4"] = start_true(4, reps)
    res["start_16"] = start_true(16, reps)
    res["jobs_1"] = in_instance(1, JOBS_SCRIPT, [str(jobs)])
    res["jobs_4"] = in_instance(4, JOBS_SCRIPT, [str(jobs)])
    ping = in_instance(16, PING_SCRIPT, [str(reqs)])
    for key in ("deep", "local"):
        times = ping.pop(f"{key}_times_s")
        ping[f"{key}_median_ms"] = median(times) * 1000
        ping[f"{key}_p90_ms"] = percentile(times, 90) * 1000
    res["ping_16"] = ping
    if not quick:
        res["size_64"] = in_instance(64, SIZE64_SCRIPT, [])
    return res


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--reqs", type=int, default=2000)
    ap.add_argument("--quick", action="store_true", help="skip the 64-broker case")
    args = ap.parse_args(argv)
    res = measure(args.reps, args.jobs, args.reqs, args.quick)
    write_results("bench_overlay", res)
    st, sp = res["startup"], res["spawn"]
    rows = [
        ("python -c pass (median, same run)", st["python_c_pass_s"] * 1000, "ms", "limit"),
        ("bare spawn rate (best, same run)", sp["best_per_s"], "proc/s", sp["best_method"]),
    ]
    for n in (1, 4, 16):
        s = res[f"start_{n}"]
        target = {1: "", 4: "target <= 0.6 s", 16: "target <= 1.5 s"}[n]
        rows.append((f"strato start --test-size={n} true", s["median_s"], "s",
                     f"CPU {s['median_cpu_s']:.2f} s; {target}".rstrip("; ")))
    for n in (1, 4):
        j = res[f"jobs_{n}"]
        rows.append((f"{j['count']} x /bin/true, {n} broker(s)", j["jobs_per_s"], "job/s",
                     f"{j['cpu_ms_per_job']:.2f} ms CPU/job; ranks {sorted(j['ranks_of_sample'])}"
                     f"; {j['results']}" + ("; target >= 300" if n == 4 else "")))
    p = res["ping_16"]
    path_cpu = ", ".join(f"{r}: {us:.0f}" for r, us in p["cpu_us_per_request_on_path"].items())
    rows.append((f"ping rank {p['from_rank']} -> 0 ({p['hops']} hops), median",
                 p["deep_median_ms"], "ms",
                 f"p90 {p['deep_p90_ms']:.2f} ms; CPU us/req {path_cpu}; target <= 2 ms"))
    rows.append(("ping rank 0 -> 0 (local), median", p["local_median_ms"], "ms",
                 f"p90 {p['local_p90_ms']:.2f} ms"))
    if "size_64" in res:
        s = res["size_64"]
        for name, run in zip(("cold", "warm"), s["runs"], strict=True):
            rows.append((f"--test-size=64: run -N64 hostname ({name})", run["wall_s"], "s",
                         f"rc={run['rc']}, {run['lines']} lines"))
        rows.append(("--test-size=64: start + 2 runs + stop", s["instance_wall_s"], "s",
                     f"{s['processes']} processes, RSS {s['rss_mb']:.0f} MB, "
                     f"PSS {s['pss_mb']:.0f} MB; broker RSS {s['broker_rss_mb_each']:.1f}"
                     f" MB / PSS {s['broker_pss_mb_each']:.1f} MB each"))
    print_table("overlay (multi-broker)", rows, headers=("figure", "value", "unit", "note"))
    print(f"load average: {os.getloadavg()}")
    return res


if __name__ == "__main__":
    main()
