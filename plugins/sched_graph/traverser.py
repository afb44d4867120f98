"""Depth-first-and-up matcher over the dominant subsystem (Fluxion's DFU traverser).

``select`` walks the containment tree from the root with the jobspec's resource
request, prunes subtrees (status, constraints, availability, exclusivity, subtree
aggregate filters), scores candidates with the match policy and marks the chosen
edges with the current sequence number. ``update`` then walks only marked edges,
books the spans (allocation or reservation) and emits the selected vertices to the
writer, children first. ``remove`` undoes a job. The control flow mirrors Fluxion's
closely on purpose: which vertex wins a tie is part of the observable behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass

from .graph import X_CHECKER_NJOBS, Edge, ResourceGraph, Vertex
from .jobspec import Jobspec, Request, calc_count, calc_effective_max
from .planner import INT64_MAX, MultiPlanner
from .policies import Locality, MatchPolicy, MultilevelId, VarAware
from .scoring import MATCH_MET, MATCH_UNMET, EGroup, EvalEdge, Evals, Scoring

EBUSY, ENODEV, EINVAL, ENOENT, ERANGE = "EBUSY", "ENODEV", "EINVAL", "ENOENT", "ERANGE"

AT_ALLOC, AT_ALLOC_ORELSE_RESERVE, AT_SATISFIABILITY, AT_NO_ALLOC = range(4)
NONE_MATCH, PRISTINE_NONE_MATCH, RESOURCE_MATCH, SLOT_MATCH = range(4)
ANY = "*"
_UNSET = object()  # errno sentinel while recording a cached evaluation
_CACHE_KEYS = 8  # cached evaluations kept per vertex


@dataclass
class JobMeta:
    alloc_type: int = AT_ALLOC
    jobid: int = -1
    at: int = -1
    now: int = -1
    duration: int = 43200
    constraint: object = None
    queue: str = ""


class PruneSpec:
    """Which resource types are tracked in aggregate under which vertex types."""

    def __init__(self, order) -> None:
        self.order = order
        self.by_anchor: dict[str, set[str]] = {}
        self.total: set[str] = set()

    def set_spec(self, spec: str) -> None:
        for pair in spec.split(","):
            if ":" not in pair:
                raise ValueError(f"bad prune filter: {pair}")
            h, _, low = pair.partition(":")
            h = "".join(h.split())
            low = "".join(low.split())
            if not h or not low:
                raise ValueError(f"bad prune filter: {pair}")
            self.set(ANY if h == "ALL" else h, low)

    def set(self, anchor: str, ptype: str) -> None:
        if anchor == ANY:
            for s in self.by_anchor.values():
                s.discard(ptype)
            self.by_anchor.setdefault(ANY, set()).add(ptype)
        elif ANY in self.by_anchor:
            if ptype not in self.by_anchor[ANY]:
                self.by_anchor.setdefault(anchor, set()).add(ptype)
        else:
            self.by_anchor.setdefault(anchor, set()).add(ptype)
        self.total.add(ptype)

    def is_pruning_type(self, t: str) -> bool:
        return t in self.total

    def my_types(self, anchor: str) -> list[str]:
        out = self.order.sort(self.by_anchor.get(anchor, ()))
        if anchor != ANY and ANY in self.by_anchor:
            out += [t for t in self.order.sort(self.by_anchor[ANY]) if t != anchor]
        return out


class Traverser:
    """Matcher state for one graph, policy and set of subsystems."""

    # Exact per-subtree cache of ``dom_dfv`` evaluations (low/high, the node-centric
    # ``*node*`` policies, locality and variation on tree graphs; the score-factor
    # state is keyed and replayed),
    # and the top-k shortcut of ``Evals.choose_best_k``; False forces the full walks.
    subtree_cache = True

    def __init__(self, graph: ResourceGraph, policy: MatchPolicy, subsystems: list[str],
                 prune_filters: str = "ALL:core,ALL:node") -> None:
        self.g = graph
        self.policy = policy
        self.subsystems = subsystems
        self.dom = subsystems[0]
        self.prune = PruneSpec(graph.types)
        if prune_filters:
            self.prune.set_spec(prune_filters)
        self.seq = 0
        self.color_base = 0
        self.preorder = 0
        self.postorder = 0
        self.total_preorder = 0
        self.total_postorder = 0
        self.trav_level = 0
        self.err = ""
        self.errno = ""
        self.rt_needs = 0
        self.rt_excl = 0
        self.rt_seq = 0
        # Edges marked with the current seq, by source vertex index ({order: edge}):
        # ``update`` walks only these (in out-list order) below a vertex it does not
        # take whole.
        self.marked: dict[int, dict[int, Edge]] = {}
        # jobid -> the vertices ``update`` booked something of the job on (a superset:
        # entries are checked against the vertex's state when used); lets ``remove``
        # visit only those instead of walking the graph.
        self.job_vertices: dict[int, list[Vertex]] = {}
        self._tree_version = -1
        self._dom_tree = False
        self._dom_outdeg: dict[int, int] = {}
        # vertex index -> {key: cached evaluation}; an entry is dropped whenever the
        # vertex's subtree may have changed (the touched sets are upward-closed).
        self._mcache: dict[int, dict] = {}
        self._mcache_ver = -1
        self._cache_active = False
        self._recs: list[list] = []  # recorders of marks / labels, innermost last

    # -- colors ------------------------------------------------------------------
    def reset_color(self) -> None:
        self.color_base += 3

    def tick(self) -> None:
        self.seq += 1
        self.marked = {}
        self.reset_color()

    def cache_flush(self) -> None:
        """Forget every cached evaluation (after any mutation other than update/remove)."""
        self._mcache = {}

    def _cache_enabled(self) -> bool:
        p = self.policy
        # Locality / VarAware keep no traversal state: a vertex's result depends only
        # on its subtree (its own id / perf_class, its children's groups) and the key
        if not (self.subtree_cache and len(self.subsystems) == 1
                and ((type(p) is MultilevelId and len(p.factors) <= 1)
                     or type(p) is Locality or type(p) is VarAware)
                and not p.stop_on_k_matches
                and self._is_dom_tree()):
            return False
        if self._mcache_ver != self.g.version:
            self._mcache = {}
            self._mcache_ver = self.g.version
        return True

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
                raise ValueError(f"subsystem {s} has no root")
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
            self.errno = EINVAL
            self.err += f"by_excl: exclusivity conflicts at jobspec={r.label} : vertex={u.name}"
            return -1
        if excl or r.exclusive is True:
            if (meta.at == meta.now and meta.alloc_type in (AT_ALLOC, AT_NO_ALLOC)
                    and u.allocations):
                self.errno = EBUSY
                return -1
            xc = u._x_checker
            if xc is None:
                # an unused checker is free over the whole horizon
                if meta.at >= 0 and meta.duration >= 1 and meta.at + meta.duration <= INT64_MAX:
                    return 0
                xc = u.x_checker
            if not xc.avail_during(meta.at, meta.duration, X_CHECKER_NJOBS):
                self.errno = EBUSY
                return -1
        return 0

    def by_subplan(self, meta: JobMeta, s: str, u: Vertex, r: Request) -> int:
        sp = u.subplans.get(s)
        if sp is None or not r.user_data:
            return 0
        if not sp.avail_during(meta.at, meta.duration, self.relevant(sp, r.user_data)):
            self.errno = EBUSY
            return -1
        return 0

    def prune_vertex(self, meta: JobMeta, excl: bool, s: str, u: Vertex,
                     resources: list[Request]) -> int:
        if meta.alloc_type != AT_SATISFIABILITY and u.status != "up":
            self.errno = EBUSY
            return -1
        if (meta.constraint is not None and u.type in ("node", "storage_node")
                and not meta.constraint.match(u)):
            self.errno = EBUSY
            return -1
        if u.plans.avail_resources_during(meta.at, meta.duration) == 0:
            self.errno = EBUSY
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
                self.errno = ent[6]
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
            grp = EGroup()
            score = MATCH_MET
            for el in slot_shape:
                ev = dfu_slot.evals(dom, el.type)
                count = calc_count(el, ev.qual_count)
                j = 0
                while j < count:
                    g = ev.iter_next()
                    if g is None:
                        self.err += "dom_slot: not enough slots.\n"
                        return -1
                    e0 = g.edges[0]
                    grp.edges.append(EvalEdge(e0.count, e0.count, 1, e0.edge))
                    score += g.score
                    j += e0.count
            grp.score = score
            grp.count = 1
            grp.exclusive = 1
            groups.append(grp)
        for grp in groups:
            dfu.add(dom, "slot", grp)
        return 0 if qual else -1

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
                    self.errno = errno
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
        old_errno = self.errno
        self.errno = _UNSET
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
            errno = self.errno
            if errno is _UNSET:
                self.errno = old_errno
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

    def _set_label(self, u: Vertex, label: str) -> None:
        for rec in self._recs:
            rec.append((u, label))
        u.ephemeral = {"label": label, "_seq": str(self.seq)}

    def _dom_dfv(self, meta, u, resources, pristine, excl, to_parent) -> tuple[bool, bool]:
        x_in = excl or self.exclusivity(resources, u)
        nxt, nslots, kind, check_pres = self.test(u, resources, pristine)
        self.preorder += 1
        if kind == NONE_MATCH:
            self.errno = EBUSY
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
            self.errno = EBUSY
            return False, x_in
        if self.policy.dom_finish_vtx(u, dom, resources, dfu) != 0:
            self.errno = EBUSY
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
            self.errno = ENODEV
            needs = 0
            rc = -1
        self.rt_needs, self.rt_excl, self.rt_seq = needs, int(x_in), self.seq
        return rc

    # -- scheduling loop ---------------------------------------------------------
    def root(self) -> Vertex:
        return self.g.vertices[self.g.roots[self.dom]]

    def _far_future(self, meta: JobMeta) -> int:
        sp = self.root().subplans[self.dom]
        return sp.end - meta.duration - 1

    def request_feasible(self, meta: JobMeta, op: str, dfv: dict[str, int]) -> int:
        target = dfv.get("node", 0)
        checking_sat = op in ("allocate_with_satisfiability", "satisfiability")
        g = self.g
        if meta.constraint is None and target <= g.nodes_up:
            return 0
        fail = EBUSY if op in ("allocate", "allocate_orelse_reserve", "without_allocating",
                               "without_allocating_future") else (ENODEV if checking_sat else "")
        if target > g.nodes_up and fail:
            self.errno = fail
            return -1
        nodes = g.by_type.get("node")
        if not nodes:
            return 0
        t = meta.at if op in ("allocate", "without_allocating") else g.graph_end - 1
        feasible = 0
        for vid in nodes:
            n = g.vertices[vid]
            if ((meta.constraint is None or meta.constraint.match(n))
                    and (checking_sat or n.status == "up")
                    and n.plans.avail_resources_during(t, meta.duration) == 1):
                feasible += 1
                if feasible >= target:
                    break
        if feasible < target and fail:
            self.errno = fail
            return -1
        return 0

    def sat_select(self, js: Jobspec, meta: JobMeta, x: bool) -> int:
        meta.alloc_type = AT_SATISFIABILITY
        meta.at = self._far_future(meta)
        rc = self.select(js.resources, self.root(), meta, x)
        if rc < 0 and self.errno in (EBUSY, ERANGE):
            self.errno = ENODEV
        return rc

    def schedule(self, js: Jobspec, meta: JobMeta, x: bool, op: str,
                 dfv: dict[str, int]) -> int:
        if self.request_feasible(meta, op, dfv) < 0:
            return -1
        root = self.root()
        rc = self.select(js.resources, root, meta, x)
        self.total_preorder, self.total_postorder = self.preorder, self.postorder
        if rc == 0:
            return 0
        if op == "allocate_with_satisfiability":
            self.errno = EBUSY
            if self.sat_select(js, meta, x) < 0:
                self.reset_color()
            self.total_preorder += self.preorder
            self.total_postorder += self.postorder
        elif op in ("allocate_orelse_reserve", "without_allocating_future"):
            if op == "allocate_orelse_reserve":
                meta.alloc_type = AT_ALLOC_ORELSE_RESERVE
            sp = root.subplans[self.dom]
            agg = self.relevant(sp, dfv)
            # Fluxion's planner_multi_avail_time_first/_next: change points only.
            for t in sp.avail_times(meta.at + 1, meta.duration, agg, points_only=True):
                meta.at = t
                rc = self.select(js.resources, root, meta, x)
                self.total_preorder += self.preorder
                self.total_postorder += self.postorder
                if rc == 0:
                    break
            else:
                self.errno = ENOENT
            if rc < 0 and self.errno in (ENOENT, ERANGE):
                self.errno = EBUSY
                if self.sat_select(js, meta, x) < 0:
                    self.reset_color()
                meta.at = -1
        else:
            self.errno = EBUSY
        return rc

    def run(self, js: Jobspec, writer, op: str, jobid: int, at: int) -> tuple[int, int]:
        """Match ``js``; returns (rc, scheduled time). Selected vertices go to ``writer``."""
        self.err = ""
        self.errno = ""
        root = self.root()
        x = self.exclusivity(js.resources, root)
        saved_x = set(self.policy.x_types)
        dfv: dict[str, int] = {}
        self.prime_jobspec(js.resources, dfv)
        g_duration = self.g.graph_end - self.g.graph_start
        if js.duration < 0 or js.duration > g_duration:
            self.errno = EINVAL
            return -1, at
        duration = g_duration if js.duration == 0 else -int(-js.duration // 1)
        meta = JobMeta(AT_ALLOC, jobid, at, at, duration, js.constraint, js.queue)
        if op in ("without_allocating", "without_allocating_future"):
            meta.alloc_type = AT_NO_ALLOC
        if op == "satisfiability":
            self.preorder = self.postorder = 0
            rc = self.sat_select(js, meta, x)
            self.total_preorder, self.total_postorder = self.preorder, self.postorder
            self.reset_color()
        else:
            rc = self.schedule(js, meta, x, op, dfv)
            if rc == 0:
                at = meta.at
                if at == self.g.graph_end or at < 0 or at > self.g.graph_end:
                    self.errno = EBUSY if at == self.g.graph_end else EINVAL
                    self.policy.x_types = saved_x
                    return -1, at
                if at + meta.duration > self.g.graph_end:
                    meta.duration = self.g.graph_end - at
                rc = self.update(root, writer, meta)
        self.policy.x_types = saved_x
        return rc, at

    # -- update: book and emit -----------------------------------------------------
    def update(self, root: Vertex, writer, meta: JobMeta) -> int:
        if self.rt_seq != self.seq:
            self.errno = EINVAL
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
    def remove(self, jobid: int) -> int:
        self.err = ""
        self.preorder = 0
        self.postorder = 0
        root = self.root()
        self.reset_color()
        if jobid in root.tags:
            if self._is_dom_tree() and jobid in self.job_vertices:
                rc = self._mod_indexed(root, jobid)
            else:
                rc = self.mod_dfv(root, jobid)
                self._prune_job_index(jobid)
        else:
            rc = self.mod_exv(jobid)
        self.total_preorder, self.total_postorder = self.preorder, self.postorder
        return rc

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

    def _mod_indexed(self, root: Vertex, jobid: int) -> int:
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
        mcache = self._mcache
        for u in todo:
            mcache.pop(u.index, None)
            pre += outdeg.get(u.index, 0)
            del u.tags[jobid]
            span = u.x_spans.pop(jobid, None)
            if span is not None:
                u.x_checker.rem_span(span)
            sp = u.subplans.get(dom)
            if sp is not None and jobid in u.job2span:
                sp.rem_span(u.job2span.pop(jobid))
            self._mod_plan(u, jobid)
        self.preorder += pre
        self.postorder += len(todo)
        self.job_vertices[jobid] = cand
        self._prune_job_index(jobid)
        return 0

    def _prune_job_index(self, jobid: int) -> None:
        """Keep only the vertices that still hold something of ``jobid``."""
        cand = self.job_vertices.pop(jobid, None)
        if cand:
            rest = [v for v in cand if jobid in v.tags or jobid in v.allocations
                    or jobid in v.reservations]
            if rest:
                self.job_vertices[jobid] = rest

    def mod_dfv(self, u: Vertex, jobid: int) -> int:
        self.preorder += 1
        dom = self.dom
        u.colors[dom] = self._gray()
        if jobid not in u.tags:
            return 0
        self._mcache.pop(u.index, None)
        del u.tags[jobid]
        span = u.x_spans.pop(jobid, None)
        if span is not None:
            u.x_checker.rem_span(span)
        sp = u.subplans.get(dom)
        if sp is not None and jobid in u.job2span:
            sp.rem_span(u.job2span.pop(jobid))
        self._mod_plan(u, jobid)
        rc = 0
        verts = self.g.vertices
        for s in self.subsystems:
            for e in u.out:
                if e.subsystem != s or self.stop_explore(e, s):
                    continue
                if s == dom:
                    rc += self.mod_dfv(verts[e.target], jobid)
        u.colors[dom] = self._black()
        self.postorder += 1
        return rc

    @staticmethod
    def _mod_plan(u: Vertex, jobid: int) -> None:
        if jobid in u.allocations:
            u.plans.rem_span(u.allocations.pop(jobid))
        elif jobid in u.reservations:
            u.plans.rem_span(u.reservations.pop(jobid))

    def mod_exv(self, jobid: int) -> int:
        self.cache_flush()
        for v in self.g.vertices:
            self._mod_plan(v, jobid)
        self.job_vertices.pop(jobid, None)
        return 0

    # -- update: record an allocation from its R ------------------------------------------
    def run_update(self, book, writer, jobid: int, at: int, duration: int) -> int:
        """Record an existing allocation (Fluxion's ``run`` from an R string).

        ``book()`` is the reader's part: it adds the vertices' spans and marks the
        R's edges (and the root's virtual edge) with the new sequence number, raising
        ValueError on error. The update walk then books the filters and emits the R.
        """
        self.err = ""
        self.errno = ""
        self.tick()
        self.cache_flush()
        try:
            book()
        except ValueError as exc:
            self.err += f"{exc}\n"
            return -1
        if self.rt_seq != self.seq:
            return 0  # the R came from another dominant subsystem
        self.reset_color()
        root = self.root()
        meta = JobMeta(AT_ALLOC, jobid, at, at, duration)
        self.trav_level = 0
        n = self.upd_dfv(root, writer, self.rt_needs, bool(self.rt_excl), meta, False, {},
                         root.type in self.policy.x_types, False)
        if n > 0:
            writer.emit_tm(at, at + duration)
            return 0
        return -1

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

    def cancel_partial_vertex(self, v: Vertex, jobid: int, counts: dict[str, int]) -> int:
        """Take ``counts`` of ``jobid`` off the subtree filter of an ancestor ``v``."""
        self.cache_flush()
        sp = v.subplans.get(self.dom)
        if sp is not None and jobid in v.job2span and jobid in v.tags:
            try:
                removed = sp.reduce_span(v.job2span[jobid], counts)
            except ValueError as exc:
                self.err += (f"mod_agfilter: planner_multi_reduce_span returned -1.\n"
                             f"{v.name} {exc}.\n")
                return -1
            if removed:
                del v.job2span[jobid]
                v.tags.pop(jobid, None)
            span = v.x_spans.pop(jobid, None)
            if span is not None:
                v.x_checker.rem_span(span)
        if jobid not in v.allocations and jobid in v.reservations:
            v.plans.rem_span(v.reservations.pop(jobid))
            self.err += ("mod_plan: traverser tried to remove schedule and span after "
                         f"vtx_cancel during partial cancel:\n{v.name} Success.\n")
            return -1
        return 0

    def remove_ranks(self, ranks: list[int]) -> int:
        """Release every job's hold on the vertices of ``ranks`` (before removing them).

        As Fluxion: each vertex of a rank is cleared, and what the rank's allocations
        held is taken off the subtree filters of its ancestors for every job found
        on the rank.
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
                return -1
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
            return 0
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
        rc = 0
        for vid, per_job in parent_counts.items():
            for j, c in per_job.items():
                rc = self.cancel_partial_vertex(g.vertices[vid], j, c)
                if rc != 0:
                    self.err += f"remove: {g.vertices[vid].name}: cancel_vertex failed.\n"
                    return rc
        return rc

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


