"""Compare the jobspecs of ``flux submit/run/batch/alloc --dry-run`` and strato's.

Why this exists: strato's submission commands promise a Flux user the same options
with the same meaning; the proof is the jobspec each side prints for the same
command line. This module generates realistic option sets (what a Flux user
types), runs both tools on them, normalises what legitimately differs, and
reports the mismatches. It is also the recorder of the golden files in
``tests/data/flux-dry-run/`` (Flux's outputs, so CI without Flux still checks
parity) and a command-line tool::

    python tests/conformance/flux_cli_compare.py --count 200 [--flux PATH]
    python tests/conformance/flux_cli_compare.py --record tests/data/flux-dry-run/cases.jsonl

Both tools run with the same small environment (`BASE_ENV`) in the same
directory (`RUN_DIR`). What the comparison normalises, and why:

- ``environment``: variables the ``flux`` front end adds to its own environment
  (``FLUX_*``, its PATH/PYTHONPATH/LUA_* changes, found by `flux_injected`) are
  dropped on both sides; everything else must be equal.
- ``shell.options.rlimit``: a propagated limit equal to the running process's
  own soft limit becomes ``"current"`` (the machine's limits differ between the
  recording and CI); a limit the command line sets (``--rlimit=core=0``) and any
  other value must be equal.
- ``begin-time`` dependencies: the absolute time becomes its offset from the time
  of the run, in whole minutes (the two runs start a moment apart).
- batch and alloc: the child instance is Flux's ``flux broker`` but strato's
  ``strato start``, one broker per node in Flux but one per instance in strato, so
  the task's command keeps only what follows the broker's own options (the
  script and its arguments, or the user's command), the task count is dropped,
  Flux's broker-only shell options (``per-resource``, ``mpi``, ``exit-timeout``)
  are dropped, and the default output file ``flux-{{id}}.out`` reads as
  ``strato-{{id}}.out``; a ``--`` Flux's alloc keeps before the command is
  dropped, and strato's default name for an alloc job (its command's name, or
  ``alloc`` without one, where Flux sets none) is dropped. ``alloc --bg``: Flux's
  ``pty.capture`` shell option is dropped (strato runs no job on a pty; the output
  is kept as always), and so is the broker option that starts no initial program (Flux's
  ``-Sbroker.rc2_none=1``, strato's ``--no-program``).

The generator leaves out what strato refuses on purpose (docs/guide/jobs.md,
"Differences from Flux"): counts of 0, ranges in shapes, ``run --input=IDSET``.
A set that both tools refuse is a match (the messages differ in wording); one
refused by one tool only is a mismatch.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

RUN_DIR = "/"
BASE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/nonexistent", "LANG": "C.UTF-8",
            "TV_A": "alpha", "TV_B": "beta", "TV_PATHS": "/opt/a:/opt/b", "OTHER": "x"}
_BROKER_OPTIONS = ("per-resource", "mpi", "exit-timeout")


# -- generating option sets ------------------------------------------------------------------
def _values(rng: random.Random) -> dict:
    """One realistic value generator per option (a Flux user's habits)."""
    pick = rng.choice
    return {
        "-t": lambda: ["-t", pick(["30", "5", "1.5", "0", "30s", "2h", "10m", "1d", "90s",
                                   "inf", "-5", "abc"])],
        "-q": lambda: [pick(["-q", "--queue"]), pick(["batch", "debug"])],
        "-B": lambda: pick([["-B", "physics"], ["--bank=chem"]]),
        "--job-name": lambda: ["--job-name=" + pick(['sim', 'my job', 'run-1'])],
        "--cwd": lambda: ["--cwd=" + pick(['/tmp', '/'])],
        "--urgency": lambda: ["--urgency=" + pick(['hold', 'expedite', '0', '31', '20'])],
        "--env": lambda: ["--env=" + pick(['TV_C=gamma', '-TV_*', 'TV_D=$TV_A', 'TV_B',
                                         'TV_E=${TV_B}x', 'TV_*', '-OTHER',
                                         'TV_F={{rank}}', 'TV_P=/x:$TV_PATHS', '/^TV_A/',
                                         'TV_G=$NOPE'])],
        "--env-remove": lambda: ["--env-remove=" + pick(['TV_*', '*', 'OTHER', '/^TV_[AB]$/'])],
        "--rlimit": lambda: ["--rlimit=" + pick(['core=0', '-*', '-*,core', 'nofile=1024',
                                                'stack=unlimited', 'memlock', 'bogus=1',
                                                '-core', 'cpu=60'])],
        "-o": lambda: [pick(["-o", "--setopt"]),
                       pick(["verbose", "verbose=2", "pty", "cpu-affinity=per-task", "mpi=none",
                             'foo={"a":1}', "gpu-affinity=off", "exit-timeout=30"])],
        "-S": lambda: [pick(["-S", "--setattr"]),
                       pick(["foo", "foo=bar", "user.x=1", ".user.y=2", "system.z=q",
                             "duration=60", "exec.test.run_duration=1s", "user.l=[1,2]",
                             "queue=other"])],
        "--add-file": lambda: ["--add-file=" + pick(['notes=hello\\nworld\\n',
                                                   'run.sh:0755=#!/bin/sh\\ntrue\\n',
                                                   'a=x\\n'])],
        "--dependency": lambda: ["--dependency=" + pick(['afterok:ƒ2', 'afterany:1234',
                                                        'singleton', 'afternotok:ƒ4',
                                                        'afterok:123?foo=bar'])],
        "--begin-time": lambda: ["--begin-time=" + pick(['+1h', '+30m', '+2d'])],
        "--requires": lambda: ["--requires=" + pick(['foo', 'host:node[0-3]', 'rank:0-1',
                                                    'foo and not bar', '-baz', 'foo|bar',
                                                    'a,b', 'hosts:n1 or rank:3'])],
        "--input": lambda: ["--input=" + pick(['in.txt', '0', 'all', '0-1'])],
        "--output": lambda: ["--output=" + pick(['out.{{id}}', 'none', 'kvs', 'job.out'])],
        "--error": lambda: ["--error=" + pick(['err.{{id}}', 'job.err'])],
        "-l": lambda: [pick(["-l", "--label-io"])],
        "-u": lambda: [pick(["-u", "--unbuffered"])],
        "--signal": lambda: ["--signal=" + pick(['USR1', '@30s', 'TERM@2m', 'SIGINT',
                                                '15@1m', '@5', 'BOGUS'])],
        "--flags": lambda: ["--flags=" + pick(['waitable', 'debug', 'waitable,debug'])],
        "--quiet": lambda: ["--quiet"],
        "-v": lambda: ["-v"],
        "--resources-shape": lambda: ["--resources-shape=" + pick([
            "node=2/slot/core=4", "slot=4/core", "node{x}/slot=2/[core=2;gpu]",
            "node=2{x}/slot=1/core=4"])],
    }


def _resources(rng: random.Random, kind: str) -> list[str]:
    """A resource request: per-task, per-resource (submit/run) or slots (batch/alloc)."""
    pick = rng.choice
    args: list[str] = []
    mode = pick(["task", "task", "task", "resource"]) if kind in ("submit", "run") else "task"
    if mode == "task":
        if rng.random() < 0.7 or kind in ("batch", "alloc"):
            args += [pick(["-n", "--ntasks="]) if kind not in ("batch", "alloc")
                     else pick(["-n", "--nslots="]), str(pick([1, 2, 4, 8, 16]))]
        if rng.random() < 0.35:
            args += ["-N", str(pick([1, 2, 4]))]
        if rng.random() < 0.3:
            args += ["-c", str(pick([1, 2, 4]))]
        if rng.random() < 0.15:
            args += ["-g", str(pick([0, 1, 2]))]
        if rng.random() < 0.1:
            args += ["-x"]
    else:
        if rng.random() < 0.6:
            args += ["-N", str(pick([1, 2, 4]))]
        if rng.random() < 0.5:
            args += ["--cores=" + str(pick([2, 4, 8]))]
        extra = pick(["--tasks-per-node", "--tasks-per-core", "--gpus-per-node", None])
        if extra:
            args += [f"{extra}={pick([1, 2])}"]
        if rng.random() < 0.1:
            args += ["-n", "2"]  # a per-task option too: both must refuse
        if rng.random() < 0.1:
            args += ["-x"]
    return [a for a in args if a]


def _join(args: list[str]) -> list[str]:
    """Options ending in '=' take the next word glued on (``--ntasks=4``)."""
    out: list[str] = []
    for a in args:
        if out and out[-1].endswith("="):
            out[-1] += a
        else:
            out.append(a)
    return out


def generate(count: int, seed: int = 12, kinds: tuple[str, ...] = ("submit", "run",
                                                                      "batch", "alloc")):
    """`count` cases ``{"kind", "args"}``: realistic option sets and a command."""
    rng = random.Random(seed)
    values = _values(rng)
    batch_ok = ("-t", "-q", "-B", "--job-name", "--cwd", "--urgency", "--env", "--env-remove",
                "--rlimit", "-o", "-S", "--add-file", "--dependency", "--begin-time",
                "--requires", "--output", "--error", "-u", "--signal", "--flags", "--quiet")
    cases = []
    for _ in range(count):
        kind = rng.choice(kinds)
        names = list(values) if kind in ("submit", "run") else list(batch_ok)
        args = _resources(rng, kind)
        for name in rng.sample(names, rng.choice([0, 1, 1, 2, 2, 3, 4])):
            args += values[name]()
        if rng.random() < 0.15:
            extra = kind in ("submit", "run") and rng.random() < 0.5
            maps = ["block", "cyclic", "cyclic:2", "manual:[[0,1,2,1]]"]
            args += ["--taskmap=" + rng.choice(maps)] if extra else []
        args = _join(args)
        if kind == "run":  # input for some tasks (an idset) is a known difference
            args = ["--input=in.txt" if a.startswith("--input=") else a for a in args]
        if kind == "batch":
            args += ["--wrap", rng.choice(["hostname", "echo hi"])]
        elif kind == "alloc" and rng.random() < 0.25:  # started in the background
            args += ["--bg", *rng.choice([[], ["hostname"], ["sh", "-c", "echo $TV_A"]])]
        else:
            args += rng.choice([["hostname"], ["sh", "-c", "echo $TV_A"], ["--", "true"],
                                ["myapp", "--in", "x.dat"]])
        cases.append({"kind": kind, "args": args})
    return cases


# -- running ---------------------------------------------------------------------------------
def run_flux(flux: str, kind: str, args: list[str]) -> dict:
    """``flux KIND --dry-run ARGS`` as ``{"jobspec": ...}`` or ``{"error": ...}``."""
    res = subprocess.run([flux, kind, "--dry-run", *args], env=BASE_ENV, cwd=RUN_DIR,
                         capture_output=True, text=True, timeout=60, check=False)
    return _result(res.returncode, res.stdout, res.stderr)


def run_strato(kind: str, args: list[str]) -> dict:
    """``strato KIND --dry-run ARGS`` in this process (with `BASE_ENV` as the
    environment and `RUN_DIR` as the directory, restored afterwards)."""
    from strato.cli.main import main

    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    out, err = io.StringIO(), io.StringIO()
    os.environ.clear()
    os.environ.update(BASE_ENV)
    os.chdir(RUN_DIR)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main([kind, "--dry-run", *args])
                rc = 0
            except SystemExit as exc:
                rc = exc.code if isinstance(exc.code, int) else 1
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)
    return _result(rc, out.getvalue(), err.getvalue())


