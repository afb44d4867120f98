"""Seeing the tree: ``strato pstree``, the INFO of instance jobs in ``strato jobs``,
``strato jobs -R``, and the Python walk behind them, over real child instances.

The tree (built once for the module; every test here only reads it):

    .                        a parent of 16 virtual nodes x 4 cores, exec-sim
    ├── side                 `strato alloc -N2`: a child running inner.sh
    │   ├── done:CD          (inactive: shown with -a)
    │   └── 3*[leaf]
    ├── 2*[app]              plain jobs, simulated for an hour
    └── outer                `strato batch -N4` running outer.sh
        ├── inner            `strato batch -N1` from inside outer: a grandchild
        │   ├── done:CD
        │   └── 3*[leaf]
        └── work             -n2

The instance jobs really run (``strato start`` processes) while the leaves are
simulated. Each script says it is ready on a FIFO once its jobs run, then
blocks reading another FIFO, the gate, which the teardown opens: no sleeps.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import STRATO, Instance

SIM = """
[exec]
backend = "sim"
[[resource.config]]
hosts = "node[0-15]"
cores = "0-3"
"""
HOUR = "--setattr=system.exec.test.run_duration=1h"

INNER = """#!/bin/sh
ids=$(strato submit --cc=1-3 --job-name=leaf {hour} sleep) || exit 1
strato run --job-name=done true || exit 1
for id in $ids; do strato job wait-event -q "$id" start || exit 1; done
echo "$1 $(strato getattr jobid)" >> {ready}
read go < {gate}
"""
OUTER = """#!/bin/sh
work=$(strato submit --job-name=work -n2 {hour} sleep) || exit 1
inner=$(strato batch -N1 --job-name=inner --conf exec.backend=sim {inner} inner) || exit 1
strato job wait-event -q "$work" start || exit 1
strato uri --wait "$inner" > /dev/null || exit 1
echo "outer $(strato getattr jobid) $inner" >> {ready}
read go < {gate}
"""


def read_lines(path: Path, n: int, timeout: float = 60) -> list[str]:
    """The first `n` lines written to the FIFO at `path`. Opened read-write, so it
    never reads end-of-file between writers; select bounds the wait, so a script
    that fails cannot hang the test."""
    fd = os.open(path, os.O_RDWR)
    buf = b""
    deadline = time.monotonic() + timeout
    try:
        while buf.count(b"\n") < n:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise AssertionError(f"scripts not ready after {timeout}s: {buf!r}")
            buf += os.read(fd, 4096)
    finally:
        os.close(fd)
    return buf.decode().splitlines()


class Tree:
    """The module's tree: the parent instance and the ids of its instance jobs."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.ready, self.gate = tmp / "ready", tmp / "gate"
        os.mkfifo(self.ready)
        os.mkfifo(self.gate)
        fill = {"hour": HOUR, "ready": self.ready, "gate": self.gate}
        inner = tmp / "inner.sh"
        inner.write_text(INNER.format(**fill))
        (tmp / "outer.sh").write_text(OUTER.format(inner=inner, **fill))
        self.parent = Instance(tmp, SIM)
        self.alloc = None
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _build(self) -> None:
        p = self.parent
        self.outer = p.strato("batch", "-N4", "--job-name=outer", "--conf", "exec.backend=sim",
                              "outer.sh", check=True).stdout.strip()
        apps = p.strato("submit", "--cc=1-2", "--job-name=app", HOUR, "sleep",
                        check=True).stdout.split()
        for jobid in apps:
            p.strato("job", "wait-event", "-q", jobid, "start", check=True)
        # last, so that it is the newest job: listings show it first
        self.alloc = subprocess.Popen(
            [*STRATO, "alloc", "-N2", "--job-name=side", "--conf", "exec.backend=sim",
             "sh", str(self.tmp / "inner.sh"), "side"],
            env=p.env, cwd=self.tmp, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        said = {line.split()[0]: line.split()[1:] for line in read_lines(self.ready, 3)}
        assert said["outer"][0] == self.outer
        self.inner = said["outer"][1]
        self.side = said["side"][0]
        self.apps = apps

    def strato(self, *args: str) -> subprocess.CompletedProcess:
        return self.parent.strato(*args)

    def close(self) -> None:
        """Open the gate: each script ends, so each child ends with its job."""
        try:
            fd = os.open(self.gate, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            fd = None  # no script is waiting
        if fd is not None:
            os.write(fd, b"go\n" * 3)
            os.close(fd)
            for jobid in (self.outer, getattr(self, "side", None)):
                if jobid:
                    self.parent.strato("job", "wait", jobid)
        if self.alloc is not None:
            try:
                self.alloc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.alloc.kill()
                self.alloc.wait()
            self.alloc.stdout.close()
            self.alloc.stderr.close()
        if self.parent.proc.poll() is None:
            self.parent.stop()


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    t = Tree(tmp_path_factory.mktemp("tree"))
    yield t
    t.close()


def ok(res: subprocess.CompletedProcess) -> list[str]:
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    return res.stdout.splitlines()


# -- strato pstree ----------------------------------------------------------------------
def test_pstree_draws_running_jobs_by_name_through_every_level(tree):
    assert ok(tree.strato("pstree")) == [
        ".",
        "├── side",
        "│   └── 3*[leaf]",
        "├── 2*[app]",
        "└── outer",
        "    ├── inner",
        "    │   └── 3*[leaf]",
        "    └── work",
    ]


def test_pstree_all_adds_inactive_jobs_and_status(tree):
    assert ok(tree.strato("pstree", "-a")) == [
        ".",
        "├── side",
        "│   ├── done:CD",
        "│   └── 3*[leaf:R]",
        "├── 2*[app:R]",
        "└── outer",
        "    ├── inner",
        "    │   ├── done:CD",
        "    │   └── 3*[leaf:R]",
        "    └── work:R",
    ]


def test_pstree_level_stops_descending(tree):
    assert ok(tree.strato("pstree", "-L", "1")) == [
        ".", "├── side", "│   └── 3*[leaf]", "├── 2*[app]", "└── outer", "    ├── inner",
        "    └── work"]
    assert ok(tree.strato("pstree", "--level=0")) == [".", "├── side", "├── 2*[app]",
                                                      "└── outer"]


def test_pstree_extended_prints_ids_and_skips_root(tree):
    lines = ok(tree.strato("pstree", "-x"))
    assert lines[0] == "       JOBID USER     ST NTASKS NNODES  RUNTIME"
    rows = [re.match(r"\s*(\S+) +\S+ +(\S+) +(\d+) +(\d+) +\S+ (.*)$", ln).groups()
            for ln in lines[1:]]
    tree_part = [r[4] for r in rows]
    assert tree_part == ["side", "├── leaf", "├── leaf", "└── leaf", "app", "app", "outer",
                         "├── inner", "│   ├── leaf", "│   ├── leaf", "│   └── leaf",
                         "└── work"]
    by_label = {r[4].split()[-1]: r for r in rows}
    assert by_label["side"][0] == tree.side and by_label["side"][3] == "2"
    assert by_label["outer"][0] == tree.outer and by_label["outer"][3] == "4"
    assert by_label["inner"][0] == tree.inner
    assert by_label["work"][2] == "2"  # ntasks
    assert ok(tree.strato("pstree", "-x", "-n"))[0].split()[0] == tree.side


def test_pstree_progress_and_stats_details(tree):
    lines = ok(tree.strato("pstree", "--details=progress"))
    assert lines[0].split() == ["JOBID", "NTASKS", "NJOBS", "PROG", "CORE%", "GPU%", "RUNTIME"]
    side = next(ln for ln in lines if ln.endswith(" side")).split()
    # 4 jobs (3 leaves running, 1 done), 1 of 4 ended, 3 of 8 cores busy, no gpus
    assert side[:5] == [tree.side, "1", "4", "25%", "37.5%"]
    inner = next(ln for ln in lines if ln.endswith("inner")).split()
    assert inner[:5] == [tree.inner, "1", "4", "25%", "75%"]
    app = next(ln for ln in lines if ln.endswith(" app")).split()
    assert len(app) == 4  # id, ntasks, runtime, name: a plain job has no progress
    lines = ok(tree.strato("pstree", "-d", "stats"))
    assert "PD:0 R:3 CD:1 F:0" in next(ln for ln in lines if ln.endswith(" side"))
    assert "PD:0 R:2 CD:0 F:0" in next(ln for ln in lines if ln.endswith(" outer"))


def test_pstree_labels_connectors_and_root(tree):
    assert ok(tree.strato("pstree", "--skip-root=yes", "--parent-label",
                          "{name} {instance.stats}")) == [
        "side PD:0 R:3 CD:1 F:0", "└── 3*[leaf]", "2*[app]", "outer PD:0 R:2 CD:0 F:0",
        "├── inner PD:0 R:3 CD:1 F:0", "│   └── 3*[leaf]", "└── work"]
    assert ok(tree.strato("pstree", "-C", "-L1")) == [
        ".", "├─side", "│ └─3*[leaf]", "├─2*[app]", "└─outer", "  ├─inner", "  └─work"]
    assert ok(tree.strato("pstree", "--ascii", "-L0")) == [
        ".", "|-- side", "|-- 2*[app]", "`-- outer"]
    assert ok(tree.strato("pstree", "-X", "-L0", "-o", "{name}")) == [
        ".", "├── side", "├── app", "├── app", "└── outer"]
    lines = ok(tree.strato("pstree", "-p", "-L0"))
    assert lines[1:] == [f"├── {tree.side} side", "├── 2*[app]", f"└── {tree.outer} outer"]
    # the root with details: the instance itself, as id "."
    lines = ok(tree.strato("pstree", "-x", "--skip-root=no", "-L0"))
    assert lines[1].split()[0] == "." and lines[1].endswith(" .")
    assert lines[-1].endswith("└── outer")


def test_pstree_of_one_job_and_from_inside_a_child(tree):
    assert ok(tree.strato("pstree", tree.outer)) == [
        "outer", "├── inner", "│   └── 3*[leaf]", "└── work"]
    # inside the outer instance, its root is its own job in the parent
    lines = ok(tree.strato("proxy", tree.outer, *STRATO, "pstree"))
    assert lines == ["outer", "├── inner", "│   └── 3*[leaf]", "└── work"]


def test_pstree_cuts_long_lines_unless_long(tree):
    env = dict(tree.parent.env, COLUMNS="12")
    res = subprocess.run([*STRATO, "pstree", "-L1"], env=env, capture_output=True, text=True)
    assert "    ├── inner" not in res.stdout.splitlines()
    assert "    ├── inn+" in res.stdout.splitlines()
    res = subprocess.run([*STRATO, "pstree", "-l", "-L1"], env=env, capture_output=True,
                         text=True)
    assert "    ├── inner" in res.stdout.splitlines()


# -- strato jobs -----------------------------------------------------------------------
def info_of(lines: list[str], jobid: str) -> str:
    head = lines[0]
    row = next(ln for ln in lines if ln.split()[0] == jobid)
    return row[head.index("INFO"):]


def test_jobs_info_shows_a_child_instance_progress(tree):
    lines = ok(tree.strato("jobs"))
    assert info_of(lines, tree.side).endswith(" PD:0 R:3 CD:1 F:0 cores:37.5%")
    assert re.fullmatch(r"node\S* PD:0 R:2 CD:0 F:0 cores:\S+%", info_of(lines, tree.outer))
    assert re.fullmatch(r"node\d+", info_of(lines, tree.apps[0]))  # a plain job: its node


def test_jobs_instance_fields(tree):
    lines = ok(tree.strato("jobs", "-o", "{id.f58} {name} {instance.stats.total} "
                           "{instance.progress!P} {instance.utilization!P} "
                           "{instance.resources.all.ncores} {instance.resources.free.ncores} "
                           "{instance.stats.running} {instance.gpu_utilization}|{uri}"))
    assert lines[0] == ("JOBID NAME NJOBS PROG CORE% CORES FREE RUNNING GPU%|URI")
    rows = {ln.split()[0]: ln for ln in lines[1:]}
    assert rows[tree.side].startswith(f"{tree.side} side 4 25% 37.5% 8 5 3 |local://")
    assert rows[tree.apps[0]] == f"{tree.apps[0]} app       |"
    uri = rows[tree.outer].split("|")[1]
    assert uri == ok(tree.strato("uri", tree.outer))[0]


def test_jobs_recursive_lists_each_child_under_its_path(tree):
    lines = ok(tree.strato("jobs", "-R", "-o", "{id.f58} {name} {status_abbrev}"))
    inner_path = f"{tree.outer}/{tree.inner}"
    ids = [ln.split()[0] if ln else "" for ln in lines]
    assert lines[0] == "JOBID NAME ST"
    # as flux jobs -R: one instance's jobs, then each child's under "\nPATH:", depth first
    assert [ln for ln in lines if ln.endswith(":")] == [f"{tree.side}:", f"{tree.outer}:",
                                                       f"{inner_path}:"]
    at = lines.index(f"{tree.outer}:")
    assert [ln.split()[1] for ln in lines[at + 1:at + 3]] == ["inner", "work"]
    assert lines[at - 1] == "" and lines[at + 3] == ""
    assert [ln.split()[1] for ln in lines[lines.index(f"{inner_path}:") + 1:]] == ["leaf"] * 3
    assert ids[1:5] == [tree.side, *tree.apps[::-1], tree.outer]
    # a path that strato uri takes
    assert ok(tree.strato("uri", inner_path)) == ok(tree.strato("proxy", tree.outer, *STRATO,
                                                                "uri", tree.inner))


def test_jobs_recursive_level_all_stats_and_json(tree):
    lines = ok(tree.strato("jobs", "-R", "-L1", "-n", "-o", "{name}"))
    assert not any(ln.count("/") for ln in lines)
    assert lines.count("leaf") == 3 and "inner" in lines
    lines = ok(tree.strato("jobs", "-R", "-a", "--stats", "-o", "{name}:{status_abbrev}"))
    at = lines.index(f"{tree.side}:")
    assert lines[at + 1] == "3 running, 1 completed, 0 failed, 0 pending"
    assert lines[at + 2:at + 6] == ["done:CD", "leaf:R", "leaf:R", "leaf:R"]
    assert re.fullmatch(r"\d+ running, \d+ completed, \d+ failed, \d+ pending, 0 inactive purged",
                        lines[0])
    import json

    top = json.loads(ok(tree.strato("jobs", "-R", "--json"))[0])["jobs"]
    outer = next(j for j in top if j["name"] == "outer")
    inner = next(j for j in outer["jobs"] if j["name"] == "inner")
    assert [j["name"] for j in inner["jobs"]] == ["leaf"] * 3
    assert all("jobs" not in j for j in top if j["name"] == "app")


def test_python_walk(tree):
    import strato
    from strato import instance

    with strato.Handle(tree.parent.uri) as h:
        nodes = instance.walk(h, info=True)
        paths = [n.path for top in nodes for n in top]
        assert f"{tree.outer}/{tree.inner}/" in " ".join(paths) + " "
        outer = next(n for n in nodes if n.job["name"] == "outer")
        assert outer.job["instance"]["stats"]["running"] == 2
        assert [c.job["name"] for c in outer.children] == ["inner", "work"]
        assert outer.children[1].children is None  # a plain job
        # level 0 with info: the children are asked for their counts, not their jobs
        flat = instance.walk(h, level=0, info=True)
        assert all(n.children is None for n in flat)
        side = next(n for n in flat if n.job["name"] == "side")
        assert side.job["instance"]["progress"] == 0.25
        assert instance.root_record(h)["name"] == "."
        assert strato.job.stats(h).running == 4


# -- children that cannot be asked, bad input ---------------------------------------------
def test_unreachable_child_leaves_fields_blank(sim_instance):
    """A running job whose memo names an instance that is not there (it died, or
    its socket is gone): listings go on, its fields stay empty."""
    import strato

    jobid = sim_instance.strato("submit", "--job-name=ghost", HOUR, "sleep",
                                check=True).stdout.strip()
    sim_instance.strato("job", "wait-event", "-q", jobid, "start", check=True)
    with strato.Handle(sim_instance.uri) as h:
        h.rpc("job-manager.memo", {"id": strato.job.id_parse(jobid),
                                   "memo": {"uri": f"local://{sim_instance.tmp}/gone/local"}})
    res = sim_instance.strato("jobs")
    assert res.returncode == 0 and res.stderr == ""
    assert info_of(res.stdout.splitlines(), jobid) == "node0"
    res = sim_instance.strato("jobs", "-o", "{id.f58} {instance.stats}|")
    assert res.stdout.splitlines()[1] == f"{jobid} |"
    res = sim_instance.strato("pstree")
    assert res.returncode == 0 and res.stdout.splitlines() == [".", "└── ghost"]
    assert res.stderr.strip() == f"strato-pstree: {jobid}: no instance at local://" \
        f"{sim_instance.tmp}/gone/local (it is not running)"
    res = sim_instance.strato("jobs", "-R", "-n", "-o", "{name}")
    assert res.returncode == 0 and res.stdout.splitlines() == ["ghost", "", f"{jobid}:"]
    assert res.stderr.startswith(f"strato-jobs: {jobid}: no instance at")


def test_stuck_child_does_not_hang_a_walk(sim_instance):
    """A child that is alive but does not answer (stopped) costs the walk its
    timeout, no more, and is reported."""
    import strato
    from strato import instance

    hold = sim_instance.tmp / "hold"
    os.mkfifo(hold)
    (sim_instance.tmp / "hold.sh").write_text(f"#!/bin/sh\nread x < {hold}\n")
    jobid = sim_instance.strato("batch", "-N1", "hold.sh", check=True).stdout.strip()
    uri = sim_instance.strato("uri", "--wait", jobid, check=True).stdout.strip()
    with strato.Handle(uri) as child:
        pid = int(instance.attr_get(child, "broker.pid"))
    os.kill(pid, signal.SIGSTOP)
    try:
        with strato.Handle(sim_instance.uri) as h:
            nodes = instance.walk(h, info=True, timeout=0.5)  # not the default 5 s:
        assert nodes[0].children is None and "no answer within 0.5s" in nodes[0].error
        assert "instance" not in nodes[0].job
        assert instance.child_info([uri], timeout=0.2) == [None]
    finally:
        os.kill(pid, signal.SIGCONT)
    assert instance.child_info([uri])[0].stats.total == 0
    sim_instance.strato("cancel", jobid, check=True)


@pytest.mark.parametrize("args, message", [
    (("pstree", "-d", "bogus"), "unknown details format 'bogus'"),
    (("pstree", "-C", "--ascii"), "choose only one of --ascii and --compact"),
    (("pstree", "-o", "{nope}"), "unknown field 'nope'"),
    (("pstree", "--detail-format", "{id:>}x{"), "--detail-format"),
    (("pstree", "--skip-root=maybe"), "'maybe' is not one of"),
    (("pstree", "-L", "-1"), "-1 is not in the range"),
    (("pstree", "-f", "sleeping"), "invalid filter 'sleeping'"),
    (("pstree", "nojob"), "nojob"),
    (("jobs", "-L", "-1", "-R"), "-1 is not in the range"),
    (("jobs", "--json", "--stats"), "--json cannot be used with --stats"),
    (("jobs", "-o", "{instance.nope}"), "unknown field 'instance.nope'"),
    (("jobs", "--color=sometimes"), "'sometimes' is not one of"),
])
def test_bad_options_are_one_line_errors(instance, args, message):
    res = instance.strato(*args)
    assert res.returncode != 0 and res.stdout == ""
    assert len(res.stderr.splitlines()) == 1, res.stderr
    assert res.stderr.startswith(f"strato-{args[0]}: ") and message in res.stderr


def test_stats_only_exit_code_and_no_instance_jobs(instance):
    res = instance.strato("jobs", "--stats-only")
    assert res.returncode == 1
    assert res.stdout == "0 running, 0 completed, 0 failed, 0 pending, 0 inactive purged\n"
    instance.strato("run", "true", check=True)
    assert instance.strato("pstree").stdout == ".\n"
    assert instance.strato("pstree", "-a").stdout == ".\n└── true:CD\n"
