"""Graph edits: shrink the graph, mark vertices up or down.

Why a module of its own: these change the graph itself rather than the jobs on it,
and every one of them invalidates the subtree cache; the matcher's filters are
re-primed by the caller (``initialize``) afterwards.
"""

from __future__ import annotations

from .graph import Vertex


class GraphEdits:
    """Remove subgraphs, mark status; mixed into ``Traverser``."""

    # -- graph shrinking (resource-query ``remove``) ------------------------------------
    def _rank_root(self, vids: list[int]) -> Vertex | None:
        best = None
        for vid in vids:
            v = self.g.vertices[vid]
            if best is None or len(v.paths.get(self.dom, "")) < len(best.paths.get(self.dom, "")):
                best = v
        return best

    def _detach_subgraphs(self, roots: list[Vertex], vids: set[int]) -> int:
        for r in roots:
            if self.g.parent_edge(r, self.dom) is None:
                return -1
        for vid in sorted(vids):
            self.g.detach_vertex(self.g.vertices[vid])
        return 0

    def remove_subgraph_path(self, path: str) -> int:
        """Drop the subtree at ``path`` (the last vertex with that path) from the graph."""
        self.cache_flush()
        self.err = ""
        vids = self.g.by_path.get(path)
        if not vids:
            return -1
        root = self.g.vertices[vids[-1]]
        out = {root.index}
        self.subtree(root, out)
        return self._detach_subgraphs([root], out)

    def remove_subgraph_ranks(self, ranks: list[int]) -> int:
        """Drop every vertex of ``ranks`` from the graph."""
        self.cache_flush()
        self.err = ""
        roots: list[Vertex] = []
        out: set[int] = set()
        for rank in ranks:
            vids = self.g.by_rank.get(rank)
            if vids is None:
                continue
            out.update(vids)
            r = self._rank_root(vids)
            if r is None:
                return -1
            roots.append(r)
        return self._detach_subgraphs(roots, out)


    # -- status ----------------------------------------------------------------------
    def subtree(self, v: Vertex, out: set[int]) -> None:
        for e in v.out:
            if e.subsystem == self.dom and e.target not in out:
                out.add(e.target)
                self.subtree(self.g.vertices[e.target], out)

    def mark(self, path: str, status: str) -> int:
        self.cache_flush()
        vids = self.g.by_path.get(path)
        if vids is None:
            self.err += f"mark: could not find subtree path ({path}) in resource graph.\n"
            return -1
        vset: set[int] = set()
        for vid in vids:
            v = self.g.vertices[vid]
            if v.status != status:
                v.status = status
                vset.add(vid)
                self.subtree(v, vset)
        for vid in sorted(vset):
            v = self.g.vertices[vid]
            if v.type == "node":
                self.g.nodes_up += v.size if status == "up" else -v.size
        return 0
