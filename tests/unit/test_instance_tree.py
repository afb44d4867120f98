"""The pieces behind ``strato pstree`` and the INFO of instance jobs that need no
instance: the tree drawing, the ``instance.*`` fields, `JobStats`, and that a
listing without instance jobs asks no child anything."""

from __future__ import annotations

import pytest

from strato import instance
from strato.cli.cmd_pstree import Tree
from strato.cli.jobs_format import JobsFormatter, wants_instance_info
from strato.job import JobStats

STATS = {"job_states": {"new": 0, "depend": 1, "priority": 0, "sched": 2, "run": 3,
                        "cleanup": 1, "inactive": 9, "total": 16},
         "successful": 5, "failed": 1, "canceled": 2, "timeout": 1, "inactive_purged": 0}
STATUS = {"free": {"ranks": [0, 1], "ncores": 6, "ngpus": 2, "nnodes": 2},
          "allocated": {"ranks": [1, 2], "ncores": 6, "ngpus": 2, "nnodes": 2},
          "down": {"ranks": [3], "ncores": 4, "ngpus": 0, "nnodes": 1}}


def test_job_stats_count_every_unsuccessful_job_as_failed():
    st = JobStats.from_answer(STATS)
    assert (st.pending, st.running, st.active, st.failed) == (3, 4, 7, 4)
    assert str(st) == "PD:3 R:4 CD:5 F:4"
    assert st.as_dict()["canceled"] == 2


def test_instance_info_resources_and_ratios():
    info = instance.InstanceInfo.from_answers("local:///x", STATS, STATUS)
    assert info.resources["all"] == {"nnodes": 4, "ncores": 16, "ngpus": 4}
    assert info.resources["up"] == {"nnodes": 3, "ncores": 12, "ngpus": 4}
    assert info.utilization == 6 / 16 and info.gpu_utilization == 0.5
    assert info.progress == 9 / 16
    empty = instance.InstanceInfo.from_answers(
        "local:///y", {**STATS, "job_states": dict.fromkeys(STATS["job_states"], 0)},
        {k: {"ranks": [], "ncores": 0, "ngpus": 0} for k in STATUS})
    assert (empty.utilization, empty.gpu_utilization, empty.progress) == (None, None, None)


def record(**kw) -> dict:
    rec = {"id": 1 << 30, "userid": 0, "state": "RUN", "name": "batch", "ntasks": 1,
           "nodelist": "node[0-3]", "memo": {"uri": "local:///nowhere/local"}}
    rec.update(kw)
    return rec


def test_instance_fields_and_info_column():
    rec = record(instance=instance.InstanceInfo.from_answers("u", STATS, STATUS).as_dict())
    f = JobsFormatter("{instance.stats}|{instance.stats.total}|{instance.progress!P}|"
                      "{instance.utilization!P}|{instance.gpu_utilization!P}|"
                      "{instance.resources.down.ncores}|{instance.stats.canceled}|{uri}")
    assert f.header() == "STATS|NJOBS|PROG|CORE%|GPU%|DOWN|CANCELED|URI"
    assert f.format(rec) == "PD:3 R:4 CD:5 F:4|16|56.2%|37.5%|50%|4|2|local:///nowhere/local"
    assert JobsFormatter("{contextual_info}").format(rec) == \
        "node[0-3] PD:3 R:4 CD:5 F:4 cores:37.5% gpus:50%"
    plain = record(memo=None)  # not an instance, or one that did not answer: blank
    assert f.format(plain) == "|||||||"
    assert JobsFormatter("{contextual_info}").format(plain) == "node[0-3]"
    with pytest.raises(ValueError, match="unknown field 'instance.stats.bogus'"):
        JobsFormatter("{instance.stats.bogus}")


def test_id_zero_is_the_enclosing_instance():
    rec = record(id=0)
    assert JobsFormatter("{id} {id.f58} {id.dec} {id.hex} {id.f58plain}").format(rec) == \
        ". . . . ."


def test_which_formats_ask_children():
    assert wants_instance_info(JobsFormatter("{id} {contextual_info}").fields)
    assert wants_instance_info(["instance.stats"])
    assert not wants_instance_info(JobsFormatter("{id} {name} {nodelist} {uri}").fields)


def test_no_instance_jobs_no_requests(monkeypatch):
    """`strato jobs` stays one request when no listed job is a running instance."""

    def refuse(*args, **kwargs):
        raise AssertionError("a child was asked")

    monkeypatch.setattr(instance, "Handle", refuse)
    records = [record(memo=None), record(state="INACTIVE"), record(state="CLEANUP"),
               record(state="SCHED", memo=None)]
    assert instance.add_instance_info(records) == 0
    assert all("instance" not in r for r in records)


def test_unreachable_child_gets_no_info():
    records = [record()]
    assert instance.add_instance_info(records) == 0
    assert "instance" not in records[0]


def draw(root: Tree, style: str = "box") -> list[str]:
    return root.lines(style)


def test_tree_combines_identical_leaves_only():
    root = Tree(".")
    for name in ("a", "b", "a"):
        root.append(Tree(name))
    parent = Tree("a")
    parent.append(Tree("x"))
    root.append(parent)  # same label as a leaf, but it has children: kept apart
    assert draw(root) == [".", "├── 2*[a]", "├── b", "└── a", "    └── x"]
    flat = Tree(".", combine=False)
    for name in ("a", "a"):
        flat.append(Tree(name, combine=False))
    assert draw(flat) == [".", "├── a", "└── a"]


def test_tree_styles_and_prefixes():
    root = Tree("r", prefix="P0")
    mid = Tree("m", prefix="P1")
    mid.append(Tree("l", prefix="P2"))
    root.append(mid)
    root.append(Tree("z", prefix="P3"))
    assert draw(root) == ["P0 r", "P1 ├── m", "P2 │   └── l", "P3 └── z"]
    assert draw(root, "compact") == ["P0 r", "P1 ├─m", "P2 │ └─l", "P3 └─z"]
    assert draw(root, "ascii") == ["P0 r", "P1 |-- m", "P2 |   `-- l", "P3 `-- z"]
