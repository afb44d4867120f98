"""GRUG reader: expand a GraphML generation recipe into a resource graph.

A recipe is a small graph of resource *pools* (cluster, rack, node, ...) whose edges
say how to generate children: ``MULTIPLY`` makes ``multi_scale`` copies under each
parent, ``ASSOCIATE_IN`` / ``ASSOCIATE_BY_PATH_IN`` link already generated vertices
into another subsystem. Generation is a depth-first walk over the recipe (vertices
and out-edges in file order); ids are local to an ancestor level chosen by
``id_scope``, nodes get consecutive ranks from 0.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from strato.core import gcpolicy

from .graph import ResourceGraph, Vertex

NS = "{http://graphml.graphdrawing.org/xmlns}"


class GrugError(Exception):
    """The recipe cannot be read or expanded."""


@dataclass
class _Pool:
    data: dict = field(default_factory=dict)
    out: list[int] = field(default_factory=list)


def _convert(value: str, kind: str):
    if kind in ("int", "long"):
        return int(value.strip())
    return value


def read_recipe(text: str) -> tuple[list[_Pool], list[dict]]:
    """Parse the GraphML recipe into pools (vertices) and relations (edges)."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise GrugError(f"error in reading grug string: {exc}") from exc
    keys: dict[str, tuple[str, str, str]] = {}
    defaults = {"node": {}, "edge": {}}
    for k in root.iter(f"{NS}key"):
        name = k.get("attr.name", k.get("id"))
        kind = k.get("attr.type", "string")
        keys[k.get("id")] = (name, kind, k.get("for", "node"))
        d = k.find(f"{NS}default")
        if d is not None and d.text is not None:
            defaults.setdefault(k.get("for", "node"), {})[name] = _convert(d.text, kind)
    graph = root.find(f"{NS}graph")
    if graph is None:
        raise GrugError("error in reading grug string: no graph")
    pools: list[_Pool] = []
    index: dict[str, int] = {}
    relations: list[dict] = []

    def data_of(elem, what):
        out = dict(defaults.get(what, {}))
        for d in elem.findall(f"{NS}data"):
            name, kind, _ = keys.get(d.get("key"), (d.get("key"), "string", what))
            out[name] = _convert(d.text or "", kind)
        return out

    def pool_index(nid: str) -> int:
        if nid not in index:
            index[nid] = len(pools)
            pools.append(_Pool(dict(defaults.get("node", {}))))
        return index[nid]

    for elem in graph:
        if elem.tag == f"{NS}node":
            i = pool_index(elem.get("id"))
            pools[i].data = data_of(elem, "node")
        elif elem.tag == f"{NS}edge":
            s = pool_index(elem.get("source"))
            t = pool_index(elem.get("target"))
            rel = data_of(elem, "edge")
            rel["_src"], rel["_tgt"] = s, t
            pools[s].out.append(len(relations))
            relations.append(rel)
    return pools, relations


def _path_prefix(path: str, uplevel: int) -> str | None:
    slashes = path.count("/")
    if uplevel >= slashes:
        return None
    pos = 0
    occurrence = 0
    while occurrence != slashes - uplevel + 1:
        found = path.find("/", pos)
        if found < 0:
            pos = len(path)
            break
        pos = found + 1
        occurrence += 1
    prefix = path[:pos]
    if not prefix.endswith("/"):
        prefix += "/"
    return prefix


