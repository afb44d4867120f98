"""The resource graph: typed vertices, edges in named subsystems, lookup indexes.

Vertices live in a list indexed by ``uniq_id`` and each keeps its out-edges in
insertion order, which is the order the matcher walks them. Per-vertex scheduling
state (availability timelines, job tags, subtree filters) sits on the vertex so the
hot path touches only plain attributes. ``to_networkx`` gives a networkx view for
inspection and tooling.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from typing import Any

from .planner import INT64_MAX, MultiPlanner, Planner

X_CHECKER_NJOBS = 0x40000000
CONTAINMENT = "containment"
UINT64_MAX = 2**64 - 1


class TypeOrder:
    """Resource types ordered as Fluxion interns them (built-ins first, then first seen).

    Fluxion's sets and maps keyed by resource type iterate in interning order; a few
    outputs (the order of subtree filter types) depend on it.
    """

    BUILTIN = ("", "cluster", "core", "socket", "gpu", "node", "rack", "slot", "xor_slot",
               "ssd", "storage_node")

    def __init__(self) -> None:
        self.rank: dict[str, int] = {t: i for i, t in enumerate(self.BUILTIN)}

    def key(self, t: str) -> int:
        r = self.rank.get(t)
        if r is None:
            r = self.rank[t] = len(self.rank)
        return r

    def sort(self, types) -> list[str]:
        return sorted(types, key=self.key)


class Edge:
    """A directed edge of one subsystem, with the matcher's per-traversal marks."""

    __slots__ = ("source", "target", "subsystem", "needs", "exclusive", "seq", "weight",
                 "order")

    def __init__(self, source: int, target: int, subsystem: str, order: int = 0) -> None:
        self.order = order  # creation order: an out-list is always in this order
        self.source = source
        self.target = target
        self.subsystem = subsystem
        self.needs = 0
        self.exclusive = 0
        self.seq = 0
        self.weight = UINT64_MAX

    def mark(self, needs: int, exclusive: int, seq: int) -> None:
        self.needs = needs
        self.exclusive = exclusive
        self.seq = seq


class Vertex:
    """One resource pool (a core, a node, 16 GB of memory, ...) and its schedule."""

    __slots__ = (
        "index", "uniq_id", "type", "basename", "name", "id", "rank", "size", "unit", "properties",
        "paths", "status", "member_of", "out", "in_", "plans", "_x_checker", "allocations",
        "reservations", "tags", "x_spans", "job2span", "subplans", "colors", "ephemeral",
        "removed", "out_types",
    )

    def __init__(self, index: int, type_: str, basename: str, name: str, id_: int,
                 rank: int, size: int, unit: str = "", uniq_id: int | None = None) -> None:
        self.index = index  # position in ResourceGraph.vertices
        self.uniq_id = index if uniq_id is None else uniq_id
        self.type = type_
        self.basename = basename
        self.name = name
        self.id = id_
        self.rank = rank
        self.size = size
        self.unit = unit
        self.properties: dict[str, str] = {}
        self.paths: dict[str, str] = {}
        self.status = "up"
        self.member_of: dict[str, str] = {}
        self.out: list[Edge] = []
        self.out_types: dict[str, int] = {}  # type -> number of out-edges to it
        self.in_: list[Edge] = []
        # a size read from a graph file that is not a count fails in Planner's checks
        self.plans = Planner.empty(size, INT64_MAX, type_) if type(size) is int and size >= 0 \
            else Planner(size, 0, INT64_MAX, type_)
        self._x_checker: Planner | None = None  # created on first use (see x_checker)
        self.allocations: dict[int, int] = {}
        self.reservations: dict[int, int] = {}
        self.tags: dict[int, int] = {}
        self.x_spans: dict[int, int] = {}
        self.job2span: dict[int, int] = {}
        self.subplans: dict[str, MultiPlanner] = {}
        self.colors: dict[str, int] = {}
        self.ephemeral: dict[str, str] = {}
        self.removed = False

    @property
    def hostname(self) -> str:
        """The name an RFC 31 ``hostlist`` constraint matches: the vertex's name."""
        return self.name

    @property
    def x_checker(self) -> Planner:
        """The exclusivity checker (one unit per job on the vertex), created on first use.

        Until a job books a span on it, every exclusivity query would find it empty,
        so the matcher tests ``_x_checker is None`` first and skips the planner.
        """
        xc = self._x_checker
        if xc is None:
            xc = self._x_checker = Planner.empty(X_CHECKER_NJOBS, INT64_MAX)
        return xc


class OutEdgeIndex:
    """A vertex's out-edges keyed by (weight, child uniq_id), kept in key order.

    ``first`` walks them highest key first (``desc``); the keys are kept sorted as
    they change instead of being sorted on every match.
    """

    __slots__ = ("_map", "_keys")

    def __init__(self) -> None:
        self._map: dict[tuple[int, int], Edge] = {}
        self._keys: list[tuple[int, int]] = []

    def __setitem__(self, key: tuple[int, int], e: Edge) -> None:
        if key not in self._map:
            insort(self._keys, key)
        self._map[key] = e

    def __getitem__(self, key: tuple[int, int]) -> Edge:
        return self._map[key]

    def __delitem__(self, key: tuple[int, int]) -> None:
        del self._map[key]
        keys = self._keys
        del keys[bisect_left(keys, key)]

    def pop(self, key: tuple[int, int], default=None):
        if key in self._map:
            e = self._map[key]
            del self[key]
            return e
        return default

    def get(self, key: tuple[int, int], default=None):
        return self._map.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._map

    def __len__(self) -> int:
        return len(self._map)

    def __iter__(self):
        return iter(self._map)

    def items(self):
        return self._map.items()

    def desc(self):
        """The edges, highest key first (lazily: ``first`` stops early; the index must
        not change while this is being walked)."""
        m = self._map
        for k in reversed(self._keys):
            yield m[k]