def partial_cancel(trav: Traverser, jobid: int, ranks: list[int],
                   rank_counts: dict[int, dict[str, int]] | None = None,
                   rank_roots: dict[int, Vertex] | None = None) -> tuple[int, bool]:
    """Release the part of ``jobid`` on ``ranks``; returns (rc, fully released).

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
                return -1, False
            best = 2**32
            for vid in vids:
                v = g.vertices[vid]
                if jobid in v.tags:
                    del v.tags[jobid]
                    span = v.x_spans.pop(jobid, None)
                    if span is not None:
                        v.x_checker.rem_span(span)
                    sp = v.subplans.get(dom)
                    if sp is not None and jobid in v.job2span:
                        sp.rem_span(v.job2span.pop(jobid))
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
        return -1, False
    parent_counts: dict[int, dict[str, int]] = {}
    order: list[int] = []
    for rank, sub_root in roots.items():
        if rank not in counts:
            trav.err += f"remove: {rank} not found in rank_to_counts.\n"
            return -1, False
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
        return 0, False
    for idx in order:
        v = g.vertices[idx]
        sp = v.subplans.get(dom)
        if sp is None or jobid not in v.job2span or jobid not in v.tags:
            continue
        if sp.reduce_span(v.job2span[jobid], parent_counts[idx]):
            del v.job2span[jobid]
            v.tags.pop(jobid, None)
        span = v.x_spans.pop(jobid, None)
        if span is not None:
            v.x_checker.rem_span(span)
        if jobid not in v.allocations and jobid in v.reservations:
            v.plans.rem_span(v.reservations.pop(jobid))
    return 0, jobid not in root.tags
