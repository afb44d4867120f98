"""Evaluation records of one vertex visit: edge groups scored per subsystem and type.

A child that matched adds an *edge group* (score, count, the edge to it) under its
resource type; a vertex that asks for k children of a type sorts the groups with the
policy's comparison and keeps the best k. Sorting reproduces libstdc++'s unstable
``std::sort`` exactly, because Fluxion's choice among equal scores depends on it.
"""

from __future__ import annotations

import heapq
import operator
from collections.abc import Callable

MATCH_UNMET = 0
MATCH_MET = 1


class EvalEdge:
    __slots__ = ("count", "needs", "exclusive", "edge")

    def __init__(self, count: int, needs: int, exclusive: int, edge=None) -> None:
        self.count = count
        self.needs = needs
        self.exclusive = exclusive
        self.edge = edge


class EGroup:
    __slots__ = ("score", "count", "needs", "exclusive", "root", "edges")

    def __init__(self, score: int = -1, count: int = 0, needs: int = 0, exclusive: int = 0,
                 root: bool = False) -> None:
        self.score = score
        self.count = count
        self.needs = needs
        self.exclusive = exclusive
        self.root = root
        self.edges: list[EvalEdge] = []


Less = Callable[[EGroup, EGroup], bool]


def greater(a: EGroup, b: EGroup) -> bool:
    return a.score > b.score


def less(a: EGroup, b: EGroup) -> bool:
    return a.score < b.score


# -- libstdc++ std::sort ------------------------------------------------------------
_THRESHOLD = 16


def _insertion_sort(a: list, lo: int, hi: int, comp: Less) -> None:
    for i in range(lo + 1, hi):
        val = a[i]
        if comp(val, a[lo]):
            a[lo + 1:i + 1] = a[lo:i]
            a[lo] = val
        else:
            j = i
            while comp(val, a[j - 1]):
                a[j] = a[j - 1]
                j -= 1
            a[j] = val


def _unguarded_insertion_sort(a: list, lo: int, hi: int, comp: Less) -> None:
    for i in range(lo, hi):
        val = a[i]
        j = i
        while comp(val, a[j - 1]):
            a[j] = a[j - 1]
            j -= 1
        a[j] = val


def _move_median_to_first(a: list, result: int, x: int, y: int, z: int, comp: Less) -> None:
    if comp(a[x], a[y]):
        if comp(a[y], a[z]):
            a[result], a[y] = a[y], a[result]
        elif comp(a[x], a[z]):
            a[result], a[z] = a[z], a[result]
        else:
            a[result], a[x] = a[x], a[result]
    elif comp(a[x], a[z]):
        a[result], a[x] = a[x], a[result]
    elif comp(a[y], a[z]):
        a[result], a[z] = a[z], a[result]
    else:
        a[result], a[y] = a[y], a[result]


def _unguarded_partition(a: list, first: int, last: int, pivot: int, comp: Less) -> int:
    while True:
        while comp(a[first], a[pivot]):
            first += 1
        last -= 1
        while comp(a[pivot], a[last]):
            last -= 1
        if not first < last:
            return first
        a[first], a[last] = a[last], a[first]
        first += 1


def _heap_sort(a: list, lo: int, hi: int, comp: Less) -> None:
    import functools

    a[lo:hi] = sorted(a[lo:hi], key=functools.cmp_to_key(
        lambda x, y: -1 if comp(x, y) else (1 if comp(y, x) else 0)))


def _introsort_loop(a: list, lo: int, hi: int, depth: int, comp: Less) -> None:
    while hi - lo > _THRESHOLD:
        if depth == 0:
            _heap_sort(a, lo, hi, comp)
            return
        depth -= 1
        mid = lo + (hi - lo) // 2
        _move_median_to_first(a, lo, lo + 1, mid, hi - 1, comp)
        cut = _unguarded_partition(a, lo + 1, hi, lo, comp)
        _introsort_loop(a, cut, hi, depth, comp)
        hi = cut


def std_sort(a: list, comp: Less) -> None:
    """Sort ``a`` in place exactly as libstdc++'s std::sort would.

    A comparison with a ``sort_key`` attribute (``comp(x, y) == key(x) < key(y)``)
    runs the same algorithm on precomputed keys (same moves, no calls per compare).
    """
    n = len(a)
    if n < 2:
        return
    key = getattr(comp, "sort_key", None)
    if key is not None:
        _std_sort_keyed(a, [key(x) for x in a])
        return
    _introsort_loop(a, 0, n, 2 * (n.bit_length() - 1), comp)
    if n > _THRESHOLD:
        _insertion_sort(a, 0, _THRESHOLD, comp)
        _unguarded_insertion_sort(a, _THRESHOLD, n, comp)
    else:
        _insertion_sort(a, 0, n, comp)


