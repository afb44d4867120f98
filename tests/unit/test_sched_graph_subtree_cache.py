"""The low/high subtree cache and top-k shortcut give the same sessions as full walks.

Random mixes of allocate / allocate_orelse_reserve / allocate_with_satisfiability /
satisfiability / ``cancel N stats`` / set-status / set-property on GRUG graphs of
16-128 nodes, policies ``low``, ``high``, ``lonode``, ``hinode``, ``lonodex``,
``hinodex``, ``locality`` and ``variation``: the whole output with
``Traverser.subtree_cache`` on is byte-identical to the output with it off.
"""

from __future__ import annotations

import io
import random
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import bench_inputs

from strato.cli.resource_query import Options, run_session
from strato.plugins.sched_graph.traverser import Traverser

BENCH = bench_inputs()
needs_bench = pytest.mark.skipif(not (BENCH / "grug-gen.py").is_file(),
                                 reason="bench inputs not found")


def _js(resources: str, duration: int) -> str:
    return (f"version: 9999\nresources:\n{resources}attributes:\n  system:\n"
            f"    duration: {duration}\ntasks:\n  - command: [\"app\"]\n    slot: default\n"
            "    count:\n      per_slot: 1\n")


JOBSPECS = {
    "c4.yaml": _js("  - type: slot\n    count: 1\n    label: default\n    with:\n"
                   "      - type: core\n        count: 4\n", 3600),
    "c4short.yaml": _js("  - type: slot\n    count: 1\n    label: default\n    with:\n"
                        "      - type: core\n        count: 4\n", 100),
    "c2x3.yaml": _js("  - type: slot\n    count: 3\n    label: default\n    with:\n"
                     "      - type: core\n        count: 2\n", 1800),
    "cg.yaml": _js("  - type: slot\n    count: 2\n    label: default\n    with:\n"
                   "      - type: core\n        count: 1\n      - type: gpu\n        count: 1\n",
                   600),
    "node.yaml": _js("  - type: node\n    count: 1\n    with:\n      - type: slot\n"
                     "        count: 1\n        label: default\n        with:\n"
                     "          - type: socket\n            count: 2\n            with:\n"
                     "              - type: core\n                count: 16\n", 2400),
    "sock.yaml": _js("  - type: node\n    count: 2\n    with:\n      - type: socket\n"
                     "        count: 1\n        with:\n          - type: slot\n"
                     "            count: 1\n            label: default\n            with:\n"
                     "              - type: core\n                count: 3\n"
                     "              - type: memory\n                count: 4\n", 900),
    "xcore.yaml": _js("  - type: slot\n    count: 1\n    label: default\n    with:\n"
                      "      - type: core\n        count: 5\n        exclusive: true\n", 1200),
    "nodes8.yaml": _js("  - type: node\n    count: 8\n    with:\n      - type: slot\n"
                       "        count: 1\n        label: default\n        with:\n"
                       "          - type: socket\n            count: 2\n            with:\n"
                       "              - type: core\n                count: 14\n", 3000),
    "huge.yaml": _js("  - type: slot\n    count: 100000\n    label: default\n    with:\n"
                     "      - type: core\n        count: 1\n", 60),
}


def _session(graph: Path, policy: str, cmds: str, cwd: Path) -> str:
    out = io.StringIO()
    run_session(Options(load_file=str(graph), load_format="grug", policy=policy,
                        prune_filters="ALL:core", match_format="rv1_nosched",
                        disable_prompt=True),
                io.StringIO(cmds), out=out, stdout=out, stderr=out, cwd=str(cwd))
    return out.getvalue()


def _commands(rng: random.Random, nnodes: int, n: int, quiet: bool = False) -> str:
    lines, live, jid = [], [], 0
    names = list(JOBSPECS)
    for _ in range(n):
        x = rng.random()
        if x < (0.8 if quiet else 0.65) or not live:
            big = nnodes > 16 and rng.random() < 0.3
            op = rng.choice(["allocate", "allocate", "allocate_orelse_reserve",
                             "allocate_orelse_reserve", "allocate_with_satisfiability",
                             "satisfiability"])
            lines.append(f"match {op} {'nodes8.yaml' if big else rng.choice(names)}")
            if op != "satisfiability":
                jid += 1
                live.append(jid)
        elif x < 0.85 or (quiet and rng.random() < 0.9):
            if live:
                lines.append(f"cancel {live.pop(rng.randrange(len(live)))} stats")
        elif x < 0.94:
            node = rng.randrange(nnodes)
            path = f"/cluster0/node{node}"
            if rng.random() < 0.5:
                path += f"/socket{2 * node + rng.randrange(2)}"
            lines.append(f"set-status {path} {rng.choice(['down', 'up', 'up'])}")
        else:
            lines.append(f"set-property /cluster0/node{rng.randrange(nnodes)} "
                         f"perf_class={rng.randrange(3)}")
    return "\n".join(lines) + "\nquit\n"


@needs_bench
@pytest.mark.parametrize("policy,nnodes,seed,quiet", [
    # one case with churn (set-status / set-property flush the cache) and one mostly
    # of cache hits per policy, over graph sizes from 32 to 128 nodes
    ("low", 48, 3, False), ("high", 64, 4, False),
    ("low", 96, 7, True), ("high", 128, 8, True),
    # node-centric score factors (the ancestors' factor state is part of the key)
    ("hinode", 48, 12, False), ("lonode", 128, 13, False),
    ("hinode", 96, 14, True), ("lonode", 64, 15, True), ("lonodex", 32, 16, False),
    ("hinodex", 64, 17, False), ("lonodex", 128, 18, True), ("hinodex", 48, 19, True),
    # locality / variation: stateless policies (variation reads perf_class, set-property)
    ("locality", 16, 21, False), ("variation", 128, 24, False),
    ("locality", 96, 25, True), ("variation", 32, 28, True)])
def test_subtree_cache_matches_full_walks(tmp_path, monkeypatch, policy, nnodes, seed, quiet):
    graph = tmp_path / "g.graphml"
    graph.write_text(subprocess.run([sys.executable, str(BENCH / "grug-gen.py"), str(nnodes)],
                                    capture_output=True, text=True, check=True).stdout)
    for name, text in JOBSPECS.items():
        (tmp_path / name).write_text(text)
    cmds = _commands(random.Random(seed), nnodes, 160 if nnodes >= 128 else 260, quiet)
    fast = _session(graph, policy, cmds, tmp_path)
    assert "RESERVED" in fast and "CANCEL PREORDER" in fast
    monkeypatch.setattr(Traverser, "subtree_cache", False)
    assert _session(graph, policy, cmds, tmp_path) == fast
