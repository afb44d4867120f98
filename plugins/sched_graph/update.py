"""Booking and releasing jobs: the update walk, cancel, partial cancel.

Why a module of its own: after ``select`` marked edges, ``update`` walks only the
marked edges, books spans (allocation or reservation) in the vertices' planners and
subtree filters and emits the selected vertices to the writer, children first.
``remove`` undoes a job (visiting only the job's vertices on a tree),
``partial_cancel`` releases part of one (some ranks), ``remove_ranks`` releases
every job's hold on ranks about to leave the graph, and ``run_update`` records an
allocation that was made elsewhere (an R).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import EINVAL, InvalidRequest, MatchError, Unsatisfiable, error_for
from .graph import Edge, Vertex
from .matching import AT_ALLOC, AT_ALLOC_ORELSE_RESERVE, AT_NO_ALLOC, JobMeta

if TYPE_CHECKING:
    from .traverser import Traverser


class Updating:
    """Book, release and record allocations; mixed into ``Traverser``."""

    # -- update: book and emit -----------------------------------------------------
    def update(self, root: Vertex, writer, meta: JobMeta) -> int:
        """Book and emit what ``select`` marked; 0, or -1 with the walk's reason set."""
        if self.rt_seq != self.seq:
            self._errno = EINVAL
            self.err += "update: resource state wasn't properly set up for update.\n"
            return -1
        self.reset_color()
        emit_shadow = root.type in self.policy.x_types
        self.trav_level = 0
        n = self.upd_dfv(root, writer, self.rt_needs, bool(self.rt_excl), meta, True, {},
                         emit_shadow, False)
        if n > 0:
            writer.emit_tm(meta.at, meta.at + meta.duration)
            return 0
        return -1

    def upd_dfv(self, u: Vertex, w, needs: int, excl: bool, meta: JobMeta, full: bool,
                to_parent: dict[str, int], emit_shadow: bool, excl_parent: bool) -> int:
        n_plans = 0
        dfu: dict[str, int] = {}
        dom = self.dom
        mod = emit_shadow or u.type in self.policy.x_types
        excl = excl or mod
        self._mcache.pop(u.index, None)
        self.trav_level += 1
        u.colors[dom] = self._gray()
        verts = self.g.vertices
        if mod:
            edges = u.out
        else:
            # only edges marked with this seq can be walked: take them in out-list order
            rec = self.marked.get(u.index)
            if not rec:
                edges = ()
            elif len(rec) == 1:
                edges = tuple(rec.values())
            else:
                edges = [rec[k] for k in sorted(rec)]
        for s in self.subsystems:
            for e in edges:
                if e.subsystem != s or (e.seq != self.seq and not mod) or self.stop_explore(e, s):
                    continue
                tgt = verts[e.target]
                x = bool(e.exclusive) or mod
                c_needs = tgt.size if mod else e.needs
                n_sub = 0
                if s == dom:
                    n_sub = self.upd_dfv(tgt, w, c_needs, x, meta, full, dfu, mod, excl)
                if n_sub > 0:
                    if self.policy.stop_on_k_matches > 0:
                        self.upd_by_outedges(s, meta, u, e)
                    w.emit_edge(self.g, e, excl)
                    n_plans += n_sub
        u.colors[dom] = self._black()
        return self.upd_sched(u, w, needs, excl, n_plans, meta, full, dfu, to_parent,
                              excl_parent)

    def upd_by_outedges(self, s: str, meta: JobMeta, u: Vertex, e: Edge) -> None:
        tgt = self.g.vertices[e.target]
        sp = tgt.subplans.get(s)
        if sp is None or not sp.resource_types:
            return
        avail = sp.avail_at(meta.now, sp.resource_types[-1])
        if avail == 0 and sp.spans == 0:
            return
        m = self.g.by_outedges[u.index]
        m.pop((e.weight, tgt.uniq_id), None)
        e.weight = 0 if avail == -1 else avail
        m[(e.weight, tgt.uniq_id)] = e

    def upd_sched(self, u: Vertex, w, needs: int, excl: bool, n: int, meta: JobMeta,
                  full: bool, dfu: dict[str, int], to_parent: dict[str, int],
                  excl_parent: bool) -> int:
        if meta.alloc_type == AT_NO_ALLOC:
            if excl:
                n += 1
        else:
            if excl:
                n += 1
                if full:
                    span = u.plans.add_span(meta.at, meta.duration, needs)
                    if meta.alloc_type == AT_ALLOC:
                        u.allocations[meta.jobid] = span
                    elif meta.alloc_type == AT_ALLOC_ORELSE_RESERVE:
                        u.reservations[meta.jobid] = span
            if n > 0:
                u.tags[meta.jobid] = meta.jobid
                jv = self.job_vertices.get(meta.jobid)
                if jv is None:
                    self.job_vertices[meta.jobid] = [u]
                else:
                    jv.append(u)
                u.x_spans[meta.jobid] = u.x_checker.add_span(meta.at, meta.duration, 1)
                sp = u.subplans.get(self.dom)
                if sp is not None and dfu:
                    u.job2span[meta.jobid] = sp.add_span(meta.at, meta.duration,
                                                         self.relevant(sp, dfu))
                if excl:
                    self.accum_if(u.type, u.size, to_parent)
                else:
                    self.accum_if(u.type, u.size - needs, to_parent)
                for t, c in dfu.items():
                    self.accum_if(t, c, to_parent)
        if n > 0:
            w.emit_vertex(self.g, u, self.level(), needs, excl, excl_parent)
        self.trav_level -= 1
        return n

    def level(self) -> str:
        return "      " + "---" * self.trav_level

    # -- removal -------------------------------------------------------------------
    def remove(self, jobid: int) -> None:
        """Release everything ``jobid`` holds (allocation or reservation); cannot fail."""
        self.err = ""
        self.preorder = 0
        self.postorder = 0
        root = self.root()
        self.reset_color()
        if jobid in root.tags:
            if self._is_dom_tree() and jobid in self.job_vertices:
                self._mod_indexed(root, jobid)
            else:
                self.mod_dfv(root, jobid)
                self._prune_job_index(jobid)
        else:
            self.mod_exv(jobid)
        self.total_preorder, self.total_postorder = self.preorder, self.postorder

    def _mod_indexed(self, root: Vertex, jobid: int) -> None:
        """``mod_dfv(root, jobid)`` on a tree, visiting only the job's vertices.

        ``mod_dfv`` releases the tagged vertices reached from the root through tagged
        vertices, and visits every dominant child of each of them: on a tree that is
        PREORDER = 1 + their dominant out-degrees, POSTORDER = their number. Those are
        the counts reported, without walking the untagged children.
        """
        g = self.g
        dom = self.dom
        verts = g.vertices
        cand = self.job_vertices.pop(jobid)
        reached: dict[int, bool] = {root.index: True}

        def is_reached(v: Vertex) -> bool:
            chain = []
            while True:
                r = reached.get(v.index)
                if r is not None:
                    break
                if jobid not in v.tags:
                    r = False
                    break
                pe = g.parent_edge(v, dom)
                if pe is None:  # another root: mod_dfv never gets there
                    r = False
                    break
                chain.append(v.index)
                v = verts[pe.source]
            for i in chain:
                reached[i] = r
            return r

        seen: set[int] = set()
        todo: list[Vertex] = []
        for v in cand:
            if v.index in seen:
                continue
            seen.add(v.index)
            if jobid in v.tags and is_reached(v):
                todo.append(v)
        if root.index not in seen:
            todo.append(root)
        outdeg = self._dom_outdeg
        pre = 1
        for u in todo:
            pre += outdeg.get(u.index, 0)
            self._release(u, jobid, dom)
        self.preorder += pre
        self.postorder += len(todo)
        self.job_vertices[jobid] = cand
        self._prune_job_index(jobid)

    def _prune_job_index(self, jobid: int) -> None:
        """Keep only the vertices that still hold something of ``jobid``."""
        cand = self.job_vertices.pop(jobid, None)
        if cand:
            rest = [v for v in cand if jobid in v.tags or jobid in v.allocations
                    or jobid in v.reservations]
            if rest:
                self.job_vertices[jobid] = rest

    def mod_dfv(self, u: Vertex, jobid: int) -> None:
        self.preorder += 1
        dom = self.dom
        u.colors[dom] = self._gray()
        if jobid not in u.tags:
            return
        self._release(u, jobid, dom)
        verts = self.g.vertices
        for s in self.subsystems:
            for e in u.out:
                if e.subsystem != s or self.stop_explore(e, s):
                    continue
                if s == dom:
                    self.mod_dfv(verts[e.target], jobid)
        u.colors[dom] = self._black()
        self.postorder += 1

    def _release(self, u: Vertex, jobid: int, dom: str) -> None:
        """Release what `jobid` holds on the tagged vertex `u`: its tag, exclusivity,
        subtree filter span and planned span."""
        self._mcache.pop(u.index, None)
        _drop_tag(u, jobid, dom)
        self._mod_plan(u, jobid)

    @staticmethod
    def _mod_plan(u: Vertex, jobid: int) -> None:
        if jobid in u.allocations:
            u.plans.rem_span(u.allocations.pop(jobid))
        elif jobid in u.reservations:
            u.plans.rem_span(u.reservations.pop(jobid))

    def mod_exv(self, jobid: int) -> None:
        self.cache_flush()
        for v in self.g.vertices:
            self._mod_plan(v, jobid)
        self.job_vertices.pop(jobid, None)

    # -- update: record an allocation from its R ------------------------------------------
    def run_update(self, book, writer, jobid: int, at: int, duration: int) -> None:
        """Record an existing allocation (Fluxion's ``run`` from an R string).

        ``book()`` is the reader's part: it adds the vertices' spans and marks the
        R's edges (and the root's virtual edge) with the new sequence number, raising
        ValueError on error. The update walk then books the filters and emits the R.
        Raises InvalidRequest when ``book()`` fails, MatchError when the walk does.
        """
        self.err = ""
        self._errno = ""
        self.tick()
        self.cache_flush()
        try:
            book()
        except ValueError as exc:
            self.err += f"{exc}\n"
            raise InvalidRequest(self.err) from exc
        if self.rt_seq != self.seq:
            return  # the R came from another dominant subsystem
        self.reset_color()
        root = self.root()
        meta = JobMeta(AT_ALLOC, jobid, at, at, duration)
        self.trav_level = 0
        n = self.upd_dfv(root, writer, self.rt_needs, bool(self.rt_excl), meta, False, {},
                         root.type in self.policy.x_types, False)
        if n <= 0:
            raise error_for(self._errno, self.err)
        writer.emit_tm(at, at + duration)

    def clear_vertex(self, v: Vertex, counts: dict[str, int]) -> None:
        """Forget every job on ``v``, adding what its allocations held to ``counts``."""
        self.cache_flush()
        total = 0
        for span in v.allocations.values():
            total += v.plans.span(span).request
        counts[v.type] = counts.get(v.type, 0) + total
        v.plans.clear()
        sp = v.subplans.get(self.dom)
        if sp is not None:
            sp.clear()
        v.tags.clear()
        v.x_spans.clear()
        v.job2span.clear()
        v.allocations.clear()
        v.reservations.clear()

    def cancel_partial_vertex(self, v: Vertex, jobid: int, counts: dict[str, int]) -> None:
        """Take ``counts`` of ``jobid`` off the subtree filter of an ancestor ``v``.

        Raises InvalidRequest when the filter cannot be reduced or ``v`` only held a
        reservation of the job (what Fluxion reports as a failed partial cancel).
        """
        self.cache_flush()
        sp = v.subplans.get(self.dom)
        if sp is not None and jobid in v.job2span and jobid in v.tags:
            try:
                _reduce_filter(v, sp, jobid, counts)
            except ValueError as exc:
                self.err += (f"mod_agfilter: planner_multi_reduce_span returned -1.\n"
                             f"{v.name} {exc}.\n")
                raise InvalidRequest(self.err) from exc
        if jobid not in v.allocations and jobid in v.reservations:
            v.plans.rem_span(v.reservations.pop(jobid))
            self.err += ("mod_plan: traverser tried to remove schedule and span after "
                         f"vtx_cancel during partial cancel:\n{v.name} Success.\n")
            raise InvalidRequest(self.err)

    def remove_ranks(self, ranks: list[int]) -> None:
        """Release every job's hold on the vertices of ``ranks`` (before removing them).

        As Fluxion: each vertex of a rank is cleared, and what the rank's allocations
        held is taken off the subtree filters of its ancestors for every job found
        on the rank. Raises Unsatisfiable for an unknown rank, InvalidRequest when
        an ancestor's filter cannot be reduced.
        """
        self.cache_flush()
        self.err = ""
        self.preorder = self.postorder = 0
        g = self.g
        jobids: list[int] = []
        rank_counts: dict[int, dict[str, int]] = {}
        rank_roots: dict[int, Vertex] = {}
        for rank in ranks:
            vids = g.by_rank.get(rank)
            if vids is None:
                self.err += f"remove: {rank} not found in by_rank map.\n"
                raise Unsatisfiable(self.err)
            counts = rank_counts.setdefault(rank, {})
            for vid in vids:
                v = g.vertices[vid]
                for j in v.tags:
                    if j not in jobids:
                        jobids.append(j)
                self.clear_vertex(v, counts)
            r = self._rank_root(vids)
            if r is not None:
                rank_roots[rank] = r
        if not jobids:
            return
        parent_counts: dict[int, dict[int, dict[str, int]]] = {}
        for rank, r in rank_roots.items():
            cur = r
            while (pe := g.parent_edge(cur, self.dom)) is not None:
                per_job = parent_counts.setdefault(pe.source, {})
                for j in jobids:
                    c = per_job.setdefault(j, {})
                    for t, n in rank_counts[rank].items():
                        c[t] = c.get(t, 0) + n
                cur = g.vertices[pe.source]
        for vid, per_job in parent_counts.items():
            for j, c in per_job.items():
                try:
                    self.cancel_partial_vertex(g.vertices[vid], j, c)
                except MatchError as exc:
                    self.err += f"remove: {g.vertices[vid].name}: cancel_vertex failed.\n"
                    raise InvalidRequest(self.err) from exc