# -- the same std::sort on parallel lists: keys ``ks`` (compared with ``<``), items ``a``
def _ins_k(ks: list, a: list, lo: int, hi: int) -> None:
    for i in range(lo + 1, hi):
        v = ks[i]
        it = a[i]
        if v < ks[lo]:
            ks[lo + 1:i + 1] = ks[lo:i]
            a[lo + 1:i + 1] = a[lo:i]
            ks[lo] = v
            a[lo] = it
        else:
            j = i
            while v < ks[j - 1]:
                ks[j] = ks[j - 1]
                a[j] = a[j - 1]
                j -= 1
            ks[j] = v
            a[j] = it


def _unguarded_ins_k(ks: list, a: list, lo: int, hi: int) -> None:
    for i in range(lo, hi):
        v = ks[i]
        it = a[i]
        j = i
        while v < ks[j - 1]:
            ks[j] = ks[j - 1]
            a[j] = a[j - 1]
            j -= 1
        ks[j] = v
        a[j] = it


def _median_k(ks: list, a: list, result: int, x: int, y: int, z: int) -> None:
    kx, ky, kz = ks[x], ks[y], ks[z]
    if kx < ky:
        if ky < kz:
            m = y
        elif kx < kz:
            m = z
        else:
            m = x
    elif kx < kz:
        m = x
    elif ky < kz:
        m = z
    else:
        m = y
    ks[result], ks[m] = ks[m], ks[result]
    a[result], a[m] = a[m], a[result]


def _partition_k(ks: list, a: list, first: int, last: int, pivot: int) -> int:
    pk = ks[pivot]  # the pivot stays at ``pivot`` (first > pivot throughout)
    while True:
        while ks[first] < pk:
            first += 1
        last -= 1
        while pk < ks[last]:
            last -= 1
        if not first < last:
            return first
        ks[first], ks[last] = ks[last], ks[first]
        a[first], a[last] = a[last], a[first]
        first += 1


def _heap_sort_k(ks: list, a: list, lo: int, hi: int) -> None:
    # ``_heap_sort``: a stable sort, whose result is unique
    order = sorted(range(lo, hi), key=ks.__getitem__)
    ks[lo:hi] = [ks[i] for i in order]
    a[lo:hi] = [a[i] for i in order]


def _std_sort_keyed(a: list, ks: list) -> None:
    n = len(a)
    if n > _THRESHOLD and ks.count(ks[0]) == n:
        _std_sort_equal(a)
    else:
        _std_sort_keyed_run(a, ks)


def _std_sort_equal(a: list) -> None:
    """``_std_sort_keyed_run`` when every key is equal (every comparison is false).

    The median of three then swaps ``a[lo]`` and ``a[mid]``; the partition swaps
    ``a[lo+1+t]`` and ``a[hi-1-t]`` until they meet (it reverses ``a[lo+1:hi]``) and
    cuts at ``lo + 1 + (hi-lo-1) // 2``; insertion and heap sorts move nothing.
    """
    lo, hi, depth = 0, len(a), 2 * (len(a).bit_length() - 1)
    stack = []
    while True:
        while hi - lo > _THRESHOLD and depth > 0:
            depth -= 1
            mid = lo + (hi - lo) // 2
            a[lo], a[mid] = a[mid], a[lo]
            a[lo + 1:hi] = a[hi - 1:lo:-1]
            cut = lo + 1 + (hi - lo - 1) // 2
            stack.append((lo, cut, depth))
            lo = cut
        if not stack:
            return
        lo, hi, depth = stack.pop()


def _std_sort_keyed_run(a: list, ks: list) -> None:
    n = len(a)
    lo, hi, depth = 0, n, 2 * (n.bit_length() - 1)
    stack = []
    while True:  # _introsort_loop, its recursion on the right part made explicit
        while hi - lo > _THRESHOLD:
            if depth == 0:
                _heap_sort_k(ks, a, lo, hi)
                break
            depth -= 1
            mid = lo + (hi - lo) // 2
            _median_k(ks, a, lo, lo + 1, mid, hi - 1)
            cut = _partition_k(ks, a, lo + 1, hi, lo)
            stack.append((lo, cut, depth))
            lo = cut
        if not stack:
            break
        lo, hi, depth = stack.pop()
    if n > _THRESHOLD:
        _ins_k(ks, a, 0, _THRESHOLD)
        _unguarded_ins_k(ks, a, _THRESHOLD, n)
    else:
        _ins_k(ks, a, 0, n)


