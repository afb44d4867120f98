"""Match policies are written against the documented protocol in ``core/hookspecs.py``.

The built-in policies, prune spec and queue policies satisfy the protocols; a
third-party policy that declares ``subtree_local`` gets the subtree cache (and the
same results as full walks), one that does not declare it gets full walks.
"""

from __future__ import annotations

import json

import pytest

from strato.core import hookspecs
from strato.plugins.sched_graph import plugin
from strato.plugins.sched_graph.graph import TypeOrder
from strato.plugins.sched_graph.jobspec import calc_count, parse_jobspec
from strato.plugins.sched_graph.policies import MatchPolicy, MultilevelId, create_policy
from strato.plugins.sched_graph.prune import PruneSpec
from strato.plugins.sched_graph.rv1exec import load_rv1exec
from strato.plugins.sched_graph.scoring import MATCH_MET, MATCH_UNMET, greater
from strato.plugins.sched_graph.traverser import Traverser
from strato.plugins.sched_graph.writers import create_writer

NNODES = 16


@pytest.mark.parametrize("name", list(plugin.BUILTIN_POLICIES))
def test_builtin_match_policies_implement_the_protocol(name):
    assert isinstance(create_policy(name), hookspecs.MatchPolicy)


def test_prune_spec_and_queue_policies_implement_their_protocols():
    assert isinstance(PruneSpec(TypeOrder()), hookspecs.PruneFilter)
    for name, factory in plugin._queue_policies().items():
        qp = factory({})
        assert isinstance(qp, hookspecs.QueuePolicy) and qp.name == name


class HighIdFirst(MatchPolicy):
    """A third-party policy on the base class: highest ids first, no score factors."""

    name = "highid"

    def dom_finish_vtx(self, v, s, resources, dfu) -> int:
        score = MATCH_MET
        for r in resources:
            if r.type != v.type:
                continue
            for c in r.with_:
                count = calc_count(c, dfu.qualified_count(s, c.type))
                if count == 0:
                    score = MATCH_UNMET
                    break
                dfu.choose_accum_best_k(s, c.type, count, greater)
        dfu.overall_score = score + v.id + 1 if score == MATCH_MET else score
        return 0 if score == MATCH_MET else -1

    def dom_finish_slot(self, s, dfu) -> int:
        for t in dfu.resrc_types(s):
            dfu.choose_accum_all(s, t, greater)
        return 0

    def dom_finish_graph(self, s, resources, dfu) -> int:
        dfu.overall_score = MATCH_MET
        for r in resources:
            count = calc_count(r, dfu.qualified_count(s, r.type))
            if count == 0:
                dfu.overall_score = MATCH_UNMET
                return -1
            dfu.choose_accum_best_k(s, r.type, count, greater)
        return 0


class HighIdFirstCached(HighIdFirst):
    """The same scores, declared subtree-local (they are: a vertex's id and children)."""

    subtree_local = True


class OddFirst(MultilevelId):
    """The ``oddfirst`` example of docs/plugins.md: a score factor per node."""

    subtree_local = True

    def __init__(self) -> None:
        super().__init__(high=False)
        self.add_score_factor("node", 1, 10000)

    @staticmethod
    def node_key(v) -> int:
        return v.id + (1 << 20 if v.id % 2 == 0 else 0)

    def dom_discover_vtx(self, v) -> int:
        if v.type == "node":
            self.factor_value["node"] = (self.node_key(v) + 2) * 10000
            self.scores += self.factor_value["node"]
        return 0

    def dom_finish_vtx(self, v, s, resources, dfu) -> int:
        rc = super().dom_finish_vtx(v, s, resources, dfu)
        if v.type == "node" and dfu.overall_score >= MATCH_MET:
            dfu.overall_score += self.node_key(v) - v.id
        return rc


def _spec(resources: list, duration: int) -> object:
    return parse_jobspec(json.dumps({
        "version": 1, "resources": resources,
        "tasks": [{"command": ["x"], "slot": "s", "count": {"per_slot": 1}}],
        "attributes": {"system": {"duration": duration}}}))


def _slot(cores: int, count: int = 1) -> dict:
    return {"type": "slot", "count": count, "label": "s",
            "with": [{"type": "core", "count": cores}]}


SPECS = [_spec([_slot(3)], 100), _spec([_slot(2, 3)], 50),
         _spec([{"type": "node", "count": 2, "with": [_slot(8)]}], 200),
         _spec([{"type": "node", "count": 1, "with": [_slot(5)]}], 70)]


def _session(policy, monkeypatch, cache: bool) -> tuple[list, int, bool]:
    """Matches, cancels and reservations on a 16-node graph; (outputs, number of
    vertex evaluations the walk did, whether the cache applied)."""
    calls = [0]
    orig = Traverser._dom_dfv

    def counted(self, *args):
        calls[0] += 1
        return orig(self, *args)

    monkeypatch.setattr(Traverser, "_dom_dfv", counted)
    monkeypatch.setattr(Traverser, "subtree_cache", cache)
    R = {"version": 1, "execution": {
        "R_lite": [{"rank": f"0-{NNODES - 1}", "children": {"core": "0-7"}}],
        "nodelist": [f"node[0-{NNODES - 1}]"], "starttime": 0, "expiration": 0}}
    trav = Traverser(load_rv1exec(json.dumps(R)), policy, ["containment"], "ALL:core")
    trav.initialize()
    out, live = [], []
    for jobid in range(1, 61):
        if jobid % 4 == 0 and live:
            trav.remove(live.pop(len(live) // 2))
        w = create_writer("simple")
        op = "allocate_orelse_reserve" if jobid % 3 else "allocate"
        try:
            at = trav.run(SPECS[jobid % len(SPECS)], w, op, jobid, 0)
        except Exception as exc:  # the failure kind is part of the result compared
            out.append((jobid, type(exc).__name__))
            continue
        live.append(jobid)
        out.append((jobid, at, w.emit(), trav.total_preorder, trav.total_postorder))
    return out, calls[0], trav.subtree_cache_applies


@pytest.mark.parametrize("cls", [HighIdFirstCached, OddFirst])
def test_a_policy_declaring_subtree_local_gets_the_cache(cls, monkeypatch):
    fast, n_fast, applied = _session(cls(), monkeypatch, cache=True)
    assert applied
    full, n_full, applied_off = _session(cls(), monkeypatch, cache=False)
    assert not applied_off
    assert fast == full
    assert any(len(r) == 5 and r[1] > 0 for r in fast)  # some reservations were made
    assert n_fast < n_full  # unchanged subtrees were replayed, not walked


def test_a_policy_not_declaring_it_walks_every_time(monkeypatch):
    assert HighIdFirst.subtree_local is False  # the base class's default
    walked, n_walked, applied = _session(HighIdFirst(), monkeypatch, cache=True)
    assert not applied
    full, n_full, _ = _session(HighIdFirst(), monkeypatch, cache=False)
    assert walked == full and n_walked == n_full
    # and its results are the cached twin's: declaring changes speed, not choices
    assert _session(HighIdFirstCached(), monkeypatch, cache=True)[0] == walked