def _result(rc: int, stdout: str, stderr: str) -> dict:
    if rc == 0:
        try:
            return {"jobspec": json.loads(stdout), "when": time.time()}
        except ValueError:
            return {"error": f"not JSON: {stdout[:200]}"}
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    return {"error": lines[-1] if lines else f"exit {rc}"}


def flux_injected(flux: str) -> list[str]:
    """The variables the flux front end adds to or changes in the environment."""
    got = run_flux(flux, "submit", ["true"])["jobspec"]["attributes"]["system"]["environment"]
    return sorted(k for k, v in got.items() if BASE_ENV.get(k) != v)


# -- normalising and comparing ---------------------------------------------------------------
def explicit_rlimits(args: list[str]) -> set[str]:
    """The limits a command line sets to a value (``--rlimit=core=0``): those are
    compared as they are, the propagated ones as "current"."""
    rules = ",".join(a.split("=", 1)[1] for a in args if a.startswith("--rlimit="))
    return {r.split("=")[0].lower() for r in rules.split(",") if "=" in r}


def normalise(result: dict, kind: str, injected: list[str], side: str,
              args: list[str] = ()) -> dict:
    """The result with only what legitimately differs made equal (module docstring)."""
    if "jobspec" not in result:
        return {"error": result.get("error", True)}
    js = json.loads(json.dumps(result["jobspec"]))
    system = js.get("attributes", {}).get("system", {})
    env = system.get("environment")
    if isinstance(env, dict):
        for key in injected:
            env.pop(key, None)
    options = system.get("shell", {}).get("options", {})
    limits = options.get("rlimit")
    if isinstance(limits, dict):
        given = explicit_rlimits(args)
        for name, value in limits.items():
            res = getattr(resource, f"RLIMIT_{name.upper()}", None)
            if name not in given and res is not None and value == resource.getrlimit(res)[0]:
                limits[name] = "current"
    for dep in system.get("dependencies") or []:
        if dep.get("scheme") == "begin-time":
            try:
                offset = float(dep["value"]) - result.get("when", time.time())
                dep["value"] = f"now{round(offset / 60):+d}m"
            except ValueError:
                pass
    if kind in ("batch", "alloc"):
        task = js["tasks"][0]
        task.pop("count", None)
        cmd = task["command"]
        if kind == "batch":
            cut = next((i for i, a in enumerate(cmd) if a == "{{tmpdir}}/script"), 0)
        else:  # after `flux broker` / `strato start` and the broker's own options
            cut = next((i + 1 for i, a in enumerate(cmd) if a in ("broker", "start")), 0)
            while cut < len(cmd) and cmd[cut].startswith("-") and cmd[cut] != "--":
                cut += 1
            cut += cmd[cut:cut + 1] == ["--"]
        task["command"] = cmd[cut:]
        job = system.get("job", {})
        if kind == "alloc" and side == "strato" and job.get("name") == (os.path.basename(
                task["command"][0]) if task["command"] else "alloc"):
            system.pop("job")  # strato names an alloc job after its command, or "alloc"
        for key in _BROKER_OPTIONS:
            options.pop(key, None)
        if kind == "alloc" and "--bg" in args:
            options.pop("pty", None)  # Flux captures a --bg instance's output on a pty
        out = options.get("output", {}).get("stdout", {})
        if out.get("path") in ("flux-{{id}}.out", "strato-{{id}}.out"):
            out["path"] = "{{default}}.out"
        if not options and "shell" in system:
            system["shell"].pop("options")
            if not system["shell"]:
                system.pop("shell")
    return {"jobspec": js}


