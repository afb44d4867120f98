"""Match policies: how a vertex scores its candidates and which ones it keeps.

The interface a policy implements is ``strato.core.hookspecs.MatchPolicy`` (a
Protocol, documented there): Fluxion's callbacks ``dom_discover_vtx`` on the way
down, ``dom_finish_vtx`` after a vertex's children were evaluated (choose the best
k children of each requested type and score the vertex), ``dom_finish_slot`` and
``dom_finish_graph`` at slot and root level, plus a few attributes. ``MatchPolicy``
here is a base class with a default for each member, and the built-in policies
derive from it. Named policies are shorthands for option strings (``hinodex`` =
``policy=high node_centric=true node_exclusive=true``).
"""

from __future__ import annotations

from .jobspec import calc_count, calc_effective_max
from .scoring import MATCH_MET, MATCH_UNMET, Scoring, greater, less

INT64_MAX = 2**63 - 1

POLICIES = {
    "first": "policy=high node_centric=true stop_on_1_matches=true",
    "firstnodex": "policy=high node_centric=true node_exclusive=true stop_on_1_matches=true",
    "high": "policy=high",
    "low": "policy=low",
    "lonode": "policy=low node_centric=true",
    "hinode": "policy=high node_centric=true",
    "lonodex": "policy=low node_centric=true node_exclusive=true",
    "hinodex": "policy=high node_centric=true node_exclusive=true",
    "locality": "",
    "variation": "",
}

OPTIONS = ("policy", "node_centric", "stop_on_1_matches", "node_exclusive")


class PolicyError(ValueError):
    """Unknown policy name or malformed option string."""


def parse_options(text: str) -> dict[str, bool]:
    out: dict[str, bool] = {}
    for opt in text.split(" "):
        key, _, value = opt.partition("=")
        if key not in OPTIONS:
            raise PolicyError(f"invalid policy option: {key}")
        if key == "policy":
            if value not in ("high", "low"):
                raise PolicyError("policy key within custom policy accepts only low or high")
            out.setdefault(value, True)
        elif value in ("true", "false"):
            out.setdefault(key, value == "true")
        else:
            raise PolicyError(f"Policy option {key} requires true or false, got {value}")
    return out


class MatchPolicy:
    """Defaults for every member of the ``strato.core.hookspecs.MatchPolicy`` protocol:
    every callback accepts (Fluxion's dfu_match_cb_t), no score factors, no early
    stop, and no claim that scores are subtree-local (so no subtree cache)."""

    name = "base"
    stop_on_k_matches = 0
    subtree_local = False

    def __init__(self) -> None:
        self.x_types: set[str] = set()
        # score-factor state (only ``MultilevelId`` changes it); the traverser's subtree
        # cache keys on ``scores`` and replays ``factor_value`` for every cached policy
        self.scores = 0
        self.factor_value: dict[str, int] = {}

    def dom_discover_vtx(self, v) -> int:
        return 0

    def dom_finish_vtx(self, v, s: str, resources, dfu: Scoring) -> int:
        return 0

    def dom_finish_slot(self, s: str, dfu: Scoring) -> int:
        return 0

    def dom_finish_graph(self, s: str, resources, dfu: Scoring) -> int:
        return 0


def _finish_children(v, s: str, resources, dfu: Scoring, comp) -> int:
    score = MATCH_MET
    for r in resources:
        if r.type != v.type:
            continue
        for c in r.with_:
            count = calc_count(c, dfu.qualified_count(s, c.type))
            if count == 0:
                score = MATCH_UNMET
                break
            dfu.choose_accum_best_k(s, c.type, count, comp)
    return score


def _finish_slot(s: str, dfu: Scoring, comp=greater) -> int:
    """At a slot: keep every qualified candidate of each type, best first by `comp`."""
    for t in dfu.resrc_types(s):
        dfu.choose_accum_all(s, t, comp)
    return 0


def _finish_graph(s: str, resources, dfu: Scoring, comp_of) -> int:
    """At the root: choose the best k candidates of each requested type, compared by
    ``comp_of(evaluations of that type)``; the match fails if a type has none."""
    score = MATCH_MET
    for r in resources:
        count = calc_count(r, dfu.qualified_count(s, r.type))
        if count == 0:
            score = MATCH_UNMET
            break
        dfu.choose_accum_best_k(s, r.type, count, comp_of(dfu.evals(s, r.type)))
    dfu.overall_score = score
    return 0 if score == MATCH_MET else -1


