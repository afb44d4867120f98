"""Match writers: how a selected resource set is printed (Fluxion's match formats).

The traverser calls ``emit_vertex`` for each selected vertex in post-order (children
first) and ``emit_edge`` for each selected edge, then ``emit_tm`` with the span;
``emit`` returns the text for one match and resets the writer.
"""

from __future__ import annotations

import json

from .graph import ResourceGraph, Vertex

FORMATS = ("simple", "pretty_simple", "jgf", "jgf_shorthand", "rlite", "rv1", "rv1_nosched",
           "rv1_shorthand")


def dumps(obj) -> str:
    """JSON as jansson's JSON_INDENT(0) writes it: one line, ", " and ": " separators."""
    return json.dumps(obj, separators=(", ", ": "), ensure_ascii=False)


class Writer:
    def emit_vertex(self, g: ResourceGraph, v: Vertex, prefix: str, needs: int,
                    exclusive: bool, excl_parent: bool) -> None:
        raise NotImplementedError

    def emit_edge(self, g: ResourceGraph, e, excl_parent: bool) -> None:
        pass

    def emit_tm(self, start: int, end: int) -> None:
        pass

    def emit(self) -> str:
        raise NotImplementedError


class SimpleWriter(Writer):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def emit_vertex(self, g, v, prefix, needs, exclusive, excl_parent) -> None:
        self.lines.append(f"{prefix}{v.name}[{needs}:{'x' if exclusive else 's'}]\n")

    def emit(self) -> str:
        out = "".join(self.lines)
        self.lines = []
        return out


class PrettySimpleWriter(SimpleWriter):
    def emit_vertex(self, g, v, prefix, needs, exclusive, excl_parent) -> None:
        mode = "exclusive" if exclusive else "shared"
        self.lines.insert(0, f"{prefix}{v.name}[{needs}:{mode}]\n")


def vertex_metadata(v: Vertex, needs: int, exclusive: bool, seq: int | None = None,
                    agfilter: dict | None = None) -> dict:
    m: dict = {"type": v.type}
    if v.basename != v.type:
        m["basename"] = v.basename
    if v.name != f"{v.basename}{v.id}":
        m["name"] = v.name
    m["id"] = v.id
    m["rank"] = v.rank
    if v.properties:
        m["properties"] = dict(sorted(v.properties.items()))
    if v.unit:
        m["unit"] = v.unit
    if exclusive:
        m["exclusive"] = True
    if needs != 1:
        m["size"] = needs
    if v.paths:
        m["paths"] = dict(sorted(v.paths.items()))
    eph = {k: val for k, val in v.ephemeral.items() if not k.startswith("_")}
    if eph and (seq is None or v.ephemeral.get("_seq") == str(seq)):
        m["ephemeral"] = eph
    if agfilter:
        m["agfilter"] = dict(sorted(agfilter.items()))
    return m


class JgfWriter(Writer):
    def __init__(self, shorthand: bool = False) -> None:
        self.nodes: list[dict] = []
        self.edges: list[dict] = []
        self.seq: int | None = None
        self.shorthand = shorthand
        self.agfilter: dict | None = None  # set by ``find agfilter=t`` per vertex

    def emit_vertex(self, g, v, prefix, needs, exclusive, excl_parent) -> None:
        if self.shorthand and excl_parent:
            return
        self.nodes.append({"id": str(v.uniq_id),
                           "metadata": vertex_metadata(v, needs, exclusive, self.seq,
                                                       self.agfilter)})

    def emit_edge(self, g, e, excl_parent) -> None:
        if self.shorthand and excl_parent:
            return
        d = {"source": str(g.vertices[e.source].uniq_id),
             "target": str(g.vertices[e.target].uniq_id)}
        if e.subsystem != "containment":
            d["metadata"] = {"subsystem": e.subsystem}
        self.edges.append(d)

    def graph(self) -> dict | None:
        if not self.nodes and not self.edges:
            return None
        return {"graph": {"nodes": self.nodes, "edges": self.edges}}

    def emit(self) -> str:
        o = self.graph()
        self.nodes, self.edges = [], []
        return dumps(o) + "\n" if o is not None else ""


