"""Load generator and checker (issue 13, "Load"): many clients submit, cancel and wait
for simulated jobs at once; a checker then compares what every client was told with
what the instance recorded, optionally across a restart of the instance in the
middle of the run (after a SIGKILL, or after a clean ``strato shutdown``).

The pieces, each usable on its own (tests/integration/test_load.py runs them small,
tests/bench/bench_load.py at full size):

- `LoadInstance`: ``strato start --exit-with`` on a fixed rundir and statedir over
  virtual nodes with simulated exec; it can be SIGKILLed and started again on the
  same rundir, so its URI stays the same and clients reconnect to it.
- the clients (``python load_check.py client ...``, one process each): half use the
  Python API (`strato.job.submit`, ``submit_many``, ``submit_list``, ``cancel``,
  ``wait_stream``), half the CLI (``strato submit --cc``, ``strato cancel``,
  ``strato job status``, ``strato jobs --name``). Each submits its jobs in batches of
  mixed sizes and shapes, cancels a random subset mid-way, waits for every job, and
  writes down everything it was told in a JSON record.
- `check`: reads the instance's record (every job's summary and eventlog) and
  returns the list of broken promises (empty: all kept), with counts.

What a client cannot know is recorded as such. A submit whose answer was lost when
the instance died is ``unknown``: every job of a batch carries the batch's name, so
the client asks the restarted instance which jobs of that name exist (never
resubmitting), and the checker accepts none or the whole batch (a submit is all or
nothing) but never a part of it, nor more. A cancel whose answer was lost may or may
not have happened.

The rules the checker applies (a job is "told" when a client got its id back):

1. every told id was told once, to one client, and exists in the instance;
2. the jobs named after a batch are exactly the ids told for it; for an ``unknown``
   batch none or all of its size, and what the client resolved it to; for a batch
   refused because the instance was shutting down, none;
3. the instance has no other job (no duplicate, no ghost);
4. every job is INACTIVE and its eventlog is complete and well formed: it starts with
   ``submit``, ends with its only ``clean``, timestamps never go back, replaying it
   through the job manager's own event-to-state function (`apply_event`) visits the
   RFC 21 states in order and ends INACTIVE, and the result the instance shows is
   the one the eventlog implies; a job that got resources either finished (``finish``,
   ``release``, ``free``, in that order) or was ended by a ``restart`` exception
   (it was running when the instance was killed, and running jobs do not survive a
   restart today);
5. the result a client was told (``wait``; a CLI client's ``job status`` exit code
   per batch) is the one recorded;
6. a job whose cancel was acknowledged has a ``cancel`` exception in its eventlog and
   ended CANCELED, unless an earlier exception had already ended it; a job whose
   cancel was refused as inactive was inactive by then (its ``clean`` is older than
   the refusal) and has no cancel exception;
7. at the end the scheduler holds nothing: every core and gpu is free, nothing is
   pending or running, and the job counts agree with the records.

Jobs that were running at a kill (``alloc`` before the kill, ``clean`` after the
restart) are counted by how they ended: finished normally after the restart, or
ended with an exception (today: type ``restart``). Both are accepted; lost never.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

PYTHON = sys.executable
_BIN = Path(PYTHON).parent
STRATO = [str(_BIN / "strato")] if (_BIN / "strato").exists() else [PYTHON, "-m", "strato"]
HERE = Path(__file__).resolve()

#: 64 virtual nodes of 8 cores and 2 gpus, simulated exec: room for jobs of every shape
CONFIG_TOML = """\
[exec]
backend = "sim"
[[resource.config]]
hosts = "node[0-63]"
cores = "0-7"
gpus = "0-1"
"""

#: job shapes: (name, from_command keyword arguments, the same as submit options)
SHAPES = [
    ("1core", {"num_tasks": 1}, ["-n1"]),
    ("4x2cores", {"num_tasks": 4, "cores_per_task": 2}, ["-n4", "-c2"]),
    ("2xgpu", {"num_tasks": 2, "gpus_per_task": 1}, ["-n2", "-g1"]),
    ("2nodes", {"num_tasks": 4, "cores_per_task": 2, "num_nodes": 2}, ["-N2", "-n4", "-c2"]),
    ("4nodes-excl", {"num_tasks": 4, "num_nodes": 4, "exclusive": True}, ["-N4", "-n4", "-x"]),
    ("16tasks", {"num_tasks": 16}, ["-n16"]),
]
LOST = ("no instance", "has stopped", "not running", "restarted")


def run_duration(rng: random.Random) -> str:
    """Mostly instant jobs, some short, a few long enough to be caught running."""
    x = rng.random()
    if x < 0.55:
        return "0s"
    if x < 0.89:
        return f"{rng.uniform(0.001, 0.05):.3f}s"
    if x < 0.99:
        return f"{rng.uniform(0.1, 0.5):.3f}s"
    return f"{rng.uniform(1.0, 3.0):.3f}s"


def batch_sizes(rng: random.Random, total: int, biggest: int, cli: bool = False) -> list[int]:
    """Split `total` jobs into batches of mixed sizes: singles, tens, hundreds (a CLI
    client, which pays a process per call, sends fewer small ones)."""
    sizes = []
    while total > 0:
        x = rng.random()
        if cli:
            n = 1 if x < 0.1 else rng.randint(biggest, 3 * biggest)
        else:
            n = 1 if x < 0.2 else rng.randint(2, 20) if x < 0.6 else rng.randint(21, biggest)
        n = min(n, total)
        sizes.append(n)
        total -= n
    return sizes


# -- the instance ------------------------------------------------------------------------

class LoadInstance:
    """An instance for a load run, started with ``--exit-with`` this process, so it
    needs no initial program and can be SIGKILLed and started again as it was."""

    def __init__(self, tmp: Path, statedir: bool = True) -> None:
        self.tmp = Path(tmp)
        self.tmp.mkdir(parents=True, exist_ok=True)
        # socket paths are limited to ~107 bytes: keep the rundir short
        self.rundir = Path(tempfile.mkdtemp(prefix="st-load-"))
        self.statedir = self.tmp / "state" if statedir else None
        self.config = self.tmp / "config.toml"
        self.config.write_text(CONFIG_TOML)
        self.uri = f"local://{self.rundir}/local"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self, timeout: float = 900.0) -> float:
        """Start the broker and wait until it answers; returns the seconds it took."""
        from strato.core.errors import StratoError
        from strato.handle import Handle

        cmd = [*STRATO, "start", "--config", str(self.config), "--rundir", str(self.rundir),
               "--exit-with", str(os.getpid())]
        if self.statedir is not None:
            cmd += ["--statedir", str(self.statedir)]
        env = {k: v for k, v in os.environ.items() if k != "STRATO_URI"}
        log = open(self.tmp / f"broker-{self.starts}.log", "w")  # noqa: SIM115 (kept by Popen)
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                     cwd=self.tmp)
        log.close()
        self.starts += 1
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"broker exited with {self.proc.returncode}: "
                                   f"{(self.tmp / f'broker-{self.starts - 1}.log').read_text()}")
            try:
                with Handle(self.uri) as h:
                    h.rpc("broker.ping")
                return time.perf_counter() - t0
            except StratoError:
                if time.monotonic() > deadline:
                    raise RuntimeError("broker did not come up") from None
                time.sleep(0.02)

    def handle(self):
        from strato.handle import Handle

        return Handle(self.uri)

    def pid(self) -> int:
        """The broker's pid, as the broker itself reports it."""
        with self.handle() as h:
            return h.rpc("broker.info")["pid"]

    def kill(self, pid: int | None = None) -> int:
        """SIGKILL the broker (`pid`: as `pid` said earlier, when it may not answer)."""
        pid = pid or self.pid()
        os.kill(pid, signal.SIGKILL)
        self.proc.wait()
        return pid

    def stop(self, timeout: float = 60.0) -> int | None:
        """Shut down cleanly (``broker.shutdown``); SIGKILL if it hangs."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        try:
            with self.handle() as h:
                h.rpc("broker.shutdown", {"exit": 0})
            return self.proc.wait(timeout=timeout)
        except Exception:
            self.proc.kill()
            return self.proc.wait()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.rundir, ignore_errors=True)


# -- the clients -------------------------------------------------------------------------

def _lost(exc: BaseException) -> bool:
    """True if `exc` says the instance went away (not that it refused something)."""
    from strato.core.errors import NoInstanceError

    return isinstance(exc, NoInstanceError)


class Reconnecting:
    """A handle that is made again when its instance went away, for up to `patience`
    seconds of the instance being gone."""

    def __init__(self, uri: str, patience: float = 120.0) -> None:
        self.uri = uri
        self.patience = patience
        self.h = None
        self.reconnects = 0

    def get(self):
        from strato.handle import Handle

        if self.h is not None:
            return self.h
        deadline = time.monotonic() + self.patience
        while True:
            try:
                self.h = Handle(self.uri)
                return self.h
            except Exception as exc:
                if not _lost(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def lost(self) -> None:
        if self.h is not None:
            self.h.close()
            self.h = None
        self.reconnects += 1


@dataclass
class ClientRecord:
    """What one client did and was told (written as JSON by the client process)."""

    client: str
    kind: str
    batches: dict = field(default_factory=dict)  # name -> {size, ids | null, resolved}
    cancels: list = field(default_factory=list)  # {ids, t_answer, outcome, refused}
    results: dict = field(default_factory=dict)  # id -> [result, status] (api clients)
    status_rc: list = field(default_factory=list)  # [[batch names], job status exit code]
    errors: list = field(default_factory=list)  # what went wrong that should not have
    reconnects: int = 0
    t_start: float = 0.0
    t_submitted: float = 0.0
    t_end: float = 0.0


def _cancel_candidates(rng: random.Random, told: list[int], tried: set[int]) -> list[int]:
    pool = [i for i in told[-200:] if i not in tried]  # recent ones: some still run
    picked = rng.sample(pool, min(len(pool), rng.randint(1, 8)))
    tried.update(picked)
    return picked


def _refused_ids(message: str) -> list[int]:
    """The jobs a cancel refused, from its one-line error ("job ƒX is inactive; ...")."""
    from strato.core import ids

    return [ids.parse(m) for m in re.findall(r"job (\S+) is inactive", message)]


def api_client(name: str, uri: str, njobs: int, seed: int, biggest: int) -> ClientRecord:
    """Submit `njobs` jobs through the Python API (see module docstring)."""
    import strato
    from strato import job
    from strato.core.errors import RPCError

    rng = random.Random(seed)
    rec = ClientRecord(name, "api", t_start=time.time())
    conn = Reconnecting(uri)
    told: list[int] = []
    tried: set[int] = set()
    for b, size in enumerate(batch_sizes(rng, njobs, biggest)):
        bname = f"{name}-b{b}"
        specs = []
        for _ in range(size if rng.random() < 0.5 else 1):
            _, kwargs, _ = rng.choice(SHAPES)
            js = strato.JobspecV1.from_command(["true"], environment={}, name=bname, **kwargs)
            js.setattr("system.exec.test.run_duration", run_duration(rng))
            specs.append(js)
        rec.batches[bname] = {"size": size, "ids": None, "resolved": None}
        try:
            h = conn.get()
            if size == 1:
                got = [job.submit(h, specs[0])]
            elif len(specs) == 1:
                got = job.submit_many(h, specs[0], size)
            else:
                got = job.submit_list(h, specs)
        except RPCError as exc:
            if "shutting down" not in str(exc):
                rec.errors.append(f"submit {bname}: {exc}")
                raise
            rec.batches[bname].update(ids=[], refused=str(exc))  # told: not accepted
            continue
        except Exception as exc:
            if not _lost(exc):
                rec.errors.append(f"submit {bname}: {exc}")
                raise
            conn.lost()  # unknown: resolved by name below
            continue
        rec.batches[bname]["ids"] = got
        told.extend(got)
        if rng.random() < 0.3:
            picked = _cancel_candidates(rng, told, tried)
            entry = {"ids": picked, "outcome": "unknown", "refused": []}
            rec.cancels.append(entry)
            try:
                job.cancel(conn.get(), picked, note=f"load {name}")
                entry["outcome"] = "ok"
            except RPCError as exc:
                entry["outcome"], entry["refused"] = "refused", _refused_ids(str(exc))
                if len(entry["refused"]) != str(exc).count(";") + 1:
                    rec.errors.append(f"cancel: unexpected error: {exc}")
            except Exception as exc:
                if not _lost(exc):
                    raise
                conn.lost()
            entry["t_answer"] = time.time()
    rec.t_submitted = time.time()
    _resolve_unknown_api(rec, conn)
    waiting = {i for b in rec.batches.values() for i in (b["ids"] or b["resolved"] or [])}
    while waiting:
        try:
            for batch in job.wait_stream(conn.get(), sorted(waiting)):
                for r in batch:
                    rec.results[str(r.id)] = [r.result, r.status]
                    waiting.discard(r.id)
        except RPCError as exc:  # an id the instance does not know: a lost job
            rec.errors.append(f"wait: {exc}")
            break
        except Exception as exc:
            if not _lost(exc):
                raise
            conn.lost()
    rec.reconnects = conn.reconnects
    rec.t_end = time.time()
    return rec


def _resolve_unknown_api(rec: ClientRecord, conn: Reconnecting) -> None:
    from strato import job
    from strato.core.states import ALL

    for bname, b in rec.batches.items():
        while b["ids"] is None and b["resolved"] is None:
            try:
                b["resolved"] = sorted(r["id"] for r in job.list_jobs(conn.get(), states=ALL,
                                                                      name=bname))
            except Exception as exc:
                if not _lost(exc):
                    raise
                conn.lost()


def _cli(args: list[str], uri: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, STRATO_URI=uri)
    return subprocess.run([*STRATO, *args], env=env, capture_output=True, text=True,
                          timeout=600)


def cli_client(name: str, uri: str, njobs: int, seed: int, biggest: int) -> ClientRecord:
    """Submit `njobs` jobs with the CLI (see module docstring)."""
    from strato.core import ids

    rng = random.Random(seed)
    rec = ClientRecord(name, "cli", t_start=time.time())
    told: list[int] = []
    tried: set[int] = set()
    reconnects = 0
    for b, size in enumerate(batch_sizes(rng, njobs, biggest, cli=True)):
        bname = f"{name}-b{b}"
        _, _, opts = rng.choice(SHAPES)
        args = ["submit", f"--job-name={bname}", "--env=-*", *opts,
                f"--setattr=exec.test.run_duration={run_duration(rng)}"]
        if size > 1:
            args.append(f"--cc=1-{size}")
        rec.batches[bname] = {"size": size, "ids": None, "resolved": None}
        res = _cli([*args, "true"], uri)
        if res.returncode != 0 and "shutting down" in res.stderr:
            rec.batches[bname].update(ids=[], refused=res.stderr.strip())
            continue
        if res.returncode != 0:
            if not any(w in res.stderr for w in LOST):
                rec.errors.append(f"submit {bname}: {res.stderr.strip()}")
                raise RuntimeError(res.stderr)
            reconnects += 1
            continue
        got = [ids.parse(line) for line in res.stdout.split()]
        rec.batches[bname]["ids"] = got
        told.extend(got)
        if rng.random() < 0.3:
            picked = _cancel_candidates(rng, told, tried)
            entry = {"ids": picked, "outcome": "unknown", "refused": []}
            rec.cancels.append(entry)
            res = _cli(["cancel", "-m", f"load {name}", *map(ids.f58, picked)], uri)
            entry["t_answer"] = time.time()
            if res.returncode == 0:
                entry["outcome"] = "ok"
            elif any(w in res.stderr for w in LOST):
                reconnects += 1
            else:
                entry["outcome"], entry["refused"] = "refused", _refused_ids(res.stderr)
                if not entry["refused"]:
                    rec.errors.append(f"cancel: unexpected error: {res.stderr.strip()}")
    rec.t_submitted = time.time()
    for bname, b in rec.batches.items():
        while b["ids"] is None and b["resolved"] is None:
            res = _cli(["jobs", "-a", "-n", f"--name={bname}", "-o", "{id}"], uri)
            if res.returncode == 0:
                b["resolved"] = sorted(ids.parse(x) for x in res.stdout.split())
            elif any(w in res.stderr for w in LOST):
                reconnects += 1
                time.sleep(0.1)
            else:
                rec.errors.append(f"jobs --name={bname}: {res.stderr.strip()}")
                break
    names = [n for n, b in rec.batches.items() if b["ids"] or b["resolved"]]
    for start in range(0, len(names), 3):  # one job status per three batches
        group = names[start:start + 3]
        members = [i for n in group for i in rec.batches[n]["ids"] or rec.batches[n]["resolved"]]
        while True:
            res = _cli(["job", "status", *map(ids.f58, members)], uri)
            if any(w in res.stderr for w in LOST):
                reconnects += 1
                time.sleep(0.1)
                continue
            if res.stderr:
                rec.errors.append(f"job status {group}: {res.stderr.strip()}")
            rec.status_rc.append([group, res.returncode])
            break
    rec.reconnects = reconnects
    rec.t_end = time.time()
    return rec


def client_main(argv: list[str]) -> int:
    """``load_check.py client KIND NAME URI NJOBS SEED BIGGEST OUT``"""
    kind, name, uri, njobs, seed, biggest, out = argv
    fn = api_client if kind == "api" else cli_client
    rec = fn(name, uri, int(njobs), int(seed), int(biggest))
    Path(out).write_text(json.dumps(rec.__dict__))
    return 0


# -- the checker -------------------------------------------------------------------------

@dataclass
class Report:
    """What the checker found: broken promises (`failures`) and counts."""

    failures: list = field(default_factory=list)
    counts: dict = field(default_factory=dict)

    def fail(self, what: str) -> None:
        if len(self.failures) < 200:  # enough to see the pattern
            self.failures.append(what)
        self.counts["failures"] = self.counts.get("failures", 0) + 1

    def count(self, what: str, n: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + n


def read_instance(h) -> tuple[list[dict], dict[int, list]]:
    """Every job record of the instance and every job's eventlog (pipelined reads)."""
    from strato import job
    from strato.core.states import ALL

    records = job.list_jobs(h, states=ALL)
    eventlogs: dict[int, list] = {}
    ids = [r["id"] for r in records]
    for start in range(0, len(ids), 1000):
        chunk = ids[start:start + 1000]
        tags = [(i, h.send("job-list.info", {"id": i})) for i in chunk]
        for i, tag in tags:
            body, err, _ = h.recv(tag)
            if err is not None:
                raise RuntimeError(f"job-list.info {i}: {err}")
            eventlogs[i] = body["eventlog"]
    return records, eventlogs