class _Emitter:
    def __init__(self, g: ResourceGraph, pools: list[_Pool], relations: list[dict],
                 rank: int) -> None:
        self.g = g
        self.pools = pools
        self.rel = relations
        self.rank = rank
        self.node_rank = -1
        self.gen_src: dict[int, list[Vertex]] = {}
        self.scales: list[int] = []  # most recent first

    def gen_id(self, rel: dict, i: int, sz: int, j: int) -> int:
        scope = rel.get("id_scope", 0)
        start = rel.get("id_start", 0)
        stride = rel.get("id_stride", 1)
        if scope < 0:
            return -1
        if scope == 0:
            return start + i
        scope = min(scope, len(self.scales))
        wrap = 1
        for h in range(scope):
            wrap *= self.scales[h]
        return start + (j % wrap * sz * stride) + i * stride

    def emit_vertex(self, u: int, rel: dict | None, src: Vertex | None, i: int, sz: int,
                    j: int) -> Vertex:
        p = self.pools[u].data
        ssys = p.get("subsystem", "containment")
        if src is None and ssys in self.g.roots:
            return self.g.vertices[self.g.roots[ssys]]
        if src is None:
            id_, pref = 0, ""
        else:
            id_ = self.gen_id(rel, i, sz, j)
            pref = src.paths.get(ssys, "")
        istr = str(id_) if id_ != -1 else ""
        type_ = p.get("type", "")
        if type_ == "node":
            self.node_rank += 1
            rank = self.node_rank
        else:
            rank = self.rank
        basename = p.get("basename", "")
        v = self.g.add_vertex(type_, basename, basename + istr, id_, rank, p.get("size", 1),
                              p.get("unit", ""))
        if src is None:
            self.g.roots[ssys] = v.index
        v.paths[ssys] = pref + "/" + v.name
        v.member_of[ssys] = "*"
        self.g.index_vertex(v, ssys)
        return v

    def tree_edge(self, ei: int) -> None:
        rel = self.rel[ei]
        s, t = rel["_src"], rel["_tgt"]
        g = self.g
        if self.pools[s].data.get("root", 0):
            if not self.gen_src.get(s):
                self.gen_src[s] = [self.emit_vertex(s, rel, None, 0, 1, 0)]
        self.gen_src[t] = []
        esub = rel.get("e_subsystem", "containment")
        method = rel.get("gen_method", "MULTIPLY")
        if method == "MULTIPLY":
            scale = rel.get("multi_scale", 1)
            for j, src in enumerate(self.gen_src.get(s, [])):
                for i in range(scale):
                    tgt = self.emit_vertex(t, rel, src, i, scale, j)
                    g.add_edge(src, tgt, esub, fresh=True)
                    self.gen_src[t].append(tgt)
            self.scales.insert(0, scale)
        elif method in ("ASSOCIATE_IN", "ASSOCIATE_BY_PATH_IN"):
            tgt_type = self.pools[t].data.get("type", "")
            insub = rel.get("as_tgt_subsystem", "containment")
            for src in self.gen_src.get(s, []):
                for vid in list(g.by_type.get(tgt_type, [])):
                    tgt = g.vertices[vid]
                    if method == "ASSOCIATE_BY_PATH_IN":
                        p1 = _path_prefix(tgt.paths.get(insub, ""), rel.get("as_tgt_uplvl", 1))
                        p2 = _path_prefix(src.paths.get(insub, ""), rel.get("as_src_uplvl", 1))
                        if p1 != p2:
                            continue
                    tgt.paths[esub] = src.paths.get(esub, "") + "/" + tgt.name
                    g.by_path.setdefault(tgt.paths[esub], []).append(tgt.index)
                    tgt.member_of[esub] = "*"
                    g.add_edge(src, tgt, esub)
                    self.gen_src[t].append(tgt)
        else:
            raise GrugError("unknown generation method; ")

    def finish_vertex(self) -> None:
        if self.scales:
            self.scales.pop(0)

    def run(self) -> None:
        # boost::depth_first_search: every vertex in order as a start vertex
        color = [0] * len(self.pools)
        for start in range(len(self.pools)):
            if color[start]:
                continue
            stack = [(start, iter(self.pools[start].out))]
            color[start] = 1
            while stack:
                u, it = stack[-1]
                for ei in it:
                    t = self.rel[ei]["_tgt"]
                    if not color[t]:
                        self.tree_edge(ei)
                        color[t] = 1
                        stack.append((t, iter(self.pools[t].out)))
                        break
                else:
                    color[u] = 2
                    self.finish_vertex()
                    stack.pop()


def load_grug(text: str, graph: ResourceGraph | None = None, rank: int = -1) -> ResourceGraph:
    """Expand a GRUG recipe (GraphML text) into a resource graph."""
    g = graph if graph is not None else ResourceGraph()
    pools, relations = read_recipe(text)
    # Generation allocates many long-lived objects and no cycles worth collecting;
    # pausing the cyclic collector roughly halves load time on big recipes.
    with gcpolicy.paused():
        _Emitter(g, pools, relations, rank).run()
    return g
