"""Depth-first-and-up matcher over the dominant subsystem (Fluxion's DFU traverser).

``Traverser`` is the one object callers hold: it owns the per-graph matcher state
and is composed of one mixin per job, each in a module of its own:

- ``matching``       the DFS and scoring walk (``select``), pruning, priming;
- ``subtree_cache``  the exact per-subtree cache of evaluations;
- ``schedule``       the match operations (``run``: allocate, reserve, satisfiability);
- ``update``         booking and releasing jobs (update walk, ``remove``, partial
                     cancel, recording an R with ``run_update``);
- ``edit``           graph edits (remove subgraphs, ``mark`` up/down);
- ``prune``          the subtree aggregate filter spec.

Queries live in ``find``. The mixins share state through ``self``; only this class
initialises it, so the whole state is documented in one place.
"""

from __future__ import annotations

from .edit import GraphEdits
from .graph import Edge, ResourceGraph, Vertex
from .matching import Matching
from .policies import MatchPolicy
from .prune import PruneSpec
from .schedule import Scheduling
from .subtree_cache import SubtreeCache
from .update import Updating


class Traverser(Scheduling, Updating, GraphEdits, SubtreeCache, Matching):
    """Matcher state for one graph, policy and set of subsystems."""

    def __init__(self, graph: ResourceGraph, policy: MatchPolicy, subsystems: list[str],
                 prune_filters: str = "ALL:core,ALL:node") -> None:
        self.g = graph
        self.policy = policy
        self.subsystems = subsystems
        self.dom = subsystems[0]
        self.prune = PruneSpec(graph.types)
        if prune_filters:
            self.prune.set_spec(prune_filters)
        self.seq = 0
        self.color_base = 0
        self.preorder = 0
        self.postorder = 0
        self.total_preorder = 0
        self.total_postorder = 0
        self.trav_level = 0
        # Fluxion's error text, accumulated during one operation; a failed operation
        # raises a MatchError carrying it (errors.py).
        self.err = ""
        # Fluxion's errno of the walk's last failed branch, which decides the class of
        # that MatchError; private to the walk (see errors.error_for).
        self._errno = ""
        self.rt_needs = 0
        self.rt_excl = 0
        self.rt_seq = 0
        # Edges marked with the current seq, by source vertex index ({order: edge}):
        # ``update`` walks only these (in out-list order) below a vertex it does not
        # take whole.
        self.marked: dict[int, dict[int, Edge]] = {}
        # jobid -> the vertices ``update`` booked something of the job on (a superset:
        # entries are checked against the vertex's state when used); lets ``remove``
        # visit only those instead of walking the graph.
        self.job_vertices: dict[int, list[Vertex]] = {}
        self._tree_version = -1
        self._dom_tree = False
        self._dom_outdeg: dict[int, int] = {}
        # vertex index -> {key: cached evaluation}; an entry is dropped whenever the
        # vertex's subtree may have changed (the touched sets are upward-closed).
        self._mcache: dict[int, dict] = {}
        self._mcache_ver = -1
        self._cache_active = False
        self._recs: list[list] = []  # recorders of marks / labels, innermost last