def replay(jobid: int, eventlog: list[dict]) -> tuple[list[int], object]:
    """The states a job passes through by its eventlog, through the job manager's own
    `apply_event`, and the job object it leaves (its result, status, exception)."""
    from strato.core.jobmanager import Job, apply_event, result_of
    from strato.core.states import NEW

    job = Job(jobid, 0, 16, {}, 0, {})
    states = [NEW]
    for entry in eventlog:
        job.state = apply_event(job, entry)
        if job.state != states[-1]:
            states.append(job.state)
    job.result = result_of(job)
    return states, job


def returncode(result: str, status: int | None) -> int:
    """The exit code ``strato job status`` gives for one job (as strato.job.JobResult)."""
    if status is None:
        return 0 if result == "COMPLETED" else 1
    if status & 0x7F:
        return 128 + (status & 0x7F)
    return (status >> 8) & 0xFF


def check_eventlog(jobid: int, ev: list[dict], rec: dict, report: Report,
                   kills: list[tuple[float, float]]) -> None:
    """Rule 4 for one job (see module docstring)."""
    from strato.core import ids
    from strato.core.states import INACTIVE

    f58 = ids.f58(jobid)
    names = [e["name"] for e in ev]
    if not names or names[0] != "submit":
        report.fail(f"{f58}: eventlog does not start with submit: {names[:3]}")
        return
    if names[-1] != "clean" or names.count("clean") != 1:
        report.fail(f"{f58}: eventlog does not end with its only clean: {names[-3:]}")
        return
    stamps = [e["timestamp"] for e in ev]
    if any(b < a for a, b in zip(stamps, stamps[1:], strict=False)):
        report.fail(f"{f58}: eventlog timestamps go back")
    states, job = replay(jobid, ev)
    if states != sorted(states) or states[-1] != INACTIVE:
        report.fail(f"{f58}: states out of order or not INACTIVE: {states}")
    if rec["state"] != "INACTIVE":
        report.fail(f"{f58}: state {rec['state']} at the end")
    if (rec["result"], rec["waitstatus"]) != (job.result, job.status):
        report.fail(f"{f58}: instance shows {rec['result']}/{rec['waitstatus']}, its eventlog"
                    f" says {job.result}/{job.status}")
    for once in ("alloc", "start", "finish", "release", "free"):
        if names.count(once) > 1:
            report.fail(f"{f58}: {once} posted {names.count(once)} times")
    t_clean = ev[-1]["timestamp"]
    t_alloc = ev[names.index("alloc")]["timestamp"] if "alloc" in names else None
    if any(ev[0]["timestamp"] < t_kill < t_clean and (t_alloc is None or t_alloc > t_kill)
           for t_kill, _ in kills):
        report.count("pending at kill: recovered, " + ("ran after the restart" if t_alloc
                                                       else f"ended {job.result} unrun"))
    if t_alloc is None:
        if any(n in names for n in ("start", "finish", "release", "free")):
            report.fail(f"{f58}: ran without alloc: {names}")
        return
    if any(e["name"] == "exception" and (e.get("context") or {}).get("note")
           == "the instance is shutting down" for e in ev):
        report.count("running at stop: cancelled by the shutdown")
    restart = [e for e in ev if e["name"] == "exception"
               and (e.get("context") or {}).get("type") == "restart"]
    at_kill = any(t_alloc < t_kill and t_clean > t_kill for t_kill, _ in kills)
    if restart:
        if not at_kill:
            report.fail(f"{f58}: restart exception, but it was not running at a kill")
        report.count("running at kill: ended with restart exception")
        return
    if at_kill:
        report.count("running at kill: finished normally"
                     if job.result == "COMPLETED" else f"running at kill: ended {job.result}")
    order = [names.index(n) if n in names else -1 for n in ("alloc", "finish", "release",
                                                            "free")]
    if -1 in order or order != sorted(order):
        report.fail(f"{f58}: allocated but not alloc/finish/release/free in order: {names}")