class Rv1Writer(Writer):
    """RFC 20 R: R_lite per rank, nodelist, times; ``rv1`` adds the JGF as scheduling."""

    def __init__(self, with_jgf: bool) -> None:
        self.jgf = JgfWriter() if with_jgf else None
        self.ranks: dict[int, dict[str, list[int]]] = {}
        self.hosts: dict[int, str] = {}
        self.tm: tuple[int, int] | None = None
        # rank-less cores/gpus (hwloc graphs) go to the node emitted after them
        self.pending: dict[str, list[int]] = {}

    def emit_vertex(self, g, v, prefix, needs, exclusive, excl_parent) -> None:
        if self.jgf is not None:
            self.jgf.emit_vertex(g, v, prefix, needs, exclusive, excl_parent)
        if v.type == "node":
            self.hosts[v.rank] = v.name
            children = self.ranks.setdefault(v.rank, {})
            for t, ids in self.pending.items():
                children.setdefault(t, []).extend(ids)
            self.pending = {}
        elif exclusive and v.type in ("core", "gpu"):
            if v.rank >= 0:
                self.ranks.setdefault(v.rank, {}).setdefault(v.type, []).append(v.id)
            else:
                self.pending.setdefault(v.type, []).append(v.id)

    def emit_edge(self, g, e, excl_parent) -> None:
        if self.jgf is not None:
            self.jgf.emit_edge(g, e, excl_parent)

    def emit_tm(self, start, end) -> None:
        self.tm = (start, end)

    def emit(self) -> str:
        from strato.jobspec.hostlist import compress_hostlist
        from strato.jobspec.idset import encode_idset

        if not self.ranks and self.tm is None:
            return ""
        # As Fluxion: ranks with the same children are merged, and the groups are
        # ordered by their children's JSON text.
        groups: dict[str, tuple[list[int], dict]] = {}
        for rank in sorted(self.ranks):
            ch = {t: encode_idset(ids) for t, ids in sorted(
                self.ranks[rank].items(), key=lambda kv: ("core", "gpu").index(kv[0]))}
            groups.setdefault(dumps(ch), ([], ch))[0].append(rank)
        rlite = [{"rank": encode_idset(r), "children": ch}
                 for _, (r, ch) in sorted(groups.items())]
        start, end = self.tm or (0, 0)
        execution = {"R_lite": rlite,
                     "nodelist": [compress_hostlist(self.hosts[r] for r in sorted(self.hosts))],
                     "starttime": start, "expiration": end}
        o: dict = {"version": 1, "execution": execution}
        if self.jgf is not None:
            gr = self.jgf.graph()
            self.jgf.nodes, self.jgf.edges = [], []
            if gr is not None:
                o["scheduling"] = gr
        self.ranks, self.hosts, self.tm, self.pending = {}, {}, None, {}
        return dumps(o) + "\n"


class RliteWriter(Rv1Writer):
    """``rlite``: only the R_lite array of the match (as Fluxion's rlite writer)."""

    def __init__(self) -> None:
        super().__init__(with_jgf=False)

    def emit(self) -> str:
        text = super().emit()
        if not text:
            return ""
        return dumps(json.loads(text)["execution"]["R_lite"]) + "\n"


def create_writer(fmt: str) -> Writer:
    if fmt == "pretty_simple":
        return PrettySimpleWriter()
    if fmt in ("jgf", "jgf_shorthand"):
        return JgfWriter(shorthand=fmt == "jgf_shorthand")
    if fmt in ("rv1", "rv1_shorthand"):
        return Rv1Writer(with_jgf=True)
    if fmt == "rlite":
        return RliteWriter()
    if fmt == "rv1_nosched":
        return Rv1Writer(with_jgf=False)
    return SimpleWriter()