class ResourceGraph:
    """Vertices, edges, subsystem roots and the lookup indexes Fluxion keeps."""

    def __init__(self) -> None:
        self.vertices: list[Vertex] = []
        self.roots: dict[str, int] = {}
        self.by_path: dict[str, list[int]] = {}
        self.by_type: dict[str, list[int]] = {}
        self.by_name: dict[str, list[int]] = {}
        self.by_rank: dict[int, list[int]] = {}
        # vertex index -> {(weight, child uniq_id): edge}; walked highest key first by `first`
        self.by_outedges: dict[int, OutEdgeIndex] = {}
        self.types = TypeOrder()
        self.nodes_up = 0
        self.graph_start = 0
        self.graph_end = 3153600000  # Fluxion's 100-year default horizon
        self.n_edges_created = 0
        self.version = 0  # bumped whenever an edge is added, re-typed or removed

    # -- building -----------------------------------------------------------------
    def add_vertex(self, type_: str, basename: str, name: str, id_: int, rank: int,
                   size: int, unit: str = "", uniq_id: int | None = None) -> Vertex:
        v = Vertex(len(self.vertices), type_, basename, name, id_, rank, size, unit, uniq_id)
        if type_ not in self.types.rank:
            self.types.key(type_)
        self.vertices.append(v)
        return v

    def add_cluster_root(self) -> Vertex:
        """The containment root ``/cluster0`` of a graph built from a machine's
        description (hwloc, R), as Fluxion's readers make it."""
        root = self.add_vertex("cluster", "cluster", "cluster0", 0, -1, 1)
        root.paths["containment"] = "/cluster0"
        root.member_of["containment"] = "*"
        self.index_vertex(root, "containment")
        self.roots["containment"] = root.index
        return root

    def index_vertex(self, v: Vertex, subsystem: str) -> None:
        self.by_path.setdefault(v.paths[subsystem], []).append(v.index)
        self.by_type.setdefault(v.type, []).append(v.index)
        self.by_name.setdefault(v.name, []).append(v.index)
        self.by_rank.setdefault(v.rank, []).append(v.index)

    def add_edge(self, src: Vertex, tgt: Vertex, subsystem: str, fresh: bool = False) -> Edge:
        """Add src -> tgt (or return the existing edge); ``fresh``: tgt is brand new."""
        self.version += 1
        if not fresh:
            for e in src.out:
                if e.target == tgt.index:
                    e.subsystem = subsystem
                    return e
        self.n_edges_created += 1
        e = Edge(src.index, tgt.index, subsystem, self.n_edges_created)
        src.out.append(e)
        src.out_types[tgt.type] = src.out_types.get(tgt.type, 0) + 1
        tgt.in_.append(e)
        m = self.by_outedges.get(src.index)
        if m is None:
            m = self.by_outedges[src.index] = OutEdgeIndex()
        m[(e.weight, tgt.uniq_id)] = e
        return e

    def parent_edge(self, v: Vertex, subsystem: str) -> Edge | None:
        for e in v.in_:
            if e.subsystem == subsystem:
                return e
        return None

    def detach_vertex(self, v: Vertex) -> None:
        """Drop ``v`` from the graph (Fluxion's ``clear_vertex`` + ``remove_graph_metadata``).

        Every edge into or out of ``v`` goes, with its out-edge index entries; ``v``
        leaves the path, type, name and rank indexes (a path's whole entry goes, as
        in Fluxion) but keeps its slot in ``vertices``, marked ``removed``.
        """
        self.version += 1
        verts = self.vertices
        for e in v.out:
            verts[e.target].in_.remove(e)
        for e in v.in_:
            src = verts[e.source]
            src.out.remove(e)
            n = src.out_types.get(v.type, 0) - 1
            if n > 0:
                src.out_types[v.type] = n
            else:
                src.out_types.pop(v.type, None)
            m = self.by_outedges.get(src.index)
            if m is not None:
                for key, edge in list(m.items()):
                    if edge is e:
                        del m[key]
        v.out = []
        v.out_types = {}
        v.in_ = []
        self.by_outedges.pop(v.index, None)
        for path in v.paths.values():
            self.by_path.pop(path, None)
        for index, key in ((self.by_type, v.type), (self.by_name, v.name),
                           (self.by_rank, v.rank)):
            lst = index.get(key)
            if lst is not None and v.index in lst:
                lst.remove(v.index)
        v.removed = True

    def initialize_node_stats(self) -> None:
        self.nodes_up = sum(1 for i in self.by_type.get("node", [])
                            if self.vertices[i].status == "up")

    def live_vertices(self):
        return (v for v in self.vertices if not v.removed)

    def num_edges(self) -> int:
        return sum(len(v.out) for v in self.vertices)

    # -- inspection ---------------------------------------------------------------
    def to_networkx(self) -> Any:
        """A networkx MultiDiGraph view (vertex attributes, edge subsystem keys)."""
        import networkx as nx

        g = nx.MultiDiGraph()
        for v in self.live_vertices():
            g.add_node(v.index, uniq_id=v.uniq_id, type=v.type, basename=v.basename,
                       name=v.name, id=v.id, rank=v.rank, size=v.size, unit=v.unit,
                       paths=dict(v.paths), properties=dict(v.properties), status=v.status)
        for v in self.live_vertices():
            for e in v.out:
                g.add_edge(e.source, e.target, key=e.subsystem, subsystem=e.subsystem)
        return g