def check(h, records: list[ClientRecord], kills: list[tuple[float, float]] = ()) -> Report:
    """Apply rules 1-7 (module docstring) to the instance behind `h`; `kills` holds
    (time of the SIGKILL, time the restarted instance answered) for each restart."""
    from strato.core import ids

    report = Report()
    jobs, eventlogs = read_instance(h)
    byid: dict[int, dict] = {}
    for r in jobs:
        if r["id"] in byid:
            report.fail(f"{ids.f58(r['id'])}: listed twice")
        byid[r["id"]] = r
    byname: dict[str, set[int]] = {}
    for r in jobs:
        byname.setdefault(r["name"], set()).add(r["id"])
    report.counts.update(instance_jobs=len(byid), clients=len(records))
    owner: dict[int, str] = {}  # id -> the batch it was told for
    accounted: set[int] = set()
    for c in records:
        for e in c.errors:
            report.fail(f"client {c.client}: {e}")
        for bname, b in c.batches.items():
            have = byname.get(bname, set())
            if b.get("refused"):  # refused while the instance was shutting down
                report.count("refused batches (shutting down)")
                if have:
                    report.fail(f"{bname}: refused ({b['refused']}), yet {len(have)} jobs")
            elif b["ids"] is not None:  # rules 1 and 2
                report.count("told")
                report.count("told jobs", len(b["ids"]))
                for i in b["ids"]:
                    if i in owner:
                        report.fail(f"{ids.f58(i)}: told to {owner[i]} and to {bname}")
                    owner[i] = bname
                    if i not in byid:
                        report.fail(f"{ids.f58(i)} ({bname}): told, but the instance lost it")
                if set(b["ids"]) != have or len(b["ids"]) != b["size"]:
                    report.fail(f"{bname}: told {len(b['ids'])} of {b['size']} ids, the "
                                f"instance has {len(have)} jobs of that name")
                accounted |= have
            else:
                report.count("unknown batches")
                if len(have) not in (0, b["size"]):
                    report.fail(f"{bname}: unknown submit of {b['size']} left {len(have)} jobs")
                if b["resolved"] is not None and set(b["resolved"]) != have:
                    report.fail(f"{bname}: client resolved it to {len(b['resolved'])} jobs,"
                                f" the instance has {len(have)}")
                report.count("unknown batches accepted" if have else "unknown batches absent")
                accounted |= have
    for i in set(byid) - accounted:  # rule 3
        report.fail(f"{ids.f58(i)} ({byid[i]['name']}): in the instance, told to nobody")
    for i, r in byid.items():  # rule 4
        check_eventlog(i, eventlogs[i], r, report, list(kills))
        report.count(f"result {r['result']}")
    for c in records:  # rule 5
        for sid, (result, status) in c.results.items():
            r = byid.get(int(sid))
            if r is not None and (r["result"], r["waitstatus"]) != (result, status):
                report.fail(f"{ids.f58(int(sid))}: wait told {result}/{status}, the instance"
                            f" has {r['result']}/{r['waitstatus']}")
            report.count("wait results checked")
        if c.kind == "api":
            expected = {i for b in c.batches.values() for i in (b["ids"] or b["resolved"] or [])}
            if set(map(int, c.results)) != expected:
                report.fail(f"client {c.client}: wait told {len(c.results)} results for "
                            f"{len(expected)} jobs")
        for group, rc in c.status_rc:
            members = [byid[i] for n in group for i in
                       (c.batches[n]["ids"] or c.batches[n]["resolved"]) if i in byid]
            want = max(returncode(r["result"], r["waitstatus"]) for r in members)
            if rc != want:
                report.fail(f"{group}: job status said {rc}, the instance's results say {want}")
            report.count("job status checked", len(members))
        for entry in c.cancels:  # rule 6
            for i in entry["ids"]:
                _check_cancel(i, entry, eventlogs.get(i), byid.get(i), report)
    _check_resources(h, report, len(byid))  # rule 7
    return report


