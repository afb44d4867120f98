"""The exact per-subtree cache of ``dom_dfv`` evaluations.

Why a module of its own: it is an optimisation with its own correctness argument.
When a policy's score of a vertex depends only on the vertex's subtree (and on the
cache key: request, pristine/exclusive flags, time window, constraint and the
policy's score-factor state), an evaluation can be replayed, side effects and all,
instead of walking the subtree again. Entries of a vertex are dropped whenever its
subtree may have changed (``update``/``remove`` pop the touched vertices, every
other mutation flushes).
"""

from __future__ import annotations

from .scoring import EGroup, EvalEdge, Evals, Scoring

_UNSET = object()  # errno sentinel while recording a cached evaluation
_CACHE_KEYS = 8  # cached evaluations kept per vertex


class SubtreeCache:
    """Cached ``dom_dfv`` and ``explore``; mixed into ``Traverser``."""

    # Exact per-subtree cache of ``dom_dfv`` evaluations for policies that declare
    # ``subtree_local`` (the score-factor state is keyed and replayed), on tree
    # graphs, and the top-k shortcut of ``Evals.choose_best_k``; False forces the
    # full walks.
    subtree_cache = True

    def cache_flush(self) -> None:
        """Forget every cached evaluation (after any mutation other than update/remove)."""
        self._mcache = {}

    @property
    def subtree_cache_applies(self) -> bool:
        """Whether matches use the cache: it is on, the policy declares its scores
        subtree-local (``MatchPolicy.subtree_local``) and does not stop early, and the
        graph is one subsystem shaped as a tree (each vertex reached once)."""
        p = self.policy
        return bool(self.subtree_cache and len(self.subsystems) == 1
                    and getattr(p, "subtree_local", False)
                    and not p.stop_on_k_matches
                    and self._is_dom_tree())

    def _cache_enabled(self) -> bool:
        if not self.subtree_cache_applies:
            return False
        if self._mcache_ver != self.g.version:
            self._mcache = {}
            self._mcache_ver = self.g.version
        return True

    def _explore_cached(self, meta, u, s, resources, pristine, excl, dfu) -> int:
        """``explore`` over the dominant tree with the subtree cache on.

        A child with a cached evaluation is replayed inline (what ``dom_dfv`` does on
        a hit, plus the edge group ``explore`` adds, itself cached). On a tree each
        vertex is reached once per traversal, so ``stop_explore`` never stops a child
        here: colours only stop a second visit.
        """
        rc2 = -1
        verts = self.g.vertices
        mcache = self._mcache
        constraint = meta.constraint
        pol = self.policy
        sc = pol.scores
        key = (id(resources), pristine, excl, meta.at, meta.duration, meta.alloc_type,
               meta.now, id(constraint), sc)
        ssys = dfu.ssys
        for e in u.out:
            if e.subsystem != s:
                continue
            if pol.scores != sc:
                sc = pol.scores
                key = key[:-1] + (sc,)
            ents = mcache.get(e.target)
            ent = ents.get(key) if ents is not None else None
            if ent is None or ent[0] is not resources or ent[1] is not constraint:
                tgt = verts[e.target]
                ok, x_out = self.dom_dfv(meta, tgt, resources, pristine, excl, dfu)
                if ok:
                    count = dfu.avail
                    eg = EGroup(dfu.overall_score, count, 0, x_out, False)
                    eg.edges.append(EvalEdge(count, count, x_out, e))
                    dfu.add(s, tgt.type, eg)
                    rc2 = 0
                    ents = mcache.get(e.target)
                    ent = ents.get(key) if ents is not None else None
                    if ent is not None and ent[0] is resources and ent[1] is constraint:
                        ent[11] = eg
                        ent[12] = tgt.type
                continue
            self.preorder += ent[4]
            self.postorder += ent[5]
            pol.scores = ent[13]
            if ent[14]:
                pol.factor_value.update(ent[14])
            if ent[6] is not _UNSET:
                self._errno = ent[6]
            if ent[7]:
                self.err += ent[7]
            for r in ent[8]:
                if len(r) == 3:
                    self.mark_edge(r[0], r[1], r[2])
                else:
                    self._set_label(r[0], r[1])
            if not ent[2]:
                continue
            tp = ent[9]
            for s_, t_, ev in ent[10]:
                m = ssys.get(s_)
                if m is None:
                    m = ssys[s_] = {}
                mine = m.get(t_)
                if mine is None:
                    mine = m[t_] = Evals()
                mine.qual_count += ev.qual_count
                mine.total_count += ev.total_count
                mine.groups.extend(ev.groups)
            dfu.avail = tp.avail
            dfu.overall_score = tp.overall_score
            eg = ent[11]
            if eg is None:
                count = tp.avail
                eg = ent[11] = EGroup(tp.overall_score, count, 0, ent[3], False)
                eg.edges.append(EvalEdge(count, count, ent[3], e))
                ent[12] = verts[e.target].type
            dfu.add(s, ent[12], eg)
            rc2 = 0
        return rc2

    def dom_dfv(self, meta, u, resources, pristine, excl, to_parent) -> tuple[bool, bool]:
        if not self._cache_active or not u.out:
            # leaves are not cached: their parent's entry covers them
            return self._dom_dfv(meta, u, resources, pristine, excl, to_parent)
        constraint = meta.constraint
        pol = self.policy
        key = (id(resources), pristine, excl, meta.at, meta.duration, meta.alloc_type,
               meta.now, id(constraint), pol.scores)
        ents = self._mcache.get(u.index)
        if ents is not None:
            ent = ents.get(key)
            if ent is not None and ent[0] is resources and ent[1] is constraint:
                # replay the subtree's evaluation and its side effects, in order
                _, _, ok, x_out, dpre, dpost, errno, err, recs, tp = ent[:10]
                self.preorder += dpre
                self.postorder += dpost
                pol.scores = ent[13]
                if ent[14]:
                    pol.factor_value.update(ent[14])
                if errno is not _UNSET:
                    self._errno = errno
                if err:
                    self.err += err
                for r in recs:
                    if len(r) == 3:
                        self.mark_edge(r[0], r[1], r[2])
                    else:
                        self._set_label(r[0], r[1])
                if ok:
                    to_parent.merge(tp)
                    to_parent.avail = tp.avail
                    to_parent.overall_score = tp.overall_score
                return ok, x_out
        pre0, post0 = self.preorder, self.postorder
        old_errno = self._errno
        self._errno = _UNSET
        err0 = len(self.err)
        rec: list = []
        self._recs.append(rec)
        tp = Scoring(self.g.types)
        # the score-factor values this subtree sets (``MultilevelId.factor_value``) are
        # collected in a fresh dict and replayed on a hit; ``scores`` is in the key
        fv0 = pol.factor_value
        fv = pol.factor_value = {}
        try:
            ok, x_out = self._dom_dfv(meta, u, resources, pristine, excl, tp)
        finally:
            self._recs.pop()
            fv0.update(fv)
            pol.factor_value = fv0
            errno = self._errno
            if errno is _UNSET:
                self._errno = old_errno
        if ok:
            to_parent.merge(tp)
            to_parent.avail = tp.avail
            to_parent.overall_score = tp.overall_score
        if ents is None:
            ents = self._mcache[u.index] = {}
        elif len(ents) >= _CACHE_KEYS:
            ents.clear()
        flat = [(s, t, ev) for s, tmap in tp.ssys.items() for t, ev in tmap.items()]
        # [10]: tp's evals flattened for merging; [11], [12]: the edge group and type
        # ``_explore_cached`` adds for this child (filled there)
        ents[key] = [resources, constraint, ok, x_out, self.preorder - pre0,
                     self.postorder - post0, errno, self.err[err0:], rec, tp, flat, None,
                     None, pol.scores, fv]
        return ok, x_out

    def _is_dom_tree(self) -> bool:
        """True if no vertex has two parents in the dominant subsystem (cached per graph
        version), with each vertex's number of dominant out-edges alongside."""
        g = self.g
        if self._tree_version != g.version:
            dom = self.dom
            tree = True
            outdeg: dict[int, int] = {}
            for v in g.vertices:
                n = 0
                for e in v.out:
                    if e.subsystem == dom:
                        n += 1
                outdeg[v.index] = n
                if tree and sum(1 for e in v.in_ if e.subsystem == dom) > 1:
                    tree = False
            self._dom_tree = tree
            self._dom_outdeg = outdeg
            self._tree_version = g.version
        return self._dom_tree
