"""JGF reader: build (or grow) a resource graph from JSON Graph Format.

Vertices are taken in document order; a vertex whose path already exists with the
same rank is reused (so ``attach`` can grow a graph), and an edge is added only when
it touches a newly added vertex. Defaults follow Fluxion: ``uniq_id`` from the JGF
node id, ``id`` from the uniq id (or a node name's numeric suffix), ``basename`` from
the type, ``size`` 1.
"""

from __future__ import annotations

import json
import re

from .graph import ResourceGraph, Vertex


class JgfError(Exception):
    """The document is not a usable JGF graph."""


def _fetch(text: str) -> tuple[dict, list, list]:
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise JgfError(f"json_loads: {exc}") from exc
    graph = doc.get("graph") if isinstance(doc, dict) else None
    if not isinstance(graph, dict):
        raise JgfError("fetch_jgf: JGF does not contain a graph")
    nodes = graph.get("nodes")
    edges = graph.get("edges")
    if nodes is None or edges is None:
        raise JgfError("fetch_jgf: JGF does not contain nodes or edges")
    return doc, nodes, edges


def vertex_fields(node: dict) -> dict:
    """Fluxion's view of one JGF node, with its defaults applied."""
    if not isinstance(node, dict) or "id" not in node or "metadata" not in node:
        raise JgfError("fill_fetcher: error unpacking a vertex")
    md = node["metadata"]
    if "type" not in md or "paths" not in md:
        raise JgfError("fill_fetcher: error unpacking a vertex")
    vid = str(node["id"])
    uniq_id = md.get("uniq_id")
    if uniq_id is None:
        try:
            uniq_id = int(vid)
        except ValueError as exc:
            raise JgfError(f"apply_defaults: bad vertex id {vid}") from exc
    name = md.get("name")
    id_ = md.get("id")
    if id_ is None:
        id_ = uniq_id
        if md["type"] == "node" and name is not None:
            m = re.search(r"(\d+)$", name)
            if m:
                id_ = int(m.group(1))
    basename = md.get("basename") or md["type"]
    return {
        "vid": vid, "type": md["type"], "basename": basename,
        "name": name if name is not None else f"{basename}{id_}", "id": id_,
        "uniq_id": uniq_id, "rank": md.get("rank", -1), "size": md.get("size", 1),
        "unit": md.get("unit") or "", "exclusive": bool(md.get("exclusive", False)),
        "status": md.get("status", 0), "paths": dict(md["paths"]),
        "properties": dict(md.get("properties") or {}),
    }


def _edge_ends(e: object, vmap: dict, missing_ok: bool = False) -> tuple[str, str] | None:
    """The source and target vertex ids of JGF edge `e`. JgfError if `e` is not an
    edge, or if either vertex is not in `vmap` (None instead with `missing_ok`)."""
    try:
        src, tgt = str(e["source"]), str(e["target"])
    except (KeyError, TypeError) as exc:
        raise JgfError("unpack_edge: encountered a malformed edge.") from exc
    if src not in vmap or tgt not in vmap:
        if missing_ok:
            return None
        raise JgfError(f"unpack_edge: source and/or target vertex not found{src} -> {tgt}.")
    return src, tgt


def _find_existing(g: ResourceGraph, f: dict) -> Vertex | None:
    for path in sorted(f["paths"].values()):
        for idx in g.by_path.get(path, []):
            v = g.vertices[idx]
            if v.rank == f["rank"] and not v.removed:
                return v
    return None


