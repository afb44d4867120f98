"""The matching walk: depth-first search down the dominant subsystem, scoring on the
way up (Fluxion's DFU ``select``).

Why a module of its own: this is the hot path. ``select`` walks the containment
tree from the root with the jobspec's resource request, prunes subtrees (status,
constraints, availability, exclusivity, subtree aggregate filters), scores
candidates with the match policy and marks the chosen edges with the current
sequence number for the update walk (``update.py``). The control flow mirrors
Fluxion's closely on purpose: which vertex wins a tie is part of the observable
behaviour. The per-subtree cache of evaluations lives in ``subtree_cache.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import EBUSY, EINVAL, ENODEV, InvalidRequest
from .graph import X_CHECKER_NJOBS, Edge, Vertex
from .jobspec import Request, calc_count, calc_effective_max
from .planner import INT64_MAX, MultiPlanner
from .scoring import MATCH_MET, MATCH_UNMET, EGroup, EvalEdge, Scoring

if TYPE_CHECKING:
    from strato.jobspec.constraints import Matcher

AT_ALLOC, AT_ALLOC_ORELSE_RESERVE, AT_SATISFIABILITY, AT_NO_ALLOC = range(4)
NONE_MATCH, PRISTINE_NONE_MATCH, RESOURCE_MATCH, SLOT_MATCH = range(4)


@dataclass
@dataclass
class JobMeta:
    alloc_type: int = AT_ALLOC
    jobid: int = -1
    at: int = -1
    now: int = -1
    duration: int = 43200
    constraint: Matcher | None = None  # RFC 31 predicate over node vertices
    queue: str = ""



class Matching:
    """The DFS and scoring walk; mixed into ``Traverser``, which holds the state."""

    # -- colors ------------------------------------------------------------------
    def reset_color(self) -> None:
        self.color_base += 3

    def tick(self) -> None:
        self.seq += 1
        self.marked = {}
        self.reset_color()

    def mark_edge(self, e: Edge, needs: int, exclusive: int) -> None:
        """Mark ``e`` as selected with the current seq (and remember it for update)."""
        for rec in self._recs:
            rec.append((e, needs, exclusive))
        e.mark(needs, exclusive, self.seq)
        m = self.marked.get(e.source)
        if m is None:
            self.marked[e.source] = {e.order: e}
        else:
            m[e.order] = e

    def _gray(self) -> int:
        return self.color_base + 1

    def _black(self) -> int:
        return self.color_base + 2

    def stop_explore(self, e: Edge, s: str) -> bool:
        c = self.g.vertices[e.target].colors.get(s)
        return c is not None and c > self.color_base

    # -- pruning filter priming --------------------------------------------------
    def accum_if(self, t: str, count: int, accum: dict[str, int]) -> None:
        if self.prune.is_pruning_type(t):
            accum[t] = accum.get(t, 0) + count

    def initialize(self, node_stats: bool = True) -> None:
        """Prime the subtree filters; ``node_stats=False`` on re-initialization.

        Fluxion counts the nodes that are up only when a graph is loaded, so after
        ``attach`` or ``remove`` re-primes the filters the count is left as it was.
        """
        self.reset_color()
        self.cache_flush()
        for s in self.subsystems:
            if s not in self.g.roots:
                raise InvalidRequest(f"subsystem {s} has no root")
            self.prime(s, self.g.vertices[self.g.roots[s]], {})
        if node_stats:
            self.g.initialize_node_stats()

    def prime(self, s: str, u: Vertex, to_parent: dict[str, int]) -> None:
        u.colors[s] = self._gray()
        self.accum_if(u.type, u.size, to_parent)
        if not u.out:
            if not self.prune.is_pruning_type(u.type):
                self.prune.set("cluster", u.type)
                self.accum_if(u.type, u.size, to_parent)
            u.colors[s] = self._black()
            return
        dfv: dict[str, int] = {}
        for e in u.out:
            if e.subsystem != s or self.stop_explore(e, s):
                continue
            self.prime(s, self.g.vertices[e.target], dfv)
        for t, n in dfv.items():
            self.accum_if(t, n, to_parent)
        types = self.prune.my_types(u.type)
        if types:
            avail = [dfv.get(t, 0) for t in types]
            sp = u.subplans.get(s)
            totals = dict(zip(types, avail, strict=True))
            if sp is not None:
                sp.update(totals)
            else:
                u.subplans[s] = MultiPlanner(totals, u.plans.base_time, u.plans.horizon)
        u.colors[s] = self._black()

    def prime_jobspec(self, resources: list[Request], to_parent: dict[str, int]) -> None:
        for r in resources:
            if r.exclusive is True:
                self.policy.x_types.add(r.type)
            self.accum_if(r.type, r.min, to_parent)
            r.user_data = {}
            self.prime_jobspec(r.with_, r.user_data)
            for t, n in r.user_data.items():
                self.accum_if(t, r.min * n, to_parent)

    @staticmethod
    def relevant(sp: MultiPlanner, lookup: dict[str, int]) -> list[int]:
        return [lookup.get(t, 0) for t in sp.resource_types]

    # -- pruning -----------------------------------------------------------------
    def by_excl(self, meta: JobMeta, u: Vertex, excl: bool, r: Request) -> int:
        if excl and r.exclusive is False:
            self._errno = EINVAL
            self.err += f"by_excl: exclusivity conflicts at jobspec={r.label} : vertex={u.name}"
            return -1
        if excl or r.exclusive is True:
            if (meta.at == meta.now and meta.alloc_type in (AT_ALLOC, AT_NO_ALLOC)
                    and u.allocations):
                self._errno = EBUSY
                return -1
            xc = u._x_checker
            if xc is None:
                # an unused checker is free over the whole horizon
                if meta.at >= 0 and meta.duration >= 1 and meta.at + meta.duration <= INT64_MAX:
                    return 0
                xc = u.x_checker
            if not xc.avail_during(meta.at, meta.duration, X_CHECKER_NJOBS):
                self._errno = EBUSY
                return -1
        return 0

    def by_subplan(self, meta: JobMeta, s: str, u: Vertex, r: Request) -> int:
        sp = u.subplans.get(s)
        if sp is None or not r.user_data:
            return 0
        if not sp.avail_during(meta.at, meta.duration, self.relevant(sp, r.user_data)):
            self._errno = EBUSY
            return -1
        return 0

    def prune_vertex(self, meta: JobMeta, excl: bool, s: str, u: Vertex,
                     resources: list[Request]) -> int:
        if meta.alloc_type != AT_SATISFIABILITY and u.status != "up":
            self._errno = EBUSY
            return -1
        if (meta.constraint is not None and u.type in ("node", "storage_node")
                and not meta.constraint(u)):
            self._errno = EBUSY
            return -1
        if u.plans.avail_resources_during(meta.at, meta.duration) == 0:
            self._errno = EBUSY
            return -1
        return self.prune_resources(meta, excl, s, u, resources)

    def prune_resources(self, meta: JobMeta, excl: bool, s: str, u: Vertex,
                        resources: list[Request]) -> int:
        for r in resources:
            if u.type != r.type and r.type != "slot":
                continue
            if r.type != "slot" and self.by_excl(meta, u, excl, r) == -1:
                return -1
            if self.by_subplan(meta, s, u, r) == -1:
                return -1
        return 0

    # -- matching ----------------------------------------------------------------
    def exclusivity(self, resources: list[Request], u: Vertex) -> bool:
        x = False
        for r in resources:
            if r.type == u.type and r.exclusive is True:
                x = True
        return x

    def test(self, u: Vertex, resources: list[Request], pristine: bool):
        """Which request applies at ``u``: (next requests, nslots, match kind, pristine)."""
        matched = False
        slot_res = None
        match_res = None
        nslots = 0
        for r in resources:
            if u.type == r.type:
                if matched:
                    self.err += (f"test: siblings in jobspec request same resource type : "
                                 f"{u.type}.\n")
                    return resources, nslots, NONE_MATCH, pristine
                match_res = r
                for c in r.with_:
                    if c.type == "slot":
                        slot_res = c
                        nslots = calc_effective_max(c)
                matched = True
            elif r.type == "slot":
                if matched:
                    self.err += (f"test: siblings in jobspec request same resource type : "
                                 f"{u.type}.\n")
                    return resources, nslots, NONE_MATCH, pristine
                slot_res = r
                nslots = calc_effective_max(r)
                matched = True
        if slot_res is not None and self.slot_match(u, slot_res):
            return slot_res.with_, nslots, SLOT_MATCH, False
        if match_res is not None:
            return match_res.with_, nslots, RESOURCE_MATCH, False
        return resources, nslots, (PRISTINE_NONE_MATCH if pristine else NONE_MATCH), pristine

    def slot_match(self, u: Vertex, slot: Request) -> bool:
        types = u.out_types
        for c in slot.with_:
            if c.type not in types:
                return False
        return True

    def explore(self, meta, u, s, resources, pristine, excl, dfu, multiplier=1) -> int:
        if self.policy.stop_on_k_matches:
            return self.explore_dynamically(meta, u, s, resources, pristine, excl, dfu,
                                            multiplier)
        if self._cache_active and s == self.dom:
            return self._explore_cached(meta, u, s, resources, pristine, excl, dfu)
        rc2 = -1
        verts = self.g.vertices
        for e in u.out:
            if e.subsystem != s or self.stop_explore(e, s):
                continue
            tgt = verts[e.target]
            ok, x_out = self.visit(meta, tgt, s, resources, pristine, excl, dfu)
            if ok:
                count = dfu.avail
                eg = EGroup(dfu.overall_score, count, 0, x_out, False)
                eg.edges.append(EvalEdge(count, count, x_out, e))
                dfu.add(s, tgt.type, eg)
                rc2 = 0
        return rc2

    def explore_dynamically(self, meta, u, s, resources, pristine, excl, dfu,
                            multiplier) -> int:
        rc2 = -1
        outedges = self.g.by_outedges.get(u.index)
        if outedges is None:
            return -1
        sat_types: set[str] = set()
        # per type: [per_share, prev_total, accum, shares]
        tallies = {r.type: [calc_effective_max(r), 0, 0, 0] for r in resources}
        verts = self.g.vertices
        for e in outedges.desc():
            if e.subsystem != s or self.stop_explore(e, s):
                continue
            tgt = verts[e.target]
            if tgt.type in sat_types:
                continue
            ok, x_out = self.visit(meta, tgt, s, resources, pristine, excl, dfu)
            if not ok:
                continue
            count = dfu.avail
            eg = EGroup(dfu.overall_score, count, 0, x_out, False)
            eg.edges.append(EvalEdge(count, count, x_out, e))
            dfu.add(s, tgt.type, eg)
            for t, tl in tallies.items():
                total = dfu.total_count(s, t)
                if total <= tl[1]:
                    continue
                tl[2] += total - tl[1]
                tl[1] = total
                if tl[0] > 0 and tl[2] >= tl[0]:
                    tl[3] += 1
                    tl[2] = 0
            for r in resources:
                tl = tallies[r.type]
                if tl[0] == 0 or tl[3] >= multiplier:
                    sat_types.add(r.type)
            rc2 = 0
            if all(tallies[r.type][0] == 0 or tallies[r.type][3] >= multiplier
                   for r in resources):
                break
        return rc2

    def visit(self, meta, tgt, s, resources, pristine, excl, dfu) -> tuple[bool, bool]:
        if s == self.dom:
            return self.dom_dfv(meta, tgt, resources, pristine, excl, dfu)
        return self.aux_upv(meta, tgt, s, resources, pristine, excl, dfu)

    def aux_upv(self, meta, u, s, resources, pristine, excl, to_parent) -> tuple[bool, bool]:
        upv = Scoring(self.g.types)
        if self.prune_vertex(meta, excl, s, u, resources) == -1:
            return False, excl
        if u.index != self.g.roots.get(s):
            self.explore(meta, u, s, resources, pristine, excl, upv)
        if u.plans.avail_resources_during(meta.at, meta.duration) == 0:
            return False, excl
        return self.resolve(upv, to_parent) == 0, excl

    def dom_exp(self, meta, u, resources, pristine, excl, dfu) -> int:
        rc = -1
        for s in self.subsystems:
            rc = self.explore(meta, u, s, resources, pristine, excl, dfu)
        return rc

    def cnt_slot(self, slot_shape: list[Request], dfu_slot: Scoring) -> int:
        qual = 2**32 - 1
        for el in slot_shape:
            ev = dfu_slot.evals(self.dom, el.type)
            count = calc_count(el, ev.qual_count)
            shares = 0
            if count != 0:
                accum = 0
                ev.iter_reset()
                while (g := ev.iter_next()) is not None:
                    accum += g.edges[0].count
                    if accum >= count:
                        shares += 1
                        accum = 0
            fit = 0 if count == 0 else shares
            qual = min(qual, fit)
            ev.iter_reset()
        return qual

    def dom_slot(self, meta, u, slot_shape, nslots, pristine, dfu) -> int:
        dfu_slot = Scoring(self.g.types)
        dom = self.dom
        if self.explore(meta, u, dom, slot_shape, pristine, True, dfu_slot, nslots) != 0:
            return -1
        if self.policy.dom_finish_slot(dom, dfu_slot) != 0:
            return -1
        qual = self.cnt_slot(slot_shape, dfu_slot)
        groups = []
        for _ in range(qual):
            grp = self.take_slot(dfu_slot, slot_shape)
            if grp is None:
                return -1
            groups.append(grp)
        for grp in groups:
            dfu.add(dom, "slot", grp)
        return 0 if qual else -1

    def take_slot(self, dfu_slot: Scoring, slot_shape: list[Request]) -> EGroup | None:
        """One slot of `slot_shape`, made of the next best candidates `dfu_slot`
        evaluated for each of its resources; None (and why in ``err``) if too few
        are left."""
        grp = EGroup()
        score = MATCH_MET
        for el in slot_shape:
            ev = dfu_slot.evals(self.dom, el.type)
            count = calc_count(el, ev.qual_count)
            j = 0
            while j < count:
                g = ev.iter_next()
                if g is None:
                    self.err += "dom_slot: not enough slots.\n"
                    return None
                e0 = g.edges[0]
                grp.edges.append(EvalEdge(e0.count, e0.count, 1, e0.edge))
                score += g.score
                j += e0.count
        grp.score = score
        grp.count = 1
        grp.exclusive = 1
        return grp

    def _set_label(self, u: Vertex, label: str) -> None:
        for rec in self._recs:
            rec.append((u, label))
        u.ephemeral = {"label": label, "_seq": str(self.seq)}

    def _dom_dfv(self, meta, u, resources, pristine, excl, to_parent) -> tuple[bool, bool]:
        x_in = excl or self.exclusivity(resources, u)
        nxt, nslots, kind, check_pres = self.test(u, resources, pristine)
        self.preorder += 1
        if kind == NONE_MATCH:
            self._errno = EBUSY
            return False, excl
        dom = self.dom
        if (self.prune_vertex(meta, x_in, dom, u, resources) == -1
                or self.policy.dom_discover_vtx(u) != 0):
            return False, excl
        u.colors[dom] = self._gray()
        dfu = Scoring(self.g.types)
        if kind == SLOT_MATCH:
            self.dom_slot(meta, u, nxt, nslots, check_pres, dfu)
        else:
            self.dom_exp(meta, u, nxt, check_pres, x_in, dfu)
        u.colors[dom] = self._black()
        avail = u.plans.avail_resources_during(meta.at, meta.duration)
        if avail == 0:
            self._errno = EBUSY
            return False, x_in
        if self.policy.dom_finish_vtx(u, dom, resources, dfu) != 0:
            self._errno = EBUSY
            return False, x_in
        if self.resolve(dfu, to_parent) != 0:
            return False, x_in
        to_parent.avail = avail
        to_parent.overall_score = dfu.overall_score
        for r in resources:
            if r.type == u.type and r.label:
                self._set_label(u, r.label)
        self.postorder += 1
        return True, x_in

    def resolve(self, dfu: Scoring, to_parent: Scoring) -> int:
        rc = 0
        if dfu.overall_score > MATCH_UNMET:
            if dfu.hier_constrain_now:
                for s in self.subsystems:
                    rc += self.enforce(s, dfu)
            else:
                to_parent.merge(dfu)
        return rc

    def enforce(self, s: str, dfu: Scoring, unconstrained: bool = False) -> int:
        verts = self.g.vertices
        for t in dfu.resrc_types(s):
            ev = dfu.evals(s, t)
            if not ev.best_k:
                continue
            for i in range(ev.best_i):
                eg = ev.groups[i]
                if eg.root:
                    continue
                for ee in eg.edges:
                    self.mark_edge(ee.edge, ee.needs, ee.exclusive)
                    if unconstrained and s == self.dom:
                        parent_v = verts[ee.edge.source]
                        while (pe := self.g.parent_edge(parent_v, s)) is not None:
                            if pe.seq == self.seq:
                                break
                            parent_v = verts[pe.source]
                            tgt = verts[pe.target]
                            constrained = True
                            if dfu.is_contained(s, tgt.type) and not dfu.evals(s, tgt.type).best_k:
                                constrained = False
                            if constrained:
                                continue
                            self.mark_edge(pe, tgt.size, 0)
        return 0

    def resolve_graph(self, root: Vertex, resources, dfu: Scoring) -> int | None:
        """Root-level choice; returns how many of the root are needed, None on failure."""
        if self.policy.dom_finish_graph(self.dom, resources, dfu) != 0:
            return None
        needs = 1
        for r in resources:
            if r.type == root.type:
                count = calc_count(r, dfu.avail)
                if count == 0:
                    return None
                needs = count
        for s in self.subsystems:
            for t in dfu.resrc_types(s):
                if dfu.qualified_count(s, t) == 0:
                    return None
        for s in self.subsystems:
            self.enforce(s, dfu, True)
        return needs

    def select(self, resources: list[Request], root: Vertex, meta: JobMeta, excl: bool) -> int:
        dfu = Scoring(self.g.types)
        self.tick()
        self.preorder = 0
        self.postorder = 0
        self._cache_active = self._cache_enabled()
        dfu.fast_topk = self._cache_active
        try:
            ok, x_in = self.dom_dfv(meta, root, resources, True, excl, dfu)
        finally:
            self._cache_active = False
        if not ok:
            return -1
        eg = EGroup(dfu.overall_score, dfu.avail, 0, excl, True)
        eg.edges.append(EvalEdge(dfu.avail, dfu.avail, excl))
        dfu.add(self.dom, root.type, eg)
        needs = self.resolve_graph(root, resources, dfu)
        rc = 0
        if needs is None:
            self._errno = ENODEV
            needs = 0
            rc = -1
        self.rt_needs, self.rt_excl, self.rt_seq = needs, int(x_in), self.seq
        return rc

    def root(self) -> Vertex:
        return self.g.vertices[self.g.roots[self.dom]]