class Evals:
    """The edge groups of one resource type seen under a vertex."""

    __slots__ = ("groups", "cutline", "qual_count", "total_count", "best_k", "best_i", "_it")

    def __init__(self) -> None:
        self.groups: list[EGroup] = []
        self.cutline = 0
        self.qual_count = 0
        self.total_count = 0
        self.best_k = 0
        self.best_i = 0
        self._it = -1  # -1: reset

    def add(self, eg: EGroup) -> None:
        self.total_count += eg.count
        if eg.score > self.cutline:
            self.qual_count += eg.count
        self.groups.append(eg)

    def merge(self, o: Evals) -> None:
        self.qual_count += o.qual_count
        self.total_count += o.total_count
        self.groups.extend(o.groups)

    def choose_best_k(self, k: int, comp: Less, fast: bool = False) -> bool:
        if k == 0 or k > self.qual_count:
            return False
        if not (fast and self._top_k(k, comp)):
            std_sort(self.groups, comp)
        i = 0
        left = k
        while left > 0:
            g = self.groups[i]
            g.needs = left if left <= g.count else g.count
            left -= g.count
            i += 1
        self.best_k = k
        self.best_i = i
        return True

    def _top_k(self, k: int, comp: Less) -> bool:
        """Put the k best groups first, in order, when any correct sort must.

        Every group counts at least 1, so at most the first k sorted groups are read.
        If the best k+1 sort keys (scores, or Locality's run starts) are pairwise
        distinct, each of the first k positions of
        a correct sort (``std_sort`` is one) holds the same group, whatever the
        algorithm; only the order after them differs, and nothing reads it.
        """
        groups = self.groups
        n = len(groups)
        key = getattr(comp, "sort_key", None)  # comp(x, y) == key(x) < key(y)
        if n <= 64 or k > 16 or key is None:
            return False
        top = heapq.nsmallest(k + 1, groups, key=key)
        if len({key(g) for g in top}) != len(top):
            return False
        for g in top[:k]:
            if g.count < 1:  # then more than k groups could be read
                return False
        # move them to the front in order (a permutation: the rest is never read)
        for j in range(k):
            i = groups.index(top[j], j)
            groups[j], groups[i] = groups[i], groups[j]
        return True

    def iter_next(self) -> EGroup | None:
        if self._it == -1:
            self._it = 0
        elif self._it < len(self.groups):
            self._it += 1
        return self.groups[self._it] if self._it < len(self.groups) else None

    def iter_reset(self) -> None:
        self._it = -1


_score = operator.attrgetter("score")
less.sort_key = _score  # type: ignore[attr-defined]
greater.sort_key = lambda g: -g.score  # type: ignore[attr-defined]


class Scoring:
    """Per-visit scoring table: subsystem -> resource type -> Evals."""

    __slots__ = ("ssys", "hier_constrain_now", "overall_score", "avail", "order", "fast_topk")

    def __init__(self, order) -> None:
        self.ssys: dict[str, dict[str, Evals]] = {}
        self.hier_constrain_now = False
        self.overall_score = -1
        self.avail = 0
        self.order = order  # TypeOrder, for Fluxion's type iteration order
        self.fast_topk = False  # Evals.choose_best_k may take the exact top-k shortcut

    def evals(self, s: str, t: str) -> Evals:
        m = self.ssys.get(s)
        if m is None:
            m = self.ssys[s] = {}
        ev = m.get(t)
        if ev is None:
            ev = m[t] = Evals()
        return ev

    def add(self, s: str, t: str, eg: EGroup) -> None:
        self.evals(s, t).add(eg)

    def qualified_count(self, s: str, t: str) -> int:
        return self.evals(s, t).qual_count

    def total_count(self, s: str, t: str) -> int:
        return self.evals(s, t).total_count

    def is_contained(self, s: str, t: str) -> bool:
        return t in self.ssys.get(s, {})

    def resrc_types(self, s: str) -> list[str]:
        return self.order.sort(self.ssys.get(s, {}).keys())

    def merge(self, o: Scoring) -> None:
        for s, tmap in o.ssys.items():
            for t, ev in tmap.items():
                self.evals(s, t).merge(ev)

    def choose_accum_best_k(self, s: str, t: str, k: int, comp: Less = greater) -> None:
        if self.evals(s, t).choose_best_k(k, comp, self.fast_topk):
            self.hier_constrain_now = True

    def choose_accum_all(self, s: str, t: str, comp: Less = greater) -> None:
        ev = self.evals(s, t)
        if ev.choose_best_k(ev.qual_count, comp):
            self.hier_constrain_now = True
