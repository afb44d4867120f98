"""Run every benchmark in sequence and print figure vs target (issues 3 and 4).

Each benchmark runs as its own subprocess (``python tests/bench/NAME.py``) and
writes ``bench-results/NAME.json``; this script reads them back, prints a
summary with this machine's limits and the flux-core v0.88 reference figures
side by side, and writes ``bench-results/run_all.json``. ``make bench`` runs it.
Exit status: 0 if every target is met, 1 otherwise.

    python tests/bench/run_all.py [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import BENCH_DIR, PYTHON, REPO, RESULTS_DIR, print_table, write_results  # noqa: E402,E501

BENCHES = ["machine_limits", "bench_throughput", "bench_latency", "bench_memory", "bench_held",
           "bench_submit", "bench_graph", "bench_graph_instance", "bench_reload",
           "bench_hierarchy", "bench_restart", "bench_load", "bench_purge", "bench_overlay"]

# flux-core v0.88 on the reference 2-core machines (issue 3, two measurements).
FLUX = {
    "real": "23-40 job/s",
    "sim1000": "72-116 job/s",
    "sim4000": "59-90 job/s",
    "run": "149-240 ms",
    "start": "0.9-1.7 s",
    "rss": "640-1000 MB",
    "alloc": "1.24-2.16 s",  # flux alloc -n1 true (issue 9)
    # issue 10, flux-core on the reference machine
    "start4": "1.5 s",
    "start16": "3.3 s",
    "real4": "43 job/s",
}


def load(name: str) -> dict | None:
    path = RESULTS_DIR / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def summary(r: dict) -> list[dict]:
    """Rows: figure, value, unit, machine limit, target, flux, ok."""
    rows: list[dict] = []

    def row(figure, value, unit, limit, target, flux, ok):
        rows.append({"figure": figure, "value": value, "unit": unit, "limit": limit,
                     "target": target, "flux": flux, "ok": bool(ok)})

    ml, tp, lat, mem, held = (r.get(n) for n in BENCHES[:5])
    if ml:
        row("bare spawn rate (machine_limits)", ml["spawn"]["best_per_s"], "proc/s",
            f"asyncio {ml['spawn']['asyncio_per_s']:.0f}/s", "-", "-", True)
        row("python -c pass", ml["startup"]["python_c_pass_s"] * 1000, "ms",
            f"import zmq,msgspec {ml['startup']['python_import_zmq_msgspec_s'] * 1000:.0f} ms",
            "-", "-", True)
    if tp:
        bare = tp["spawn"]["best_per_s"]
        real = tp["real_1000"]
        row("real exec 1000 x /bin/true", real["jobs_per_s"], "job/s",
            f"bare spawn {bare:.0f}/s (same run)",
            ">= 400 job/s", FLUX["real"],
            real["jobs_per_s"] >= 400 and real["all_completed"])
        row("real exec / bare spawn rate", real["ratio_to_bare_spawn"] * 100, "%",
            f"asyncio-only: {real['ratio_to_asyncio_spawn'] * 100:.0f}%", ">= 60% (issue 8)",
            "-", real["ratio_to_bare_spawn"] >= 0.60)
        for n, where, label, target, key in (
                (1000, "vnodes", "1024x32 vnodes", 10000, "sim1000"),  # issue 8
                (1000, "default", "default R", 2000, "sim1000"),
                (4000, "vnodes", "1024x32 vnodes", 1500, "sim4000"),
                (4000, "default", "default R", 1500, "sim4000")):
            c = tp[f"sim_{n}_{where}"]
            row(f"sim exec {n} jobs ({label})", c["jobs_per_s"], "job/s", "-",
                f">= {target} job/s", FLUX[key],
                c["jobs_per_s"] >= target and c["all_completed"])
    if lat:
        st = lat["startup"]
        run, jobs = lat["run_true"], lat["jobs_a"]
        row("strato run true (median)", run["median_s"] * 1000, "ms",
            f"python -c pass {run['python_c_pass_median_s'] * 1000:.0f} ms beside it",
            "<= 60 ms", FLUX["run"], run["median_s"] <= 0.060)
        row(f"strato jobs -a, {jobs['inactive_jobs']} jobs (median)", jobs["median_s"] * 1000,
            "ms", f"python -c pass {jobs['python_c_pass_median_s'] * 1000:.0f} ms beside it",
            "<= 150 ms", "-", jobs["median_s"] <= 0.150)
        row("strato start true (median)", lat["start_true"]["median_s"], "s",
            f"python -c pass {st['python_c_pass_s']:.3f} s", "<= 0.4 s", FLUX["start"],
            lat["start_true"]["median_s"] <= 0.4)
        h = lat["help"]
        row("strato --help imports zmq/networkx/lark",
            ",".join(h["forbidden_imported"]) or "none", "",
            f"wall {h['median_s'] * 1000:.0f} ms", "none", "-", h["ok"])
    if mem:
        worst = max(mem["default"]["after"]["rss_mb"], mem["vnodes"]["after"]["rss_mb"])
        row("broker RSS after 4000 sim jobs", worst, "MB",
            f"at start {mem['default']['before']['rss_mb']:.0f} MB", "<= 150 MB", FLUX["rss"],
            worst <= 150)
    if held:
        row("100k held jobs accepted", f"{held['accepted']}/{held['count']}", "",
            f"submit {held['submit_s']:.1f} s", "all, no error", "-",
            held["accepted"] == held["count"] and not held["error"])
        row("strato jobs -a on 100k jobs (median of 3)", held["jobs_a_median_s"], "s",
            f"broker RSS {held['mem_after_jobs']['rss_mb']:.0f} MB", "< 2 s", "-",
            held["jobs_a_median_s"] < 2.0 and held["jobs_a_rc"] == 0)
    sub = r.get("bench_submit")
    if sub:
        ok = sub["queued"] == sub["expected_queued"]
        row(f"submit --cc=1-{sub['n']} (queue stopped)", sub["cc_jps"], "job/s",
            f"python -c pass {sub['python_pass_ms']:.0f} ms", "> 3000 job/s", "~1000 job/s",
            ok and sub["cc_jps"] > 3000)
        row(f"bulksubmit, {sub['n']} inputs", sub["bulk_jps"], "job/s", "-", "> 3000 job/s",
            "~1000 job/s", ok and sub["bulk_jps"] > 3000)
    gr = r.get("bench_graph")
    if gr:  # sched-graph matcher (issue 5): the "flux" column holds Fluxion's reference figure
        for g in (g for g in gr["summary"] if g["target"]):
            f = g["speed_vs_ref"]
            row(f"sched-graph {g['figure']}", g["value"], g["unit"],
                f"{f:.2f}x Fluxion" if f is not None else "-", g["target"],
                f"Fluxion {g['ref']} {g['unit']}", g["ok"])
    rl = r.get("bench_reload")
    if rl:  # issue 8: scheduler reload with 10,000 queued and 1000 running sim jobs
        row("module reload sched (sched-simple), 10k queued + 1k running", rl["reload_s"],
            "s", f"ping {rl['ping_ms']:.1f} ms", "<= 1 s", "-",
            rl["jobs_kept"] and rl["reload_s"] <= 1.0)
        row("module load sched-graph (switch), same queue", rl["switch_s"], "s", "-",
            "<= 1 s", "-", rl["jobs_kept"] and rl["switch_s"] <= 1.0)
    gi = r.get("bench_graph_instance")
    if gi:  # sched-graph in an instance (issue 5)
        lo = gi["loop_ns_per_iter_start_end"]
        row(f"sched-graph instance, {gi['count']} sim jobs on 1024x32", gi["jobs_per_s"],
            "job/s", f"loop {lo[0]:.0f}/{lo[1]:.0f} ns/iter (start/end)",
            f">= {gi['target_jobs_per_s']:.0f} job/s",
            f"Fluxion {gi['fluxion_ref_jobs_per_s']:.0f} job/s (1000 jobs)", gi["ok"])
    hi = r.get("bench_hierarchy")
    if hi:  # issue 9: child instances and the seed's Figure 10 on virtual nodes
        s, st = hi["summary"], hi["startup"]
        row("strato alloc -n1 true (median)", s["alloc_median_s"], "s",
            f"python -c pass {st['python_c_pass_s'] * 1000:.0f} ms", "<= 0.35 s", FLUX["alloc"],
            s["alloc_ok"])
        row("3-level alloc tree (median)", s["tree_median_s"], "s", "-", "<= 1.2 s", "-",
            s["tree_ok"])
        bm, bo = s["best_measured"], s["best_modelled"]
        ba = s["best_measured_any_scheduler"]
        row(f"4096 sim jobs, best tree with lonode leaves here ({bm['key']})",
            bm["jobs_per_s"], "job/s",
            f"modelled many-node {bo['jobs_per_s']:.0f} job/s ({bo['key']}); sched-simple"
            f" tree here {ba['jobs_per_s']:.0f} job/s", ">= 5000 job/s", "-", s["best_ok"])
        md, ms = s["speedup_by_depth_modelled"], s["speedup_by_depth_measured"]
        row("speedup over flat lonode by depth (modelled)",
            " / ".join(f"d{d} {x:.1f}x" for d, x in md.items()), "",
            "measured here: " + " / ".join(f"d{d} {x:.1f}x" for d, x in ms.items()),
            "grows with depth (2 -> 3)", "seed: 45x / 60x", s["speedup_grows_ok"])
        row("child broker idle RSS", s["child_rss_mb"], "MB", "-", "<= 40 MB", "-",
            s["child_rss_ok"])
    rs = r.get("bench_restart")
    if rs:  # issue 13: restart with 100,000 inactive and 1000 running jobs
        row(f"restart, {rs['inactive']} inactive + {rs['running']} running sim jobs",
            rs["restart_s"], "s", f"empty statedir {rs['empty_start_s']:.2f} s (same run);"
            f" broker CPU {rs['broker_cpu_s']:.2f} s vs {rs['empty_broker_cpu_s']:.2f} s",
            "<= 3 s", "-", rs["ok"])
    ld = r.get("bench_load")
    if ld:  # issue 13: what clients were told against what the instance recorded
        for variant, run in ld["runs"].items():
            c = run["counts"]
            row(f"load {ld['clients']}x{ld['jobs_per_client']} sim jobs ({variant})",
                c.get("instance_jobs", 0) / run["all_done_s"], "job/s",
                f"{c.get('told jobs', 0)} told, {c.get('unknown batches', 0)} unknown"
                f" submits, {len(run['failures'])} checker failures", "0 failures", "-",
                not run["failures"])
    pu = r.get("bench_purge")
    if pu:  # issue 13: bounded growth over 200,000 jobs with inactive-num-limit
        last, v = pu["samples"][-1], pu["verdict"]
        row(f"broker RSS after {pu['jobs']} sim jobs, inactive-num-limit={pu['num_limit']}",
            last["rss_mb"], "MB",
            f"2nd half {v['rss']['second_half_kb_per_job']:.3f} kB/job vs 1st"
            f" {v['rss']['first_half_kb_per_job']:.3f}", "flat", "-", v["rss"]["flat"])
        row(f"statedir after {pu['jobs']} sim jobs", last["statedir_mb"], "MB",
            f"2nd half {v['statedir']['second_half_kb_per_job']:.3f} kB/job vs 1st"
            f" {v['statedir']['first_half_kb_per_job']:.3f}", "flat", "-",
            v["statedir"]["flat"])
    ov = r.get("bench_overlay")
    if ov:  # issue 10: multi-broker instances
        limit = f"python -c pass {ov['startup']['python_c_pass_s'] * 1000:.0f} ms"
        for n, target, flux in ((4, 0.6, FLUX["start4"]), (16, 1.5, FLUX["start16"])):
            s = ov[f"start_{n}"]
            row(f"strato start --test-size={n} true", s["median_s"], "s",
                f"{limit}; CPU {s['median_cpu_s']:.2f} s", f"<= {target} s", flux,
                s["median_s"] <= target)
        j = ov["jobs_4"]
        row(f"{j['count']} x /bin/true across 4 brokers", j["jobs_per_s"], "job/s",
            f"bare spawn {ov['spawn']['best_per_s']:.0f}/s; "
            f"1 broker {ov['jobs_1']['jobs_per_s']:.0f} job/s", ">= 300 job/s", FLUX["real4"],
            j["jobs_per_s"] >= 300 and set(j["results"]) == {"COMPLETED"})
        p = ov["ping_16"]
        row(f"ping rank {p['from_rank']} -> 0 of 16 ({p['hops']} hops), median",
            p["deep_median_ms"], "ms", f"local ping {p['local_median_ms']:.2f} ms",
            "<= 2 ms", "-", p["deep_median_ms"] <= 2)
        if "size_64" in ov:
            runs = ov["size_64"]["runs"]
            row("--test-size=64: run -N64 hostname (first)", runs[0]["wall_s"], "s",
                f"{ov['size_64']['broker_pss_mb_each']:.1f} MB PSS per broker", "runs", "-",
                all(x["rc"] == 0 and x["lines"] == 64 for x in runs))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*", choices=BENCHES,
                    help="run only these (the summary still reads every result file)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    durations, failed = {}, []
    for name in args.only or BENCHES:
        # results of an earlier run must not pass for today's
        (RESULTS_DIR / f"{name}.json").unlink(missing_ok=True)
        tb = time.perf_counter()
        p = subprocess.run([PYTHON, str(BENCH_DIR / f"{name}.py")], cwd=REPO)
        durations[name] = time.perf_counter() - tb
        if p.returncode != 0:
            failed.append(name)
            print(f"!! {name} failed (rc={p.returncode})", file=sys.stderr)
    results = {n: load(n) for n in BENCHES}
    rows = summary(results)
    total = time.perf_counter() - t0
    print_table(f"summary (total {total:.0f} s)", [
        (r["figure"], r["value"], r["unit"], r["limit"], r["target"], r["flux"],
         "ok" if r["ok"] else "MISSED")
        for r in rows
    ], headers=("figure", "strato", "unit", "machine limit / context", "target",
                "flux-core 0.88", "status"))
    missed = [r["figure"] for r in rows if not r["ok"]]
    write_results("run_all", {"rows": rows, "missed": missed, "failed": failed,
                              "durations_s": durations, "total_s": total})
    if failed:
        print(f"benchmarks that failed to run: {', '.join(failed)}")
    print("all targets met" if not missed and not failed
          else f"targets missed: {'; '.join(missed)}")
    return 0 if not missed and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