class MultilevelId(MatchPolicy):
    """low/high id first, optionally scored by the containing node's id (``*node*``)."""

    def __init__(self, high: bool) -> None:
        super().__init__()
        self.comp = greater if high else less
        self.factors: dict[str, tuple[int, int]] = {}  # type -> (add_by, multiply_by)
        self.factor_value: dict[str, int] = {}
        self.scores = 0

    @property
    def subtree_local(self) -> bool:
        """A vertex's score depends on its subtree and on ``scores`` (the ancestors'
        factors, part of the cache key) -- with at most one factor type: the cache
        replays one type's ``factor_value``, not how several interleave."""
        return len(self.factors) <= 1

    def add_score_factor(self, type_: str, add_by: int, multiply_by: int) -> None:
        self.factors[type_] = (add_by, multiply_by)

    def dom_discover_vtx(self, v) -> int:
        f = self.factors.get(v.type)
        if f is not None:
            if v.id < -1:
                return -1
            add_by, mul = f
            tie = abs(v.uniq_id % mul - 1)
            self.factor_value[v.type] = (v.id + 1 + add_by) * mul + tie
            self.scores += self.factor_value[v.type]
        return 0

    def dom_finish_vtx(self, v, s, resources, dfu) -> int:
        score = _finish_children(v, s, resources, dfu, self.comp)
        if v.type in self.factors:
            self.scores -= self.factor_value.get(v.type, 0)
        dfu.overall_score = (score + self.scores + v.id + 1) if score == MATCH_MET else score
        return 0 if score == MATCH_MET else -1

    def dom_finish_slot(self, s, dfu) -> int:
        return _finish_slot(s, dfu, self.comp)

    def dom_finish_graph(self, s, resources, dfu) -> int:
        rc = _finish_graph(s, resources, dfu, lambda ev: self.comp)
        self.scores = 0
        return rc


class Locality(MatchPolicy):
    """Prefer children whose scores form the highest contiguous run (Fluxion ``locality``)."""

    name = "locality"
    subtree_local = True  # a vertex's score: its id and its children's scores

    def dom_finish_vtx(self, v, s, resources, dfu) -> int:
        score = _finish_children(v, s, resources, dfu, greater)
        dfu.overall_score = (score + v.id + 1) if score == MATCH_MET else score
        return 0 if score == MATCH_MET else -1

    def dom_finish_slot(self, s, dfu) -> int:
        return _finish_slot(s, dfu)

    def dom_finish_graph(self, s, resources, dfu) -> int:
        return _finish_graph(s, resources, dfu, _by_run)


def _by_run(ev):
    """Compare candidates by the start of the run of consecutive scores each is in
    (the highest run first)."""
    runs = _interval_starts(g.score for g in ev.groups)

    def comp(a, b, runs=runs):
        return runs[a.score] > runs[b.score]

    comp.sort_key = lambda g, runs=runs: -runs[g.score]  # for std_sort
    return comp


def _interval_starts(scores) -> dict[int, int]:
    """Map each score to the lower end of the run of consecutive scores it is in."""
    vals = sorted(set(scores))
    out: dict[int, int] = {}
    start = None
    prev = None
    for x in vals:
        if prev is None or x != prev + 1:
            start = x
        out[x] = start
        prev = x
    return out


class VarAware(MatchPolicy):
    """Prefer resources of the best ``perf_class`` property (Fluxion ``variation``)."""

    name = "variation"
    subtree_local = True  # a vertex's score: its perf_class and its children's scores

    def dom_finish_vtx(self, v, s, resources, dfu) -> int:
        score = _finish_children(v, s, resources, dfu, less)
        perf = 9999
        if score == MATCH_MET:
            try:
                perf = int(v.properties["perf_class"])
            except (KeyError, ValueError):
                perf = 9999
            if perf < 0 or perf > 9999:
                perf = 9999
        dfu.overall_score = (score + perf) if score == MATCH_MET else score
        return 0 if score == MATCH_MET else -1

    def dom_finish_slot(self, s, dfu) -> int:
        return _finish_slot(s, dfu)

    def dom_finish_graph(self, s, resources, dfu) -> int:
        return _finish_graph(s, resources, dfu, lambda ev: less)


def known_policy(name: str) -> bool:
    if name in POLICIES:
        return True
    try:
        parse_options(name)
    except (PolicyError, IndexError):
        return False
    return True


def create_policy(name: str) -> MatchPolicy:
    """Build a policy from a name or an option string; raises PolicyError."""
    if name == "locality":
        return Locality()
    if name == "variation":
        return VarAware()
    opts = parse_options(POLICIES.get(name, name))
    if not (opts.get("high") or opts.get("low")):
        raise PolicyError(f"unknown match policy: {name}")
    p = MultilevelId(high=bool(opts.get("high")))
    p.name = name
    if opts.get("node_centric"):
        p.add_score_factor("node", 1, 10000)
    if opts.get("node_exclusive"):
        p.x_types.add("node")
    if opts.get("stop_on_1_matches"):
        p.stop_on_k_matches = 1
    return p


__all__ = ["MatchPolicy", "create_policy", "known_policy", "calc_effective_max", "INT64_MAX"]
