"""rv1exec reader: an RFC 20 R (version 1, ``execution`` section) as a resource graph.

The graph is ``cluster0 -> <host> -> <child type><id>`` per rank: one node vertex per
rank named after its host in ``nodelist`` and the node-local resources of
``R_lite[].children``. Node properties come from ``execution.properties``.
"""

from __future__ import annotations

import json
import re

from strato.jobspec.hostlist import expand_hostlist
from strato.jobspec.idset import decode_idset

from .graph import ResourceGraph


class Rv1Error(ValueError):
    """Not a version 1 R with an execution section."""


def parse_r(text: str) -> dict:
    try:
        r = json.loads(text)
    except ValueError as exc:
        raise Rv1Error(f"can't parse R: {exc}") from exc
    if not isinstance(r, dict) or r.get("version") != 1 or "execution" not in r:
        raise Rv1Error("R is not version 1 with an execution section")
    return r


def r_ranks(text: str) -> list[int]:
    """All ranks named by an R's R_lite (for partial cancel)."""
    r = parse_r(text)
    ranks: set[int] = set()
    for entry in r["execution"].get("R_lite", []):
        ranks.update(decode_idset(entry["rank"]))
    return sorted(ranks)


def load_rv1exec(text: str) -> ResourceGraph:
    r = parse_r(text)
    ex = r["execution"]
    g = ResourceGraph()
    root = g.add_cluster_root()
    hosts: list[str] = []
    for h in ex.get("nodelist", []):
        hosts += expand_hostlist(h)
    all_ranks = sorted({rk for e in ex.get("R_lite", []) for rk in decode_idset(e["rank"])})
    rmap = {rk: i for i, rk in enumerate(all_ranks)}
    props: dict[int, dict[str, str]] = {}
    for key, ids in (ex.get("properties") or {}).items():
        for rk in decode_idset(ids):
            props.setdefault(rk, {})[key] = ""
    for entry in ex.get("R_lite", []):
        for rank in decode_idset(entry["rank"]):
            host = hosts[rmap[rank]]
            m = re.search(r"(\d+)$", host)
            hid = int(m.group(1)) if m else -1
            base = host[:m.start()] if m else host
            node = g.add_vertex("node", base, host, hid, rank, 1)
            node.properties = dict(props.get(rank, {}))
            node.paths["containment"] = root.paths["containment"] + "/" + host
            node.member_of["containment"] = "*"
            g.index_vertex(node, "containment")
            g.add_edge(root, node, "containment", fresh=True)
            for ctype, ids in entry.get("children", {}).items():
                for cid in decode_idset(ids):
                    v = g.add_vertex(ctype, ctype, f"{ctype}{cid}", cid, rank, 1)
                    v.paths["containment"] = node.paths["containment"] + "/" + v.name
                    v.member_of["containment"] = "*"
                    g.index_vertex(v, "containment")
                    g.add_edge(node, v, "containment", fresh=True)
    return g


def rv1exec_update(trav, text: str, jobid: int, at: int, duration: int,
                   share_partial_nodes: bool = False) -> None:
    """Record an existing allocation described by an RV1 R (Fluxion's rv1exec ``update``).

    Every listed child of a rank gets a span of its size; the rank's node vertex
    gets one too once all its children are taken. The edges from the cluster to the
    nodes and from the nodes to their children are marked for the traverser's update
    walk, and the cluster is shared. Raises Rv1Error after undoing the spans added.

    As Fluxion's reader, a node is marked exclusive to the job; with
    `share_partial_nodes` (a scheduler taking over the jobs of an instance, whose
    jobs may share nodes) only a node whose every child the job holds is.
    """
    g = trav.g
    try:
        r = parse_r(text)
        ex = r["execution"]
        rlite = ex["R_lite"]
        nodelist = ex["nodelist"]
    except (Rv1Error, KeyError, TypeError) as exc:
        raise Rv1Error(f"unpack_internal: {exc}") from exc
    hosts: list[str] = []
    for h in nodelist:
        hosts += expand_hostlist(h)
    all_ranks = sorted({rk for e in rlite for rk in decode_idset(e["rank"])})
    rmap = {rk: i for i, rk in enumerate(all_ranks)}
    dom = "containment"
    if dom not in g.roots:
        raise Rv1Error("unpack_rlite: no containment root")
    root = g.vertices[g.roots[dom]]
    if dom == trav.dom:
        trav.rt_needs, trav.rt_excl, trav.rt_seq = root.size, 0, trav.seq
    updated: dict[int, list] = {}

    def find(parent, id_: int, type_: str, name: str, rank: int):
        path = parent.paths.get(dom, "") + "/" + name
        for vid in g.by_path.get(path, []):
            v = g.vertices[vid]
            if v.rank == rank and v.id == id_ and v.size == 1 and v.type == type_:
                return v
        raise Rv1Error(f"add_or_update: couldn't find vertex in graph for {name}.")

    def mark_edge(src, dst, exclusive: int = 1) -> None:
        for e in src.out:
            if e.target == dst.index:
                trav.mark_edge(e, dst.size, exclusive)
                return
        raise Rv1Error("update_edges: rv1exec edge not found in resource graph.")

    def book(v, rank: int) -> None:
        if v.plans.avail_resources_during(at, duration) < v.size:
            raise Rv1Error(f"update_vertex: {v.name} is unavailable.")
        if v.type == "node":
            return
        v.allocations[jobid] = v.plans.add_span(at, duration, v.size)
        updated.setdefault(rank, []).append(v)

    try:
        for entry in rlite:
            for rank in decode_idset(entry["rank"]):
                host = hosts[rmap[rank]]
                m = re.search(r"(\d+)$", host)
                node = find(root, int(m.group(1)) if m else -1, "node", host, rank)
                book(node, rank)
                if not share_partial_nodes:
                    mark_edge(root, node)
                edge_to = None  # the node's out-edges by target, made once per node
                for ctype, ids in entry.get("children", {}).items():
                    for cid in decode_idset(ids):
                        child = find(node, cid, ctype, f"{ctype}{cid}", rank)
                        book(child, rank)
                        if edge_to is None:
                            edge_to = {e.target: e for e in node.out}
                        e = edge_to.get(child.index)
                        if e is None:
                            raise Rv1Error("update_edges: rv1exec edge not found in resource "
                                           "graph.")
                        trav.mark_edge(e, child.size, 1)
                done = updated.get(rank)
                if done is None:
                    raise Rv1Error("update_exclusivity: rank not found in agfilters map.")
                whole = len(done) == len(g.by_rank.get(rank, [])) - 1
                if whole:
                    node.allocations[jobid] = node.plans.add_span(at, duration, node.size)
                    done.append(node)
                if share_partial_nodes:
                    mark_edge(root, node, 1 if whole else 0)
    except (Rv1Error, ValueError, KeyError, IndexError) as exc:
        for vs in updated.values():
            for v in vs:
                span = v.allocations.pop(jobid, None)
                if span is not None:
                    v.plans.rem_span(span)
        raise Rv1Error(str(exc)) from exc