def _check_cancel(jobid: int, entry: dict, ev: list | None, rec: dict | None,
                  report: Report) -> None:
    from strato.core import ids

    if ev is None or rec is None:
        return  # reported as lost already
    f58 = ids.f58(jobid)
    excs = [e for e in ev if e["name"] == "exception"
            and (e.get("context") or {}).get("severity") == 0]
    cancelled = [e for e in excs if e["context"]["type"] == "cancel"]
    outcome = entry["outcome"]
    refused = jobid in entry["refused"]
    if outcome == "unknown":
        report.count("cancels unknown")
        return
    if refused:
        report.count("cancels refused (inactive)")
        if cancelled:
            report.fail(f"{f58}: cancel refused, yet a cancel exception was posted")
        if ev[-1]["timestamp"] > entry["t_answer"]:
            report.fail(f"{f58}: cancel refused as inactive before the job was clean")
        return
    report.count("cancels acknowledged")
    if not cancelled:
        report.fail(f"{f58}: cancel acknowledged, no cancel exception in its eventlog")
    elif excs[0] is cancelled[0] and rec["result"] != "CANCELED":
        report.fail(f"{f58}: cancel acknowledged, ended {rec['result']}")
    elif excs[0] is not cancelled[0]:
        report.count("cancels after an earlier exception")