def load_jgf(text: str, graph: ResourceGraph | None = None, allowlist: str = "") -> ResourceGraph:
    """Build a graph from JGF text, or add the new part of it to ``graph``."""
    g = graph if graph is not None else ResourceGraph()
    _, nodes, edges = _fetch(text)
    vmap: dict[str, Vertex] = {}
    added: set[str] = set()
    for node in nodes:
        f = vertex_fields(node)
        v = _find_existing(g, f)
        if v is None:
            if f["vid"] in vmap:
                raise JgfError(f"add_vtx: found duplicate JGF node id for {f['vid']}.")
            # Fluxion's JGF reader parses "unit" but never stores it on the vertex.
            v = g.add_vertex(f["type"], f["basename"], f["name"], f["id"], f["rank"],
                             f["size"], "", f["uniq_id"])
            v.properties = f["properties"]
            v.paths = dict(sorted(f["paths"].items()))
            if f["status"] not in (0, "up"):
                v.status = "down"
            for sub, path in v.paths.items():
                v.member_of[sub] = "*"
                if path.count("/") == 1:
                    if sub in g.roots:
                        raise JgfError(f"add_graph_metadata: failed to add root metadata for "
                                       f"{sub} subsystem. Possible duplicate root.")
                    g.roots[sub] = v.index
                g.by_path.setdefault(path, []).append(v.index)
            g.by_type.setdefault(v.type, []).append(v.index)
            g.by_name.setdefault(v.name, []).append(v.index)
            g.by_rank.setdefault(v.rank, []).append(v.index)
            added.add(f["vid"])
        vmap[f["vid"]] = v
    for e in edges:
        src, tgt = _edge_ends(e, vmap)
        sub = (e.get("metadata") or {}).get("subsystem", "containment")
        if src in added or tgt in added:
            g.add_edge(vmap[src], vmap[tgt], sub)
    return g


def jgf_partial_cancel(trav, jobid: int, text: str) -> bool:
    """Release the vertices of ``jobid`` listed in a JGF document (Fluxion's JGF reader).

    Each listed vertex must exist and carry the job; its spans are removed and the
    freed amounts, per rank and type, are then taken off its ancestors' filters.
    Returns whether the job is now fully released; raises JgfError for a malformed
    document and InvalidRequest for one that does not match the graph.
    """
    from .errors import InvalidRequest
    from .update import partial_cancel

    g = trav.g
    dom = trav.dom
    trav.total_preorder = trav.total_postorder = 0
    if jobid <= 0:
        raise JgfError("partial_cancel: invalid jobid")
    _, nodes, _ = _fetch(text)
    counts: dict[int, dict[str, int]] = {}
    roots: dict[int, object] = {}
    best: dict[int, int] = {}
    for node in nodes:
        f = vertex_fields(node)
        v = None
        for path in f["paths"].values():
            found = [g.vertices[i] for i in g.by_path.get(path, [])
                     if g.vertices[i].rank == f["rank"]]
            if not found:
                trav.err += (f"exist: inconsistent input vertex: nonexistent path ({path}) "
                             f"{f['vid']}.\n")
                raise InvalidRequest(trav.err)
            v = found[0]
        if v is None:
            continue
        if jobid in v.job2span:
            sp = v.subplans.get(dom)
            if sp is not None:
                sp.rem_span(v.job2span.pop(jobid))
        if jobid not in v.x_spans:
            trav.err += f"cancel_vtx: can't find x_checker span for job {jobid} in {v.name}.\n"
            raise InvalidRequest(trav.err)
        v.tags.pop(jobid, None)
        v.x_checker.rem_span(v.x_spans.pop(jobid))
        if jobid not in v.allocations:
            trav.err += f"cancel_vtx: can't find allocation span for job {jobid} in {v.name}.\n"
            raise InvalidRequest(trav.err)
        span = v.allocations.pop(jobid)
        amount = v.plans.span(span).request
        v.plans.rem_span(span)
        c = counts.setdefault(v.rank, {})
        c[v.type] = c.get(v.type, 0) + amount
        plen = len(v.paths.get(dom, ""))
        if plen < best.get(v.rank, 2**32):
            best[v.rank] = plen
            roots[v.rank] = v
    return partial_cancel(trav, jobid, sorted(counts), counts, roots)  # type: ignore[arg-type]