def _drop_tag(v: Vertex, jobid: int, dom: str) -> None:
    """Take `jobid`'s tag off the tagged vertex `v`, with its exclusivity span and
    its span in the subtree filter of `dom` (its planned span is the caller's)."""
    del v.tags[jobid]
    span = v.x_spans.pop(jobid, None)
    if span is not None:
        v.x_checker.rem_span(span)
    sp = v.subplans.get(dom)
    if sp is not None and jobid in v.job2span:
        sp.rem_span(v.job2span.pop(jobid))


def _reduce_filter(v: Vertex, sp, jobid: int, counts: dict[str, int]) -> None:
    """Take `counts` of `jobid` off the subtree filter `sp` of `v` (ValueError if it
    cannot be); a job with nothing left there is no longer tagged on `v`."""
    if sp.reduce_span(v.job2span[jobid], counts):
        del v.job2span[jobid]
        v.tags.pop(jobid, None)
    span = v.x_spans.pop(jobid, None)
    if span is not None:
        v.x_checker.rem_span(span)


def partial_cancel(trav: Traverser, jobid: int, ranks: list[int],
                   rank_counts: dict[int, dict[str, int]] | None = None,
                   rank_roots: dict[int, Vertex] | None = None) -> bool:
    """Release the part of ``jobid`` on ``ranks``; returns whether the job is now
    fully released. Raises MatchError (Unsatisfiable for an unknown rank) with
    Fluxion's message.

    Without ``rank_counts`` (rv1exec), every tagged vertex of each rank is released
    here; with them (JGF, already released by the reader) only the ancestors' subtree
    filters are reduced.
    """
    g = trav.g
    dom = trav.dom
    trav.cache_flush()
    trav.err = ""
    trav.preorder = trav.postorder = 0
    trav.total_preorder = trav.total_postorder = 0
    trav.tick()
    counts: dict[int, dict[str, int]] = rank_counts if rank_counts is not None else {}
    roots: dict[int, Vertex] = rank_roots if rank_roots is not None else {}
    if rank_counts is None:
        for rank in ranks:
            vids = g.by_rank.get(rank)
            if vids is None:
                trav.err += f"remove: {rank} not found in by_rank map.\n"
                raise Unsatisfiable(trav.err)
            best = 2**32
            for vid in vids:
                v = g.vertices[vid]
                if jobid in v.tags:
                    _drop_tag(v, jobid, dom)
                    if jobid in v.allocations:
                        span = v.allocations.pop(jobid)
                        amount = v.plans.span(span).request
                        v.plans.rem_span(span)
                        c = counts.setdefault(v.rank, {})
                        c[v.type] = c.get(v.type, 0) + amount
                    elif jobid in v.reservations:
                        v.plans.rem_span(v.reservations.pop(jobid))
                path = v.paths.get(dom, "")
                if len(path) < best:
                    best = len(path)
                    roots[rank] = v
    if not roots:
        trav.err += "remove: rank_to_root is empty.\n"
        raise InvalidRequest(trav.err)
    parent_counts: dict[int, dict[str, int]] = {}
    order: list[int] = []
    for rank, sub_root in roots.items():
        if rank not in counts:
            trav.err += f"remove: {rank} not found in rank_to_counts.\n"
            raise InvalidRequest(trav.err)
        cur = sub_root
        while (pe := g.parent_edge(cur, dom)) is not None:
            parent = g.vertices[pe.source]
            if parent.index not in parent_counts:
                order.append(parent.index)
            pc = parent_counts.setdefault(parent.index, {})
            for t, n in counts[rank].items():
                pc[t] = pc.get(t, 0) + n
            cur = parent
    root = trav.root()
    if jobid not in root.tags:
        trav.mod_exv(jobid)
        return False
    for idx in order:
        v = g.vertices[idx]
        sp = v.subplans.get(dom)
        if sp is None or jobid not in v.job2span or jobid not in v.tags:
            continue
        try:
            _reduce_filter(v, sp, jobid, parent_counts[idx])
        except ValueError as exc:
            trav.err += f"{exc}\n"
            raise InvalidRequest(trav.err) from exc
        if jobid not in v.allocations and jobid in v.reservations:
            v.plans.rem_span(v.reservations.pop(jobid))
    return jobid not in root.tags


def partial_cancel_r(trav: Traverser, jobid: int, reader: str, text: str) -> bool:
    """Release the part of ``jobid`` that R ``text`` lists (``reader``: "rv1exec" or
    "jgf"); returns whether the job is now fully released.

    An R the reader rejects raises InvalidRequest whose message is the traverser's
    error text followed by the reader's, as Fluxion's ``partial-cancel`` reports it.
    """
    try:
        if reader == "rv1exec":
            from .rv1exec import r_ranks

            return partial_cancel(trav, jobid, r_ranks(text))
        from .jgf import jgf_partial_cancel

        return jgf_partial_cancel(trav, jobid, text)
    except MatchError:
        raise
    except ValueError as exc:
        trav.err += f"{exc}\n"
        raise InvalidRequest(trav.err) from exc
