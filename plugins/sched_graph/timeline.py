"""Time-indexed availability of one resource pool (and of several, side by side).

This is the minimal planner the matcher needs: spans of usage over [start, end),
availability during a window, and the earliest future time at which a request fits.
It is kept small and exact rather than fast; the graph never holds many spans per
vertex in resource-query sessions.
"""

from __future__ import annotations

INT64_MAX = 2**63 - 1


class Timeline:
    """Usage spans over a horizon [base, base + duration) of a pool of ``total`` units."""

    __slots__ = ("total", "base", "duration", "spans", "_next")

    def __init__(self, total: int, base: int = 0, duration: int = INT64_MAX) -> None:
        self.total = total
        self.base = base
        self.duration = duration
        self.spans: dict[int, list[int]] = {}  # id -> [start, end, amount]
        self._next = 1

    def reset(self) -> None:
        self.spans.clear()

    def add_span(self, start: int, duration: int, amount: int) -> int:
        sid = self._next
        self._next += 1
        self.spans[sid] = [start, start + duration, amount]
        return sid

    def rem_span(self, sid: int) -> None:
        del self.spans[sid]

    def span_amount(self, sid: int) -> int:
        return self.spans[sid][2]

    def used_at(self, t: int) -> int:
        return sum(a for s, e, a in self.spans.values() if s <= t < e)

    def avail_at(self, t: int) -> int:
        return self.total - self.used_at(t)

    def avail_during(self, at: int, duration: int) -> int:
        """Units free during the whole window [at, at + duration)."""
        if not self.spans:
            return self.total
        end = at + duration
        points = [at] + [s for s, e, _ in self.spans.values() if at < s < end]
        used = 0
        for p in points:
            u = self.used_at(p)
            if u > used:
                used = u
        return self.total - used

    def points(self) -> set[int]:
        pts: set[int] = set()
        for s, e, _ in self.spans.values():
            pts.add(s)
            pts.add(e)
        return pts


class MultiTimeline:
    """Several typed pools that share span ids (a subtree aggregate filter)."""

    __slots__ = ("types", "pools", "spans", "_next")

    def __init__(self, totals: list[int], types: list[str], base: int = 0,
                 duration: int = INT64_MAX) -> None:
        self.types = list(types)
        self.pools = [Timeline(t, base, duration) for t in totals]
        self.spans: dict[int, list[int]] = {}  # id -> per-pool span ids (0: none)
        self._next = 1

    @property
    def base(self) -> int:
        return self.pools[0].base if self.pools else 0

    @property
    def duration(self) -> int:
        return self.pools[0].duration if self.pools else INT64_MAX

    def update_totals(self, totals: list[int], types: list[str]) -> None:
        if list(types) != self.types:
            self.__init__(totals, types)  # type: ignore[misc]
            return
        for pool, total in zip(self.pools, totals, strict=True):
            pool.total = total

    def reset(self) -> None:
        for p in self.pools:
            p.reset()
        self.spans.clear()

    def total_at(self, i: int) -> int:
        return self.pools[i].total

    def add_span(self, start: int, duration: int, counts: list[int]) -> int:
        sid = self._next
        self._next += 1
        self.spans[sid] = [p.add_span(start, duration, c) for p, c in zip(self.pools, counts,
                                                                           strict=True)]
        return sid

    def rem_span(self, sid: int) -> None:
        for p, psid in zip(self.pools, self.spans.pop(sid), strict=True):
            p.rem_span(psid)

    def reduce_span(self, sid: int, counts: dict[str, int]) -> bool:
        """Lower a span's amounts by type; True when the span is fully released."""
        psids = self.spans[sid]
        removed = True
        for i, (p, psid) in enumerate(zip(self.pools, psids, strict=True)):
            span = p.spans[psid]
            span[2] = max(0, span[2] - counts.get(self.types[i], 0))
            if span[2] > 0:
                removed = False
        if removed:
            self.rem_span(sid)
        return removed

    def span_planned(self, sid: int, i: int) -> int:
        return self.pools[i].spans[self.spans[sid][i]][2]

    def span_size(self) -> int:
        return len(self.spans)

    def avail_at(self, t: int, i: int) -> int:
        return self.pools[i].avail_at(t)

    def avail_during(self, at: int, duration: int, counts: list[int]) -> bool:
        for p, c in zip(self.pools, counts, strict=True):
            if c > p.total:
                return False
            if c and p.avail_during(at, duration) < c:
                return False
        return True

    def times_from(self, t: int, duration: int, counts: list[int]):
        """Yield, in time order, every scheduled point >= t at which the request fits.

        Raises ValueError (Fluxion: ERANGE) when a count exceeds a pool's total.
        """
        for p, c in zip(self.pools, counts, strict=True):
            if c > p.total:
                raise ValueError("request exceeds total")
        pts: set[int] = {t}
        for p in self.pools:
            pts |= {x for x in p.points() if x >= t}
        for x in sorted(pts):
            if self.avail_during(x, duration, counts):
                yield x