def _check_resources(h, report: Report, njobs: int) -> None:
    status = h.rpc("resource.status")
    alloc = status["allocated"]
    if alloc["ncores"] or alloc["ngpus"] or alloc["ranks"]:
        report.fail(f"resources still allocated at the end: {alloc}")
    stats = h.rpc("sched.stats")
    if stats["pending"] or stats["running"]:
        report.fail(f"scheduler still has jobs: {stats}")
    js = h.rpc("job-list.job-stats")
    if js["job_states"]["total"] != njobs or js["job_states"]["inactive"] != njobs:
        report.fail(f"job-stats disagree with the {njobs} records: {js['job_states']}")


def _summary(read: tuple[list[dict], dict[int, list]]) -> tuple:
    """What a restart must keep of every job: its state, result and whole eventlog."""
    records, eventlogs = read
    keep = ("id", "name", "state", "result", "waitstatus", "t_submit", "t_inactive")
    return sorted(tuple(r[k] for k in keep) for r in records), eventlogs


# -- a whole run ---------------------------------------------------------------------------

def start_clients(inst: LoadInstance, nclients: int, njobs: int, seed: int,
                  biggest: int) -> list[tuple[subprocess.Popen, Path]]:
    """Start `nclients` client processes, half API, half CLI."""
    procs = []
    for n in range(nclients):
        kind = "api" if n % 2 == 0 else "cli"
        out = inst.tmp / f"client-{n}.json"
        out.unlink(missing_ok=True)
        cmd = [PYTHON, str(HERE), "client", kind, f"{kind}{n}", inst.uri, str(njobs),
               str(seed * 1000 + n), str(biggest), str(out)]
        err = open(inst.tmp / f"client-{n}.err", "w")  # noqa: SIM115 (kept by Popen)
        procs.append((subprocess.Popen(cmd, stdout=err, stderr=subprocess.STDOUT), out))
        err.close()
    return procs


