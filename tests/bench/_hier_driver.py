"""The initial program of every instance of a hierarchy (bench_hierarchy.py).

Started as ``strato start ... python _hier_driver.py --out DIR --path P --fanout
F1,F2,... --jobs N``. With an empty fanout the instance is a leaf: it submits N
``true`` jobs into itself (``job.submit_many``, one request) and waits for them
(``job.wait_all``, one stream). Otherwise it splits its resources into F1 equal
shares (whole nodes, exclusive, if it has at least F1 nodes; else cores of its
one node), submits F1 child instances (``strato start`` jobs, one
``job.submit_list`` request) that run this program again with the rest of the
fanout and their share of N, and waits for them. Children simulate their own jobs
(``exec.backend=sim``, duration 0); their scheduler is ``--upper`` (inner
levels) or ``--leaf`` (leaves), comma-separated KEY=VAL settings.

With ``--sample`` only one root-to-leaf path is real: at each level the first
child is submitted after f-1 simulated placeholder jobs of the same shape (held
until it ends), so it is allocated last, as the last of f children would be, and
the path's time is that of the slowest path of the whole tree when every
instance has cores of its own (the many-node case).

Each instance writes ``DIR/P.json``: wall-clock times (``time.time()``, one clock
for every process of the machine) of its start, its first submit, the end of the
submit, the last result, and for each child the parent's eventlog timestamps
(submit, alloc, start, memo = the child's URI posted, finish, clean); and the CPU
time its broker and this program have used by the end.
"""

import time

T_BEGIN = time.time()  # before the imports: the initial program is running

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

import strato  # noqa: E402
from strato import job, resource  # noqa: E402

T_IMPORTED = time.time()

EVENTS = ("submit", "alloc", "start", "memo", "finish", "clean")


def settings(text: str) -> list[str]:
    out = []
    for item in filter(None, text.split(",")):
        out += ["-S", item]
    return out


def child_shape(args, nodes: int, cores: int, f: int, leaf_level: bool) -> dict:
    """How one of `f` children is shaped (from_nest_command keywords)."""
    if leaf_level and args.leaf_cores:
        return {"num_slots": 1, "cores_per_slot": args.leaf_cores}
    if nodes >= f:
        return {"num_nodes": nodes // f, "exclusive": True}
    if nodes == 1 and cores >= f:
        return {"num_slots": 1, "cores_per_slot": cores // f}
    raise SystemExit(f"{args.path}: cannot split {nodes} nodes / {cores} cores {f} ways")


def placeholder(shape: dict):
    """A simulated job holding what one child would (sample mode)."""
    slots = shape.get("num_slots", shape.get("num_nodes", 1))
    js = strato.JobspecV1.from_command(["true"], num_tasks=slots,
                                       cores_per_task=shape.get("cores_per_slot", 1),
                                       num_nodes=shape.get("num_nodes"),
                                       exclusive=shape.get("exclusive", False), environment={},
                                       name="placeholder")
    js.setattr("system.exec.test.run_duration", 1e6)
    return js


def child_jobspecs(args, nodes: int, cores: int, fanout: list[int]) -> tuple[list, dict]:
    """The f child instances' jobspecs (sample mode: f-1 placeholders, then the
    first child, so that it is allocated last, as the last of f would be)."""
    f, rest = fanout[0], fanout[1:]
    shares = [args.jobs // f + (i < args.jobs % f) for i in range(f)]
    shape = child_shape(args, nodes, cores, f, not rest)
    opts = ["-S", "exec.backend=sim", "-S", "exec.sim-duration=0",
            *settings(args.leaf if not rest else args.upper)]
    specs = []
    for i, share in enumerate(shares[:1] if args.sample else shares):
        argv = [*opts, sys.executable, os.path.abspath(__file__), "--out", args.out,
                "--path", f"{args.path}.{i}", "--fanout", ",".join(map(str, rest)),
                "--jobs", str(share), "--upper", args.upper, "--leaf", args.leaf,
                "--leaf-cores", str(args.leaf_cores), *(["--sample"] if args.sample else [])]
        specs.append(strato.JobspecV1.from_nest_command(argv, name=f"h{args.path}.{i}",
                                                         **shape))
    if args.sample:
        specs = [placeholder(shape) for _ in range(f - 1)] + specs
    return specs, shape


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def first_times(log: list[dict]) -> dict:
    out: dict = {}
    for entry in log:
        name = entry.get("name")
        if name in EVENTS and name not in out:
            out[name] = entry.get("timestamp")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--path", default="0")
    ap.add_argument("--fanout", default="")
    ap.add_argument("--jobs", type=int, required=True)
    ap.add_argument("--upper", default="")
    ap.add_argument("--leaf", default="")
    ap.add_argument("--leaf-cores", type=int, default=0,
                    help="give each leaf this many cores of one node (default: an equal share)")
    ap.add_argument("--sample", action="store_true",
                    help="one root-to-leaf path: at each level the first child is real and"
                         " its siblings are simulated placeholders holding their share")
    args = ap.parse_args()
    fanout = [int(x) for x in args.fanout.split(",") if x]
    h = strato.Handle()
    t_connected = time.time()
    have = resource.info(h)
    info = h.rpc("broker.info")
    rec = {"path": args.path, "level": args.path.count("."), "nodes": have["nodes"],
           "cores": have["cores"], "jobs": args.jobs, "fanout": fanout,
           "broker_pid": info["pid"], "broker_t_start": info["t_start"],
           "t_begin": T_BEGIN, "t_imported": T_IMPORTED, "t_connected": t_connected}
    if not fanout:
        js = strato.JobspecV1.from_command(["true"], environment={})
        t0 = time.time()
        ids = job.submit_many(h, js, args.jobs) if args.jobs else []
        t1 = time.time()
        results = job.wait_all(h, ids) if ids else []
        t2 = time.time()
    else:
        specs, shape = child_jobspecs(args, have["nodes"], have["cores"], fanout)
        rec["child_shape"] = shape
        t0 = time.time()
        ids = job.submit_list(h, specs)
        t1 = time.time()
        if args.sample:
            held, ids = ids[:-1], ids[-1:]
        results = job.wait_all(h, ids)
        t2 = time.time()
        if args.sample and held:
            rec["placeholders"] = len(held)
            job.cancel(h, held)
        rec["children"] = [{"path": f"{args.path}.{i}", "events": first_times(job.eventlog(h, j))}
                           for i, j in enumerate(ids)]
    counts: dict = {}
    for r in results:
        counts[r.result] = counts.get(r.result, 0) + 1
    rec.update({"t_submit0": t0, "t_submit1": t1, "t_done": t2, "results": counts,
                "broker_cpu_s": cpu_seconds(info["pid"]), "driver_cpu_s": cpu_seconds(os.getpid()),
                "t_end": time.time()})
    with open(os.path.join(args.out, f"{args.path}.json"), "w") as f:
        json.dump(rec, f)


if __name__ == "__main__":
    main()
