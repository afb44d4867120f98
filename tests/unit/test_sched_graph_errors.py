"""The traverser API reports failures as exceptions whose class says what went wrong.

A two-node graph (4 cores each, read from an RV1 R): "not now" is ``Busy``, "never"
is ``Unsatisfiable``, a bad request is ``InvalidRequest`` (also a ValueError), and
the graph edits raise for unknown paths.
"""

from __future__ import annotations

import json

import pytest

from strato.plugins.sched_graph.errors import (
    Busy,
    InvalidRequest,
    MatchError,
    Unsatisfiable,
    error_for,
)
from strato.plugins.sched_graph.jobspec import parse_jobspec
from strato.plugins.sched_graph.policies import create_policy
from strato.plugins.sched_graph.rv1exec import load_rv1exec
from strato.plugins.sched_graph.traverser import Traverser
from strato.plugins.sched_graph.writers import create_writer

R = {"version": 1, "execution": {"R_lite": [{"rank": "0-1", "children": {"core": "0-3"}}],
                                 "nodelist": ["node[0-1]"], "starttime": 0,
                                 "expiration": 0}}


def _js(nodes: int, duration: float = 60.0) -> object:
    return parse_jobspec(json.dumps({
        "version": 1,
        "resources": [{"type": "node", "count": nodes, "with": [
            {"type": "slot", "count": 1, "label": "task",
             "with": [{"type": "core", "count": 4}]}]}],
        "tasks": [{"command": ["true"], "slot": "task", "count": {"per_slot": 1}}],
        "attributes": {"system": {"duration": duration}}}))


@pytest.fixture
def trav() -> Traverser:
    t = Traverser(load_rv1exec(json.dumps(R)), create_policy("first"), ["containment"])
    t.initialize()
    return t


def test_busy_then_free_again(trav):
    assert trav.run(_js(2), create_writer("simple"), "allocate", 1, 0) == 0
    with pytest.raises(Busy):
        trav.run(_js(1), create_writer("simple"), "allocate", 2, 0)
    trav.remove(1)
    assert trav.run(_js(1), create_writer("simple"), "allocate", 3, 0) == 0


def test_reserve_returns_a_later_time(trav):
    trav.run(_js(2), create_writer("simple"), "allocate", 1, 0)
    assert trav.run(_js(1), create_writer("simple"), "allocate_orelse_reserve", 2, 0) == 60


@pytest.mark.parametrize("op", ["allocate", "satisfiability", "allocate_with_satisfiability",
                                "allocate_orelse_reserve"])
def test_too_many_nodes(trav, op):
    # as Fluxion: only the operations that check satisfiability can say "never"
    expected = Unsatisfiable if "satisfiability" in op else Busy
    with pytest.raises(expected) as info:
        trav.run(_js(3), create_writer("simple"), op, 1, 0)
    assert type(info.value) is expected


def test_invalid_duration_is_a_value_error(trav):
    with pytest.raises(InvalidRequest):
        trav.run(_js(1, duration=-1.0), create_writer("simple"), "allocate", 1, 0)
    with pytest.raises(ValueError):
        trav.run(_js(1, duration=-1.0), create_writer("simple"), "allocate", 1, 0)


def test_graph_edits_raise_for_unknown_paths(trav):
    with pytest.raises(Unsatisfiable, match="could not find subtree path"):
        trav.mark("/cluster0/nope", "down")
    with pytest.raises(Unsatisfiable):
        trav.remove_subgraph_path("/cluster0/nope")
    with pytest.raises(InvalidRequest):
        trav.remove_subgraph_path("/cluster0")  # the root stays


def test_marked_down_is_busy(trav):
    trav.mark("/cluster0/node0", "down")
    assert trav.run(_js(1), create_writer("simple"), "allocate", 1, 0) == 0
    with pytest.raises(Busy):
        trav.run(_js(1), create_writer("simple"), "allocate_with_satisfiability", 2, 0)


def test_error_for_maps_codes():
    assert type(error_for("ENOENT", "x")) is Unsatisfiable
    assert type(error_for("", "")) is MatchError
    assert str(error_for("EBUSY", "why\n")) == "why\n"