def submitted(inst: LoadInstance) -> int:
    """How many jobs the instance has (0 while it is down)."""
    try:
        with inst.handle() as h:
            return h.rpc("job-list.job-stats")["job_states"]["total"]
    except Exception:
        return 0


def run_load(tmp: Path, nclients: int = 10, njobs: int = 500, restart: str | None = None,
             seed: int = 1, biggest: int | None = None, timeout: float = 3600.0) -> dict:
    """One load run: start an instance, run the clients, wait for every job to end,
    check, and return the figures with the checker's `Report`. With `restart`, the
    instance is stopped once half the jobs are in and started again on its statedir:
    ``"kill"`` by SIGKILL, ``"stop"`` by ``strato shutdown`` (a clean stop)."""
    if restart not in (None, "kill", "stop"):
        raise ValueError(f"restart must be kill or stop, not {restart!r}")
    biggest = biggest or max(21, min(1000, njobs // 10))
    inst = LoadInstance(tmp)
    procs: list[tuple[subprocess.Popen, Path]] = []
    out: dict = {"clients": nclients, "jobs_per_client": njobs, "restart": restart,
                 "kills": [], "startup_s": inst.start()}
    try:
        t0 = time.perf_counter()
        procs = start_clients(inst, nclients, njobs, seed, biggest)
        deadline = time.monotonic() + timeout
        total = nclients * njobs
        if restart:
            while submitted(inst) < total // 2:
                if all(p.poll() is not None for p, _ in procs) or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            out["killed_at_jobs"] = submitted(inst)
            if restart == "kill":
                inst.kill()
            else:
                inst.stop()
            t_kill = time.time()  # the broker is gone: every event it posted is older
            out["restart_s"] = inst.start()
            out["kills"].append((t_kill, time.time()))
        for p, _ in procs:
            p.wait(timeout=max(1.0, deadline - time.monotonic()))
        out["clients_s"] = time.perf_counter() - t0
        with inst.handle() as h:
            h.rpc("queue.wait", {"what": "empty"})
            out["all_done_s"] = time.perf_counter() - t0
            records, bad = [], []
            for n, (p, path) in enumerate(procs):
                if p.returncode != 0 or not path.exists():
                    bad.append(f"client {n} exited {p.returncode}: "
                               f"{(inst.tmp / f'client-{n}.err').read_text()[-2000:]}")
                    continue
                records.append(ClientRecord(**json.loads(path.read_text())))
            t1 = time.perf_counter()
            report = check(h, records, out["kills"])
            out["check_s"] = time.perf_counter() - t1
        for b in bad:
            report.fail(b)
        if restart:  # the statedir holds what the live instance showed
            t1 = time.perf_counter()
            with inst.handle() as h:
                before = read_instance(h)
            inst.stop()
            out["clean_restart_s"] = inst.start()
            with inst.handle() as h:
                after = read_instance(h)
            if _summary(before) != _summary(after):
                report.fail("after a clean restart the instance shows other jobs or eventlogs")
            out["recheck_s"] = time.perf_counter() - t1
        out["reconnects"] = sum(r.reconnects for r in records)
        out["report"] = report
        return out
    finally:
        for p, _ in procs:  # a run that failed must not leave its clients behind
            if p.poll() is None:
                p.kill()
                p.wait()
        inst.cleanup()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "client":
        sys.exit(client_main(sys.argv[2:]))
    sys.exit("usage: load_check.py client ... (run tests/bench/bench_load.py for a load run)")