def _find_vtx(g: ResourceGraph, f: dict) -> Vertex:
    """The graph vertex a JGF node of an ``update`` names (all its paths must agree)."""
    v = None
    for path in f["paths"].values():
        found = [g.vertices[i] for i in g.by_path.get(path, []) if g.vertices[i].rank == f["rank"]]
        if not found:
            raise JgfError(f"exist: inconsistent input vertex: nonexistent path ({path}) "
                           f"{f['vid']}.")
        if v is None:
            v = found[0]
        elif v is not found[0]:
            raise JgfError(f"find_vtx: inconsistent input vertex for {path} (id={f['vid']}).")
    if v is None or (v.type, v.basename, v.size, v.rank, v.id, v.name, v.paths) != (
            f["type"], f["basename"], f["size"], f["rank"], f["id"], f["name"],
            dict(sorted(f["paths"].items()))):
        raise JgfError(f"find_vtx: inconsistent input vertex for {f['vid']}.")
    return v


def jgf_update(trav, text: str, jobid: int, at: int, duration: int,
               shorthand: bool = False) -> None:
    """Record an existing allocation described by a JGF R (Fluxion's JGF ``update``).

    Exclusive vertices get a span of their whole size; the edges the R lists are
    marked for the traverser's update walk, and the root's virtual edge when the R
    names the root of a subsystem. Raises JgfError (after undoing the spans added).
    """
    g = trav.g
    doc, nodes, edges = _fetch(text)
    skip_ranks: set[int] | None = None
    if isinstance(doc, dict) and doc.get("free_ranks") is not None:
        from strato.jobspec.idset import decode_idset

        skip_ranks = set(decode_idset(str(doc["free_ranks"]).replace('"', "")))
    vmap: dict[str, list] = {}  # vid -> [vertex, needs, exclusive, root subsystems]
    added: list[Vertex] = []

    def book(v: Vertex, f: dict) -> None:
        if f["exclusive"]:
            added.append(v)
            v.allocations[jobid] = v.plans.add_span(at, duration, v.size)
        elif v.plans.avail_resources_during(at, duration) < v.size:
            raise JgfError(f"update_vtx_plan: {v.name} is unavailable.")

    extra_edges: list[tuple[Vertex, Vertex]] = []
    try:
        for node in nodes:
            f = vertex_fields(node)
            if f["vid"] in vmap:
                raise JgfError(f"find_vtx: found duplicate JGF node id for {f['vid']}.")
            v = _find_vtx(g, f)
            if skip_ranks and f["rank"] in skip_ranks:
                continue
            roots = [s for s, p in v.paths.items() if p.count("/") == 1]
            vmap[f["vid"]] = [v, f["size"], f["exclusive"], roots]
            book(v, f)
            if shorthand and f["exclusive"]:
                stack = [v]
                while stack:
                    u = stack.pop(0)
                    for e in u.out:
                        if e.subsystem != "containment":
                            continue
                        c = g.vertices[e.target]
                        extra_edges.append((u, c))
                        book(c, {"exclusive": True})
                        stack.append(c)
    except (JgfError, ValueError) as exc:
        for v in added:
            span = v.allocations.pop(jobid, None)
            if span is not None:
                v.plans.rem_span(span)
        raise JgfError(str(exc)) from exc

    def mark_root(entry: list) -> None:
        for s in entry[3]:
            if s == trav.dom:
                trav.rt_needs, trav.rt_excl, trav.rt_seq = entry[1], int(entry[2]), trav.seq
        entry[3] = []

    def mark_edge(src: Vertex, tgt: Vertex, needs: int, excl: bool) -> None:
        for e in src.out:
            if e.target == tgt.index:
                trav.mark_edge(e, needs, int(excl))
                return
        raise JgfError(f"update_tgt_edge: JGF edge from {src.uniq_id} to {tgt.uniq_id} "
                       "not found in resource graph.")

    for e in edges:
        ends = _edge_ends(e, vmap, missing_ok=skip_ranks is not None)
        if ends is None:
            continue
        src, tgt = ends
        mark_root(vmap[src])
        mark_edge(vmap[src][0], vmap[tgt][0], vmap[tgt][1], vmap[tgt][2])
    for u, c in extra_edges:
        mark_edge(u, c, c.size, True)
