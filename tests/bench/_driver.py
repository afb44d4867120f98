"""Runs inside an instance (``strato start ... python tests/bench/_driver.py --out F MODE``)
and writes what it measured to F as JSON. Not a benchmark by itself; the
bench_*.py scripts start it.

Modes:
  throughput --count N [--cmd ARGV...]   submit_many + wait_all, timed with perf_counter
  cli-throughput --count N               `strato submit --cc=1-N --quiet --wait CMD`, wall time
  run-latency --reps R [--jobs N]        wall and CPU time of `strato run true`, then of
                                         `strato jobs -a` over N inactive jobs, each
                                         interleaved with `python -c pass`
  memory --count N                       broker VmRSS/VmHWM before and after N jobs
  held --count N --chunk C --reps R      N held jobs, then `strato jobs -a > /dev/null`
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import STRATO, idle_share, machine_cpu, median, percentile  # noqa: E402

import strato  # noqa: E402
from strato import job  # noqa: E402


def proc_mem(pid: int) -> dict:
    """VmRSS and VmHWM of a process, in MB (10**6 bytes; /proc reports KiB)."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(rest.split()[0]) * 1024 / 1e6
    return {"rss_mb": out.get("VmRSS"), "hwm_mb": out.get("VmHWM")}


def broker_info(h) -> dict:
    return h.rpc("broker.info")


def jobspec(cmd: list[str]) -> dict:
    return strato.JobspecV1.from_command(cmd).jobspec


def summarize_results(results) -> dict:
    counts: dict[str, int] = {}
    for r in results:
        counts[r.result] = counts.get(r.result, 0) + 1
    return counts


def proc_cpu_s(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) of a process itself and of its reaped children."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick


def shell_hosts(broker: int) -> list[int]:
    """The broker's shell host processes (children whose command line names it)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except (OSError, ValueError):
            continue
        if ppid == broker and b"shell-host" in cmdline:
            found.append(int(entry))
    return found


def do_throughput(args) -> dict:
    h = strato.Handle()
    js = jobspec(args.cmd or ["/bin/true"])
    info = broker_info(h)
    # a first job starts the shell host (exec-local), so its CPU can be counted
    job.wait_all(h, [job.submit(h, js)])
    hosts = shell_hosts(info["pid"])
    before = [proc_cpu_s(p) for p in (info["pid"], *hosts)]
    cpu0 = machine_cpu()
    t0 = time.perf_counter()
    ids = job.submit_many(h, js, args.count)
    t1 = time.perf_counter()
    results = job.wait_all(h, ids)
    t2 = time.perf_counter()
    cpu1 = machine_cpu()
    after = [proc_cpu_s(p) for p in (info["pid"], *hosts)]
    per_job = [((a[0] - b[0]) * 1000 / args.count, (a[1] - b[1]) * 1000 / args.count)
               for a, b in zip(after, before, strict=True)]
    return {
        "count": args.count,
        "cmd": args.cmd or ["/bin/true"],
        "submit_s": t1 - t0,
        "total_s": t2 - t0,
        "jobs_per_s": args.count / (t2 - t0),
        "results": summarize_results(results),
        "n_results": len(results),
        "broker_pid": info["pid"],
        "broker_mem": proc_mem(info["pid"]),
        # CPU per job (ms): the broker, its shell host(s), and the tasks they reaped
        # the share of the machine's CPU time left idle meanwhile
        "idle_share": idle_share(cpu0, cpu1),
        "cpu_ms_per_job": {"broker": per_job[0][0],
                           "shell_host": sum(p[0] for p in per_job[1:]),
                           "tasks": sum(p[1] for p in per_job[1:])},
    }


def do_cli_throughput(args) -> dict:
    cmd = [STRATO, "submit", f"--cc=1-{args.count}", "--quiet", "--wait",
           *(args.cmd or ["/bin/true"])]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    return {"count": args.count, "argv": cmd, "rc": p.returncode, "wall_s": wall,
            "jobs_per_s": args.count / wall, "stderr": p.stderr[-500:]}


def timed_child(argv: list[str]) -> tuple[float, float, int]:
    """``(wall, cpu, returncode)`` of one subprocess; cpu is its user+system time
    (from wait4), which other work on a shared machine disturbs far less than wall."""
    t0 = time.perf_counter()
    with open(os.devnull, "w") as dn:
        proc = subprocess.Popen(argv, stdout=dn)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_utime + usage.ru_stime, proc.returncode


def _latency(argv: list[str], reps: int, warmup: int) -> dict:
    """`argv` and ``python -c pass`` alternately, `reps` times each after `warmup`."""
    rows: dict[str, list] = {"cmd": [], "pass": []}
    rcs = set()
    for i in range(warmup + reps):
        cmd = timed_child(argv)
        bare = timed_child([sys.executable, "-c", "pass"])
        rcs.add(cmd[2])
        if i >= warmup:
            rows["cmd"].append(cmd)
            rows["pass"].append(bare)
    wall = [r[0] for r in rows["cmd"]]
    cpu = [r[1] for r in rows["cmd"]]
    return {"reps": reps, "warmup": warmup, "times_s": wall, "cpu_s": cpu,
            "median_s": median(wall), "p90_s": percentile(wall, 90), "min_s": min(wall),
            "max_s": max(wall), "cpu_median_s": median(cpu), "returncodes": sorted(rcs),
            "python_c_pass_median_s": median([r[0] for r in rows["pass"]]),
            "python_c_pass_cpu_median_s": median([r[1] for r in rows["pass"]])}


def do_run_latency(args) -> dict:
    res = _latency([STRATO, "run", "true"], args.reps, args.warmup)
    if args.jobs:
        h = strato.Handle()
        have = len(job.list_jobs(h, states=job.STATES["INACTIVE"], userid=None))
        if args.jobs > have:
            job.wait_all(h, job.submit_many(h, jobspec(["true"]), args.jobs - have))
        inactive = len(job.list_jobs(h, states=job.STATES["INACTIVE"], userid=None))
        res["jobs"] = _latency([STRATO, "jobs", "-a"], args.reps, args.warmup)
        res["jobs"]["inactive_jobs"] = inactive
    return res


def do_memory(args) -> dict:
    h = strato.Handle()
    pid = broker_info(h)["pid"]
    before = proc_mem(pid)
    js = jobspec(args.cmd or ["/bin/true"])
    t0 = time.perf_counter()
    ids = job.submit_many(h, js, args.count)
    results = job.wait_all(h, ids)
    dt = time.perf_counter() - t0
    after = proc_mem(pid)
    return {"count": args.count, "broker_pid": pid, "before": before, "after": after,
            "total_s": dt, "jobs_per_s": args.count / dt, "results": summarize_results(results)}


def do_held(args) -> dict:
    h = strato.Handle()
    pid = broker_info(h)["pid"]
    before = proc_mem(pid)
    js = jobspec(args.cmd or ["/bin/true"])
    n_ids = 0
    chunk_times = []
    error = None
    t0 = time.perf_counter()
    try:
        remaining = args.count
        while remaining > 0:
            c = min(args.chunk, remaining)
            tc = time.perf_counter()
            n_ids += len(job.submit_many(h, js, c, urgency=0))
            chunk_times.append(time.perf_counter() - tc)
            remaining -= c
    except Exception as exc:  # record, do not hide: "accepted without error" is a figure
        error = f"{type(exc).__name__}: {exc}"
    submit_s = time.perf_counter() - t0
    after_submit = proc_mem(pid)
    info = broker_info(h)

    jobs_times = []
    rc = None
    for _ in range(args.reps):
        t1 = time.perf_counter()
        with open(os.devnull, "w") as dn:
            p = subprocess.run([STRATO, "jobs", "-a"], stdout=dn)
        jobs_times.append(time.perf_counter() - t1)
        rc = p.returncode
    # one extra run to count the lines, not timed
    p = subprocess.run([STRATO, "jobs", "-a"], capture_output=True, text=True)
    lines = p.stdout.count("\n")
    after_jobs = proc_mem(pid)
    return {
        "count": args.count, "chunk": args.chunk, "accepted": n_ids, "error": error,
        "submit_s": submit_s, "submit_per_s": n_ids / submit_s if submit_s else None,
        "chunk_times_s": chunk_times,
        "broker_active_jobs": info.get("active"), "broker_jobs": info.get("jobs"),
        "jobs_a_times_s": jobs_times, "jobs_a_median_s": median(jobs_times), "jobs_a_rc": rc,
        "jobs_a_lines": lines,
        "broker_pid": pid, "mem_before": before, "mem_after_submit": after_submit,
        "mem_after_jobs": after_jobs,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    sub = ap.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("throughput")
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("cmd", nargs="*")
    p = sub.add_parser("cli-throughput")
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("cmd", nargs="*")
    p = sub.add_parser("run-latency")
    p.add_argument("--reps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--jobs", type=int, default=0)
    p = sub.add_parser("memory")
    p.add_argument("--count", type=int, default=4000)
    p.add_argument("cmd", nargs="*")
    p = sub.add_parser("held")
    p.add_argument("--count", type=int, default=100_000)
    p.add_argument("--chunk", type=int, default=10_000)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("cmd", nargs="*")
    args = ap.parse_args()
    fn = {"throughput": do_throughput, "cli-throughput": do_cli_throughput,
          "run-latency": do_run_latency, "memory": do_memory, "held": do_held}[args.mode]
    res = fn(args)
    res["mode"] = args.mode
    with open(args.out, "w") as f:
        json.dump(res, f)


if __name__ == "__main__":
    main()