def differences(a, b, path: str = "") -> list[str]:
    """Where two JSON values differ, as ``PATH: A != B`` lines."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b), key=str):
            if key not in a:
                out.append(f"{path}.{key}: missing in flux (strato {json.dumps(b[key])[:80]})")
            elif key not in b:
                out.append(f"{path}.{key}: missing in strato (flux {json.dumps(a[key])[:80]})")
            else:
                out += differences(a[key], b[key], f"{path}.{key}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True))
                for d in differences(x, y, f"{path}[{i}]")]
    if a != b or type(a) is bool is not type(b) is bool:
        return [f"{path}: flux {json.dumps(a)[:80]} != strato {json.dumps(b)[:80]}"]
    return []


def _verdict(result: dict) -> str:
    return f"refuses: {result['error']}" if "error" in result else "accepts"


def compare(case: dict, flux_result: dict, injected: list[str]) -> list[str]:
    """The differences between Flux's result for `case` and strato's (none: a match)."""
    kind = case["kind"]
    mine = run_strato(kind, case["args"])
    want = normalise(flux_result, kind, injected, "flux", case["args"])
    got = normalise(mine, kind, injected, "strato", case["args"])
    if "error" in want or "error" in got:
        if "error" in want and "error" in got:
            return []
        return [f"flux {_verdict(flux_result)}; strato {_verdict(mine)}"]
    return differences(want["jobspec"], got["jobspec"])


def record(flux: str, cases: list[dict], path: Path) -> None:
    """Write Flux's (normalised) results for `cases` as JSON lines, with the
    environment variables it injected, so the comparison can be replayed without it."""
    injected = flux_injected(flux)
    with open(path, "w") as f:
        f.write(json.dumps({"injected": injected, "base_env": BASE_ENV, "run_dir": RUN_DIR,
                            "flux": subprocess.run([flux, "version"], capture_output=True,
                                                   text=True, check=False).stdout.split("\n")[0]
                            }) + "\n")
        for case in cases:
            res = run_flux(flux, case["kind"], case["args"])
            norm = normalise(res, case["kind"], injected, "flux", case["args"])
            if "error" in res:
                norm["error"] = res["error"]
            f.write(json.dumps({**case, "flux": norm}, ensure_ascii=False) + "\n")


def replay(path: Path) -> tuple[int, list[tuple[dict, list[str]]]]:
    """Compare strato against recorded Flux results; (cases, mismatches)."""
    lines = path.read_text().splitlines()
    header = json.loads(lines[0])
    bad = []
    for line in lines[1:]:
        case = json.loads(line)
        want = case["flux"]
        mine = normalise(run_strato(case["kind"], case["args"]), case["kind"],
                         header["injected"], "strato", case["args"])
        if "error" in want or "error" in mine:
            diffs = [] if ("error" in want) == ("error" in mine) else [
                f"flux {_verdict(want)}; strato {_verdict(mine)}"]
        else:
            diffs = differences(want["jobspec"], mine["jobspec"])
        if diffs:
            bad.append((case, diffs))
    return len(lines) - 1, bad


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--flux", default=os.environ.get("STRATO_FLUX", "flux"))
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--record", type=Path, help="write Flux's results to this JSON lines file")
    ap.add_argument("--replay", type=Path, help="compare strato with a recorded file")
    ap.add_argument("-v", "--verbose", action="store_true")
    opts = ap.parse_args()
    if opts.replay:
        total, bad = replay(opts.replay)
    else:
        cases = generate(opts.count, opts.seed)
        if opts.record:
            record(opts.flux, cases, opts.record)
            print(f"recorded {len(cases)} cases in {opts.record}")
            return 0
        injected = flux_injected(opts.flux)
        bad = []
        for case in cases:
            diffs = compare(case, run_flux(opts.flux, case["kind"], case["args"]), injected)
            if diffs:
                bad.append((case, diffs))
        total = len(cases)
    for case, diffs in bad if opts.verbose else []:
        print(case["kind"], " ".join(case["args"]))
        for d in diffs:
            print("   ", d)
    print(f"{len(bad)}/{total} option sets differ ({100 * len(bad) / max(total, 1):.1f}%)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
