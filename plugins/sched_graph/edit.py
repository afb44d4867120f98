"""Graph edits: grow or shrink the graph, mark vertices up or down, set properties.

Why a module of its own: these change the graph itself rather than the jobs on it,
and every one of them invalidates the subtree cache. After removing subgraphs the
caller re-primes the matcher's filters (``initialize(node_stats=False)``);
``attach_jgf`` does it itself.
"""

from __future__ import annotations

from .errors import InvalidRequest, Unsatisfiable
from .graph import Vertex


class GraphEdits:
    """Grow and shrink the graph, mark status, set properties; mixed into ``Traverser``."""

    def attach_jgf(self, text: str) -> None:
        """Add the vertices and edges of JGF document ``text`` to the graph and re-prime
        the filters. Raises InvalidRequest ("reader returned error: ..." or
        "reinitializing traverser after adding subgraph. ...")."""
        from .jgf import JgfError, load_jgf

        self.cache_flush()
        try:
            load_jgf(text, graph=self.g)
        except JgfError as exc:
            raise InvalidRequest(f"reader returned error: {exc}") from exc
        try:
            self.initialize(node_stats=False)
        except ValueError as exc:
            raise InvalidRequest(
                f"reinitializing traverser after adding subgraph. {exc}") from exc

    def vertices_at(self, path: str) -> list[Vertex]:
        """The vertices whose dominant path is ``path``; Unsatisfiable if there are none."""
        vids = self.g.by_path.get(path)
        if vids is None:
            raise Unsatisfiable(f"no vertex at {path}")
        return [self.g.vertices[vid] for vid in vids]

    def set_property(self, path: str, key: str, value: str) -> None:
        """Set property ``key`` to ``value`` on the vertices at ``path`` (a constraint's
        ``properties`` and the ``variation`` policy's ``perf_class`` read them).
        Unsatisfiable for an unknown path."""
        self.cache_flush()
        for v in self.vertices_at(path):
            v.properties[key] = value

    # -- graph shrinking (resource-query ``remove``) ------------------------------------
    def _rank_root(self, vids: list[int]) -> Vertex | None:
        best = None
        for vid in vids:
            v = self.g.vertices[vid]
            if best is None or len(v.paths.get(self.dom, "")) < len(best.paths.get(self.dom, "")):
                best = v
        return best

    def _detach_subgraphs(self, roots: list[Vertex], vids: set[int]) -> None:
        for r in roots:
            if self.g.parent_edge(r, self.dom) is None:
                raise InvalidRequest(self.err)  # the graph's root can't be removed
        for vid in sorted(vids):
            self.g.detach_vertex(self.g.vertices[vid])

    def remove_subgraph_path(self, path: str) -> None:
        """Drop the subtree at ``path`` (the last vertex with that path) from the graph.

        Raises Unsatisfiable for an unknown path, InvalidRequest for the root.
        """
        self.cache_flush()
        self.err = ""
        vids = self.g.by_path.get(path)
        if not vids:
            raise Unsatisfiable(self.err)
        root = self.g.vertices[vids[-1]]
        out = {root.index}
        self.subtree(root, out)
        self._detach_subgraphs([root], out)

    def remove_subgraph_ranks(self, ranks: list[int]) -> None:
        """Drop every vertex of ``ranks`` from the graph (unknown ranks are skipped).

        Raises InvalidRequest when that would remove the graph's root.
        """
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
                raise InvalidRequest(self.err)
            roots.append(r)
        self._detach_subgraphs(roots, out)

    # -- status ----------------------------------------------------------------------
    def subtree(self, v: Vertex, out: set[int]) -> None:
        for e in v.out:
            if e.subsystem == self.dom and e.target not in out:
                out.add(e.target)
                self.subtree(self.g.vertices[e.target], out)

    def mark(self, path: str, status: str) -> None:
        """Set the vertices at ``path`` and their subtrees ``up`` or ``down``.

        Raises Unsatisfiable for an unknown path.
        """
        self.cache_flush()
        vids = self.g.by_path.get(path)
        if vids is None:
            self.err += f"mark: could not find subtree path ({path}) in resource graph.\n"
            raise Unsatisfiable(self.err)
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
