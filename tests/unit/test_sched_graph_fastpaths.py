"""The matcher's exact shortcuts give the same answers as the plain walks.

- jobspec parsing: libyaml loader and the parse cache (same objects, same errors);
- ``by_outedges`` kept in key order;
- ``update`` walking only the marked edges, ``remove`` visiting only the job's
  vertices: a session's whole output (R, cancel PREORDER/POSTORDER stats) is the
  same as with the full walks.
"""

from __future__ import annotations

import io
import random
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import bench_inputs

from strato.cli.resource_query import Options, run_session
from strato.plugins.sched_graph import jobspec as jsmod
from strato.plugins.sched_graph.graph import Edge, OutEdgeIndex
from strato.plugins.sched_graph.jobspec import JobspecError, parse_jobspec
from strato.plugins.sched_graph.traverser import Traverser

BENCH = bench_inputs()
needs_bench = pytest.mark.skipif(not (BENCH / "grug-gen.py").is_file(),
                                 reason="bench inputs not found")

CORE4 = """\
version: 9999
resources:
  - type: slot
    count: 1
    label: default
    with:
      - type: core
        count: 4
attributes:
  system:
    duration: 3600
tasks:
  - command: ["app"]
    slot: default
    count:
      per_slot: 1
"""


def test_parse_cache_returns_same_object_and_rechecks_types():
    a = parse_jobspec(CORE4, known_types={"slot", "core"})
    assert parse_jobspec(CORE4, known_types={"slot", "core"}) is a
    with pytest.raises(JobspecError):
        parse_jobspec(CORE4, known_types={"slot"})  # core unknown: parsed again, fails


def test_yaml_errors_are_safe_load_messages():
    bad = "version: 1\nresources: [\n"
    with pytest.raises(yaml.YAMLError) as exc:
        yaml.safe_load(bad)
    with pytest.raises(JobspecError) as mine:
        parse_jobspec(bad)
    assert str(mine.value) == str(exc.value).replace("\n", " ")


def test_fast_loader_same_values():
    if jsmod._FastLoader is None:
        pytest.skip("PyYAML without libyaml")
    assert yaml.load(CORE4, Loader=jsmod._FastLoader) == yaml.safe_load(CORE4)


def test_outedge_index_sorted():
    idx = OutEdgeIndex()
    rng = random.Random(1)
    keys = {(rng.randrange(5), i) for i in range(50)}
    edges = {}
    for k in keys:
        edges[k] = idx[k] = Edge(0, k[1], "containment")
    for k in list(keys)[:10]:
        del idx[k]
        keys.discard(k)
    idx.pop((99, 99))
    assert [e.target for e in idx.desc()] == [k[1] for k in sorted(keys, reverse=True)]
    assert len(idx) == len(keys)


def _session(graph: Path, policy: str, cmds: str, cwd: Path) -> str:
    out = io.StringIO()
    run_session(Options(load_file=str(graph), load_format="grug", policy=policy,
                        prune_filters="ALL:core", match_format="rv1_nosched",
                        disable_prompt=True),
                io.StringIO(cmds), out=out, stdout=out, stderr=out, cwd=str(cwd))
    return out.getvalue()


@needs_bench
@pytest.mark.parametrize("policy", ["first", "high"])
def test_indexed_remove_and_marked_update_match_full_walks(tmp_path, monkeypatch, policy):
    graph = tmp_path / "g.graphml"
    graph.write_text(subprocess.run([sys.executable, str(BENCH / "grug-gen.py"), "8"],
                                    capture_output=True, text=True, check=True).stdout)
    for name in ("core4-shared.yaml", "node-excl-32c.yaml"):
        (tmp_path / name).write_text((BENCH / name).read_text())
    rng = random.Random(7)
    lines, live, jid = [], [], 0
    for _ in range(300):
        if rng.random() < 0.6 or not live:
            js = rng.choice(["core4-shared.yaml", "node-excl-32c.yaml"])
            op = rng.choice(["allocate", "allocate", "allocate_orelse_reserve"])
            lines.append(f"match {op} {js}")
            jid += 1
            live.append(jid)
        else:
            lines.append(f"cancel {live.pop(rng.randrange(len(live)))} stats")
    cmds = "\n".join(lines) + "\nquit\n"
    fast = _session(graph, policy, cmds, tmp_path)
    assert "CANCEL PREORDER" in fast and "RESERVED" in fast

    # the plain walks: every remove through mod_dfv, update over every out-edge
    monkeypatch.setattr(Traverser, "_is_dom_tree", lambda self: False)
    orig = Traverser.mark_edge

    def mark_all(self, e, needs, exclusive):
        orig(self, e, needs, exclusive)
        for v in self.g.vertices:  # as if every edge had been recorded
            if v.out:
                self.marked[v.index] = {x.order: x for x in v.out}

    monkeypatch.setattr(Traverser, "mark_edge", mark_all)
    assert _session(graph, policy, cmds, tmp_path) == fast
