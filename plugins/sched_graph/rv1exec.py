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
    root = g.add_vertex("cluster", "cluster", "cluster0", 0, -1, 1)
    root.paths["containment"] = "/cluster0"
    root.member_of["containment"] = "*"
    g.index_vertex(root, "containment")
    g.roots["containment"] = root.index
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
