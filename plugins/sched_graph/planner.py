"""Time-indexed resource availability: Fluxion's ``planner`` and ``planner_multi``.

A :class:`Planner` tracks how much of one resource (``total`` units, e.g. the 32
cores below a node) is free at every integer time of its horizon
``[base_time, base_time + horizon)``.  Allocations and reservations are *spans*:
``request`` units held during ``[start, start + duration)``.  The scheduler asks
whether a request fits in a window (:meth:`Planner.avail_during`), and when the
earliest fitting window starts (:meth:`Planner.avail_time_first`, then
:meth:`Planner.avail_times` for later candidates, as Fluxion's
``planner_avail_time_next``).

A :class:`MultiPlanner` holds several resource types that move in lockstep: every
span holds an amount of each type during the same window.  Pruning filters keep
one per vertex (e.g. the cores and gpus below a node) so a subtree that cannot
satisfy a request is skipped without being visited.

Representation.  The timeline is a sorted list of *change points* ``times``;
``used[i]`` is the amount held during ``[times[i], times[i + 1])`` (the last
segment runs to the end of the horizon).  ``times[0]`` is always ``base_time``.
A point exists while some span starts or ends there (a reference count per
point), exactly as Fluxion's scheduled points, so the points returned by the
``points_only`` search mode are the ones Fluxion would return.  Lookups are
``bisect`` on plain lists (O(log n)); adding or removing a span touches the
points inside its window (O(k)) plus a list insert or delete (a memmove).  Scans
for a free window run in C (``operator.indexOf`` over ``map``), never a Python
loop per point.

Errors.  Every refused request raises :class:`PlannerError` (a ``ValueError``)
with a one-line message; the planner is unchanged after an error.
"""

from __future__ import annotations

import operator
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Mapping, Sequence
from itertools import islice
from typing import NamedTuple

__all__ = ["INT64_MAX", "MultiPlanner", "MultiSpan", "Planner", "PlannerError", "Span"]

#: Default horizon: as far as Fluxion's planners reach (``INT64_MAX``).
INT64_MAX = 2**63 - 1

_indexOf = operator.indexOf


class PlannerError(ValueError):
    """A planner request that cannot be honoured (one-line message)."""


class Span(NamedTuple):
    """A span of a :class:`Planner`: ``request`` units during ``[start, end)``."""

    span_id: int
    start: int
    duration: int
    request: int

    @property
    def end(self) -> int:
        return self.start + self.duration


class MultiSpan(NamedTuple):
    """A span of a :class:`MultiPlanner`: ``requests[type]`` units during ``[start, end)``."""

    span_id: int
    start: int
    duration: int
    requests: dict[str, int]

    @property
    def end(self) -> int:
        return self.start + self.duration


def _int(value: object, what: str, op: str) -> int:
    """Return ``value`` as an int (anything with ``__index__`` but bool) or raise."""
    if type(value) is int:
        return value
    if not isinstance(value, bool):
        try:
            return operator.index(value)  # type: ignore[arg-type]
        except TypeError:
            pass
    raise PlannerError(f"{op}: {what} must be an integer, not {type(value).__name__}")


def _iter_from(lst: list, index: int) -> Iterator:
    """An iterator over ``lst[index:]`` without copying (O(1) positioning)."""
    it = iter(lst)
    it.__setstate__(index)
    return it


def _window(at: int, duration: int) -> str:
    return f"[{at}, {at + duration})"


class _Timeline:
    """Change points, span table and horizon shared by both planners."""

    __slots__ = ("_base", "_end", "_times", "_refs", "_spans", "_next_id", "_version")

    def __init__(self, base_time: object, horizon: object, op: str) -> None:
        base_time = _int(base_time, "base_time", op)
        horizon = _int(horizon, "horizon", op)
        if horizon < 1:
            raise PlannerError(f"{op}: horizon must be >= 1, not {horizon}")
        self._base = base_time
        self._end = base_time + horizon
        self._times: list[int] = [base_time]
        # Reference count of each point: spans starting or ending there.  The base
        # point holds a permanent reference so it is never deleted.
        self._refs: dict[int, int] = {base_time: 1}
        self._spans: dict[int, list] = {}
        self._next_id = 1
        self._version = 0  # bumped by every change; live avail_times iterators check it

    # -- horizon -------------------------------------------------------------------
    @property
    def base_time(self) -> int:
        """First schedulable time."""
        return self._base

    @property
    def horizon(self) -> int:
        """Length of the schedulable range ``[base_time, end)``."""
        return self._end - self._base

    @property
    def end(self) -> int:
        """End of the horizon (exclusive): every span ends at or before it."""
        return self._end

    # -- spans ---------------------------------------------------------------------
    @property
    def spans(self) -> int:
        """Number of spans currently held."""
        return len(self._spans)

    def __len__(self) -> int:
        return len(self._spans)

    def __contains__(self, span_id: object) -> bool:
        try:
            return span_id in self._spans
        except TypeError:
            return False

    def span_ids(self) -> list[int]:
        """Ids of the spans currently held, oldest first."""
        return list(self._spans)

    def is_active_span(self, span_id: object) -> bool:
        """True if ``span_id`` is held (Fluxion's ``planner_is_active_span``)."""
        return span_id in self

    def change_points(self) -> list[int]:
        """The times at which availability may change (base time included)."""
        return list(self._times)

    def _lookup(self, span_id: object, op: str) -> list:
        try:
            rec = self._spans.get(span_id)  # type: ignore[call-overload]
        except TypeError:
            rec = None
        if rec is None:
            raise PlannerError(f"{op}: unknown span id {span_id!r:.40}")
        return rec

    def _check_window(self, start: object, duration: object, op: str) -> tuple[int, int]:
        start = _int(start, "start time", op)
        duration = _int(duration, "duration", op)
        if duration < 1:
            raise PlannerError(f"{op}: duration must be >= 1, not {duration}")
        if start < self._base or start + duration > self._end:
            raise PlannerError(
                f"{op}: window {_window(start, duration)} is outside the planner horizon "
                f"[{self._base}, {self._end})"
            )
        return start, duration

    def _check_query(self, at: object, duration: object, op: str) -> tuple[int, int]:
        at = _int(at, "time", op)
        duration = _int(duration, "duration", op)
        if duration < 1:
            raise PlannerError(f"{op}: duration must be >= 1, not {duration}")
        return at, duration

    def _check_on_or_after(self, on_or_after: object, duration: object, op: str) -> tuple[int, int]:
        on_or_after, duration = self._check_query(on_or_after, duration, op)
        if on_or_after < self._base:
            raise PlannerError(
                f"{op}: on_or_after {on_or_after} is before the planner base time {self._base}"
            )
        return on_or_after, duration

    def _check_at(self, at: object, op: str) -> int:
        at = _int(at, "time", op)
        if not self._base <= at < self._end:
            raise PlannerError(
                f"{op}: time {at} is outside the planner horizon [{self._base}, {self._end})"
            )
        return at

    def _add_points(self, start: int, end: int, used_lists: Sequence[list]) -> tuple[int, int]:
        """Reference (creating if needed) the points ``start`` and ``end``.

        Returns the indexes ``i, j`` of the two points; the segments of the window are
        ``i .. j-1``.  A new point copies the amount used in the segment it splits.
        """
        times = self._times
        refs = self._refs
        i = bisect_right(times, start) - 1
        j = bisect_left(times, end, i + 1)
        if times[i] == start:
            refs[start] += 1
        else:
            i += 1
            j += 1
            times.insert(i, start)
            for used in used_lists:
                used.insert(i, used[i - 1])
            refs[start] = 1
        if j < len(times) and times[j] == end:
            refs[end] += 1
        else:
            times.insert(j, end)
            for used in used_lists:
                used.insert(j, used[j - 1])
            refs[end] = 1
        return i, j

    def _drop_points(
        self, start: int, end: int, i: int, j: int, used_lists: Sequence[list]
    ) -> None:
        """Release one reference on the points ``start`` (index i) and ``end`` (j).

        A point with no reference left is deleted: nothing starts or ends there, so
        the amount used on both sides of it is the same.
        """
        refs = self._refs
        n = refs[end] - 1
        if n:
            refs[end] = n
        else:
            del refs[end]
            del self._times[j]
            for used in used_lists:
                del used[j]
        n = refs[start] - 1
        if n:
            refs[start] = n
        else:
            del refs[start]
            del self._times[i]
            for used in used_lists:
                del used[i]

    def _window_indexes(self, start: int, end: int) -> tuple[int, int]:
        times = self._times
        i = bisect_left(times, start)
        return i, bisect_left(times, end, i + 1)

    def _first_candidate(self, on_or_after: int, points_only: bool) -> tuple[int, int | None]:
        """Index of the point holding the first candidate, and the candidate time.

        The candidate time is ``None`` when it is the point's own time.
        """
        times = self._times
        k = bisect_right(times, on_or_after) - 1
        if times[k] == on_or_after:
            return k, None
        if points_only:
            return k + 1, None
        return k, on_or_after


class Planner(_Timeline):
    """Amount of one resource available over time ``[base_time, base_time + horizon)``.

    ``total`` units exist at every time of the horizon.  Spans hold part of them
    during a window; the planner answers when and how much is free.  Times and
    amounts are integers (Fluxion uses seconds).

    Candidate start times (:meth:`avail_time_first`, :meth:`avail_times`): by default
    the earliest start ``>= on_or_after`` at which the request fits, which is always
    ``on_or_after`` itself or a change point.  With ``points_only=True`` the search
    returns change points only, never ``on_or_after`` between two of them -- exactly
    Fluxion's ``planner_avail_time_first``/``_next``.
    """

    __slots__ = ("_total", "_type", "_used")

    def __init__(
        self,
        total: int,
        base_time: int = 0,
        horizon: int = INT64_MAX,
        resource_type: str = "",
    ) -> None:
        total = _int(total, "total", "planner")
        if total < 0:
            raise PlannerError(f"planner: total must be >= 0, not {total}")
        if not isinstance(resource_type, str):
            raise PlannerError("planner: resource_type must be a string")
        super().__init__(base_time, horizon, "planner")
        self._total = total
        self._type = resource_type
        self._used: list[int] = [0]

    @classmethod
    def empty(cls, total: int, horizon_end: int, resource_type: str = "") -> Planner:
        """An empty planner over ``[0, horizon_end)``, for arguments the caller knows
        are valid: a resource graph makes one per vertex (33,000 for 1024x32
        nodes), and the checks of the constructor were a third of their cost."""
        new = cls.__new__(cls)
        new._base, new._end = 0, horizon_end
        new._times, new._used = [0], [0]
        new._refs = {0: 1}
        new._spans = {}
        new._next_id, new._version = 1, 0
        new._total, new._type = total, resource_type
        return new

    # -- properties ----------------------------------------------------------------
    @property
    def total(self) -> int:
        """Units of the resource that exist (change with :meth:`update_total`)."""
        return self._total

    @property
    def resource_type(self) -> str:
        return self._type

    def __repr__(self) -> str:
        kind = f" {self._type!r}" if self._type else ""
        return (
            f"<Planner{kind} total={self._total} horizon=[{self._base}, {self._end}) "
            f"spans={len(self._spans)}>"
        )

    def _units(self) -> str:
        return f" {self._type}" if self._type else ""

    def copy(self) -> Planner:
        """An independent copy (same spans, same span ids)."""
        new = Planner.__new__(Planner)
        new._base, new._end = self._base, self._end
        new._times, new._used = list(self._times), list(self._used)
        new._refs = dict(self._refs)
        new._spans = {sid: list(rec) for sid, rec in self._spans.items()}
        new._next_id, new._version = self._next_id, 0
        new._total, new._type = self._total, self._type
        return new

    # -- spans ---------------------------------------------------------------------
    def add_span(self, start: int, duration: int, request: int) -> int:
        """Hold ``request`` units during ``[start, start + duration)``; return a span id.

        Raises :class:`PlannerError` if the window is not inside the horizon, if
        ``duration < 1`` or ``request < 0``, or if fewer than ``request`` units are
        free at some time of the window.  Span ids are positive and never reused.
        """
        if not (
            type(start) is int
            and type(duration) is int
            and type(request) is int
            and duration > 0
            and 0 <= request <= self._total
            and start >= self._base
            and start + duration <= self._end
        ):
            start, duration = self._check_window(start, duration, "add_span")
            request = self._check_request(request, "add_span")
        end = start + duration
        times = self._times
        used = self._used
        limit = self._total - request
        if len(times) > 1:
            i = bisect_right(times, start) - 1
            j = bisect_left(times, end, i + 1)
            peak = used[i] if j == i + 1 else max(used[i:j])
            if peak > limit:
                raise PlannerError(
                    f"add_span: request of {request}{self._units()} exceeds the "
                    f"{self._total - peak} available during {_window(start, duration)}"
                )
        i, j = self._add_points(start, end, (used,))
        if request:
            if j == i + 1:
                used[i] += request
            else:
                used[i:j] = [u + request for u in used[i:j]]
        sid = self._next_id
        self._next_id = sid + 1
        self._spans[sid] = [start, end, request]
        self._version += 1
        return sid

    def _check_request(self, request: object, op: str) -> int:
        request = _int(request, "request", op)
        if request < 0:
            raise PlannerError(f"{op}: request must be >= 0, not {request}")
        if request > self._total:
            raise PlannerError(
                f"{op}: request of {request}{self._units()} exceeds the total of {self._total}"
            )
        return request

    def rem_span(self, span_id: int) -> None:
        """Remove a span, releasing everything it holds."""
        start, end, amount = self._lookup(span_id, "rem_span")
        del self._spans[span_id]
        used = self._used
        i, j = self._window_indexes(start, end)
        if amount:
            if j == i + 1:
                used[i] -= amount
            else:
                used[i:j] = [u - amount for u in used[i:j]]
        self._drop_points(start, end, i, j, (used,))
        self._version += 1

    def reduce_span(self, span_id: int, amount: int) -> bool:
        """Release ``amount`` units of a span (partial cancel).

        Releasing everything the span holds removes it (as does ``amount == 0`` on a
        span holding nothing, as in Fluxion).  Returns True if the span was removed.
        """
        rec = self._lookup(span_id, "reduce_span")
        amount = _int(amount, "amount", "reduce_span")
        planned = rec[2]
        if amount == planned:
            self.rem_span(span_id)
            return True
        if amount < 0 or amount > planned:
            raise PlannerError(
                f"reduce_span: cannot release {amount} from span {span_id} holding {planned}"
            )
        if amount:
            rec[2] = planned - amount
            used = self._used
            i, j = self._window_indexes(rec[0], rec[1])
            if j == i + 1:
                used[i] -= amount
            else:
                used[i:j] = [u - amount for u in used[i:j]]
            self._version += 1
        return False

    def span(self, span_id: int) -> Span:
        """Information about a held span."""
        start, end, amount = self._lookup(span_id, "span")
        return Span(span_id, start, end - start, amount)

    def clear(self) -> None:
        """Remove every span (span ids keep increasing)."""
        self._times = [self._base]
        self._used = [0]
        self._refs = {self._base: 1}
        self._spans.clear()
        self._version += 1

    def update_total(self, new_total: int) -> None:
        """Grow or shrink the resource (elasticity).

        Shrinking below the amount held at some time of the horizon raises
        :class:`PlannerError` (Fluxion clamps instead; strato refuses to over-commit).
        """
        new_total = _int(new_total, "total", "update_total")
        if new_total < 0:
            raise PlannerError(f"update_total: total must be >= 0, not {new_total}")
        peak = max(self._used)
        if new_total < peak:
            at = self._times[self._used.index(peak)]
            raise PlannerError(
                f"update_total: a total of {new_total}{self._units()} would over-commit: "
                f"{peak} are held at time {at}"
            )
        self._total = new_total
        self._version += 1

    # -- queries -------------------------------------------------------------------
    def avail_at(self, at: int) -> int:
        """Units free at time ``at`` (inside the horizon, else PlannerError)."""
        if type(at) is not int or not self._base <= at < self._end:
            at = self._check_at(at, "avail_at")
        times = self._times
        if len(times) == 1:
            return self._total - self._used[0]
        return self._total - self._used[bisect_right(times, at) - 1]

    def used_at(self, at: int) -> int:
        """Units held by spans at time ``at``."""
        return self._total - self.avail_at(at)

    def is_busy(self, at: int) -> bool:
        """True if some span holds units at time ``at``."""
        return self.avail_at(at) < self._total

    def avail_during(self, at: int, duration: int, request: int) -> bool:
        """True if ``request`` units are free during the whole ``[at, at + duration)``.

        A window that leaves the horizon, or a request above the total, is simply not
        available (False); a malformed argument (``duration < 1``, ``request < 0``,
        not an integer) raises PlannerError.
        """
        if not (type(at) is int and type(duration) is int and type(request) is int):
            at, duration = self._check_query(at, duration, "avail_during")
            request = _int(request, "request", "avail_during")
        if duration < 1 or request < 0:
            self._check_query(at, duration, "avail_during")
            raise PlannerError(f"avail_during: request must be >= 0, not {request}")
        if at < self._base or at + duration > self._end:
            return False
        limit = self._total - request
        times = self._times
        used = self._used
        if len(times) == 1:
            return used[0] <= limit
        i = bisect_right(times, at) - 1
        j = bisect_left(times, at + duration, i + 1)
        return (used[i] if j == i + 1 else max(used[i:j])) <= limit

    def avail_resources_during(self, at: int, duration: int) -> int:
        """Fewest units free at any time of ``[at, at + duration)`` (inside the horizon)."""
        times = self._times
        used = self._used
        if not (
            type(at) is int
            and type(duration) is int
            and duration > 0
            and at >= self._base
            and at + duration <= self._end
        ):
            at, duration = self._check_window(at, duration, "avail_resources_during")
        elif len(times) == 1:
            return self._total - used[0]
        i = bisect_right(times, at) - 1
        j = bisect_left(times, at + duration, i + 1)
        return self._total - (used[i] if j == i + 1 else max(used[i:j]))

    def avail_time_first(
        self, on_or_after: int, duration: int, request: int, *, points_only: bool = False
    ) -> int | None:
        """Earliest start ``>= on_or_after`` at which ``request`` units are free for ``duration``.

        Returns None when no such window ends within the horizon (or when ``request``
        exceeds the total).  ``points_only`` restricts answers to change points, as
        Fluxion does (see the class docstring).
        """
        if (
            len(self._times) == 1
            and type(on_or_after) is int
            and type(duration) is int
            and type(request) is int
            and duration > 0
            and request >= 0
            and on_or_after >= self._base
        ):
            # Fast path: nothing planned.
            if request > self._total or on_or_after + duration > self._end:
                return None
            if points_only and on_or_after != self._base:
                return None
            return on_or_after
        on_or_after, duration = self._check_on_or_after(on_or_after, duration, "avail_time_first")
        request = _int(request, "request", "avail_time_first")
        if request < 0:
            raise PlannerError(f"avail_time_first: request must be >= 0, not {request}")
        return next(self._scan(on_or_after, duration, request, points_only), None)

    def avail_times(
        self, on_or_after: int, duration: int, request: int, *, points_only: bool = False
    ) -> Iterator[int]:
        """Every candidate start, earliest first (Fluxion's ``avail_time_first``/``_next``).

        Candidates are ``on_or_after`` (unless ``points_only``) and every change point
        after it, kept when ``request`` units are free for ``duration`` from there.
        Changing the planner while iterating raises RuntimeError.
        """
        on_or_after, duration = self._check_on_or_after(on_or_after, duration, "avail_times")
        request = _int(request, "request", "avail_times")
        if request < 0:
            raise PlannerError(f"avail_times: request must be >= 0, not {request}")
        return self._scan(on_or_after, duration, request, points_only)

    def _scan(
        self, on_or_after: int, duration: int, request: int, points_only: bool
    ) -> Iterator[int]:
        limit = self._total - request
        last_start = self._end - duration
        if limit < 0 or on_or_after > last_start:
            return
        version = self._version
        times = self._times
        used = self._used
        n = len(times)
        ok = limit.__ge__  # ok(u): u <= limit
        bad = limit.__lt__  # bad(u): u > limit
        k, start = self._first_candidate(on_or_after, points_only)
        good = k  # points k .. good-1 are known to have room
        while k < n:
            if good <= k:
                if used[k] > limit:
                    try:
                        k += 1 + _indexOf(map(ok, _iter_from(used, k + 1)), True)
                    except ValueError:
                        return
                    start = None
                good = k + 1
            t = times[k] if start is None else start
            if t > last_start:
                return
            j = bisect_left(times, t + duration, good)
            if j > good:
                try:
                    r = good + _indexOf(map(bad, islice(_iter_from(used, good), j - good)), True)
                except ValueError:
                    good = j
                else:
                    # Every candidate up to point r has r in its window: skip past it.
                    k = good = r + 1
                    start = None
                    continue
            yield t
            if self._version != version:
                raise RuntimeError("planner changed during avail_times iteration")
            k += 1
            start = None

    def points(self) -> list[tuple[int, int]]:
        """``(time, units free from then)`` for every change point, in time order."""
        total = self._total
        return [(t, total - u) for t, u in zip(self._times, self._used, strict=True)]


class MultiPlanner(_Timeline):
    """Several resource types planned in lockstep (Fluxion's ``planner_multi``).

    ``totals`` maps each resource type to its total, in a fixed order.  Every span
    holds an amount of each type (0 for a type it does not mention) during one
    window.  Requests are dicts ``{type: amount}`` (missing types mean 0) or, on hot
    paths, sequences of amounts in :attr:`resource_types` order.
    """

    __slots__ = ("_types", "_index", "_totals", "_used", "_stale")

    def __init__(
        self,
        totals: Mapping[str, int],
        base_time: int = 0,
        horizon: int = INT64_MAX,
    ) -> None:
        if not isinstance(totals, Mapping) or not totals:
            raise PlannerError("multi-planner: totals must be a non-empty mapping of type to total")
        super().__init__(base_time, horizon, "multi-planner")
        self._types: tuple[str, ...] = tuple(totals)
        self._index = {t: i for i, t in enumerate(self._types)}
        self._totals: list[int] = []
        for rtype, total in totals.items():
            if not isinstance(rtype, str):
                raise PlannerError("multi-planner: resource types must be strings")
            total = _int(total, f"total of {rtype}", "multi-planner")
            if total < 0:
                raise PlannerError(f"multi-planner: total of {rtype} must be >= 0, not {total}")
            self._totals.append(total)
        self._used: list[list[int]] = [[0] for _ in self._types]
        # Per type, point time -> (search key - units free) for points whose search key
        # went stale when the total changed (see :meth:`update`).  Empty normally.
        self._stale: list[dict[int, int]] = [{} for _ in self._types]

    # -- properties ----------------------------------------------------------------
    @property
    def resource_types(self) -> tuple[str, ...]:
        return self._types

    @property
    def totals(self) -> dict[str, int]:
        return dict(zip(self._types, self._totals, strict=True))

    def total(self, resource_type: str) -> int:
        return self._totals[self._type_index(resource_type, "total")]

    def __repr__(self) -> str:
        return (
            f"<MultiPlanner {self.totals} horizon=[{self._base}, {self._end}) "
            f"spans={len(self._spans)}>"
        )

    def copy(self) -> MultiPlanner:
        """An independent copy (same spans, same span ids)."""
        new = MultiPlanner.__new__(MultiPlanner)
        new._base, new._end = self._base, self._end
        new._times = list(self._times)
        new._used = [list(u) for u in self._used]
        new._refs = dict(self._refs)
        new._spans = {sid: [s, e, list(a)] for sid, (s, e, a) in self._spans.items()}
        new._next_id, new._version = self._next_id, 0
        new._types, new._index, new._totals = self._types, self._index, list(self._totals)
        new._stale = [dict(d) for d in self._stale]
        return new

    def _type_index(self, resource_type: str, op: str) -> int:
        try:
            return self._index[resource_type]
        except (KeyError, TypeError):
            raise PlannerError(f"{op}: unknown resource type {resource_type!r:.40}") from None

    def _vector(self, requests: Mapping[str, int] | Sequence[int], op: str) -> list[int]:
        """Requests as a list of amounts in type order, validated (>= 0)."""
        kind = type(requests)
        if kind is dict:
            vec = [0] * len(self._types)
            index = self._index
            try:
                for rtype, amount in requests.items():
                    vec[index[rtype]] = amount
            except (KeyError, TypeError):
                return self._vector_checked(requests, op)
        elif (kind is list or kind is tuple) and len(requests) == len(self._types):
            vec = list(requests)
        else:
            return self._vector_checked(requests, op)
        # Fast acceptance: a sum of ints is an int (floats or other numbers are not).
        if type(sum(vec)) is int and min(vec) >= 0:
            return vec
        return self._vector_checked(requests, op)

    def _vector_checked(self, requests: Mapping[str, int] | Sequence[int], op: str) -> list[int]:
        if isinstance(requests, Mapping):
            vec = [0] * len(self._types)
            index = self._index
            for rtype, amount in requests.items():
                i = index.get(rtype) if isinstance(rtype, str) else None
                if i is None:
                    raise PlannerError(f"{op}: unknown resource type {rtype!r:.40}")
                vec[i] = amount
        elif isinstance(requests, Sequence) and not isinstance(requests, str):
            if len(requests) != len(self._types):
                raise PlannerError(
                    f"{op}: expected {len(self._types)} amounts "
                    f"({', '.join(self._types)}), got {len(requests)}"
                )
            vec = list(requests)
        else:
            raise PlannerError(f"{op}: requests must be a mapping of type to amount")
        for i, amount in enumerate(vec):
            if type(amount) is not int:
                amount = vec[i] = _int(amount, f"request of {self._types[i]}", op)
            if amount < 0:
                raise PlannerError(f"{op}: request of {self._types[i]} must be >= 0, not {amount}")
        return vec

    # -- spans ---------------------------------------------------------------------
    def add_span(
        self, start: int, duration: int, requests: Mapping[str, int] | Sequence[int]
    ) -> int:
        """Hold ``requests[type]`` of each type during ``[start, start + duration)``.

        All or nothing: PlannerError if any type lacks room at some time of the
        window (the message names it), or on a bad argument.
        """
        if not (
            type(start) is int
            and type(duration) is int
            and duration > 0
            and start >= self._base
            and start + duration <= self._end
        ):
            start, duration = self._check_window(start, duration, "add_span")
        vec = self._vector(requests, "add_span")
        end = start + duration
        times = self._times
        i = bisect_right(times, start) - 1
        j = bisect_left(times, end, i + 1)
        for k, amount in enumerate(vec):
            if amount:
                used = self._used[k]
                peak = used[i] if j == i + 1 else max(used[i:j])
                if peak + amount > self._totals[k]:
                    raise PlannerError(
                        f"add_span: request of {amount} {self._types[k]} exceeds the "
                        f"{self._totals[k] - peak} available during {_window(start, duration)}"
                    )
        i, j = self._add_points(start, end, self._used)
        for k, amount in enumerate(vec):
            if amount:
                used = self._used[k]
                if j == i + 1:
                    used[i] += amount
                else:
                    used[i:j] = [u + amount for u in used[i:j]]
        if self._stale_any():
            self._refresh(i, j)
        sid = self._next_id
        self._next_id = sid + 1
        self._spans[sid] = [start, end, vec]
        self._version += 1
        return sid

    def _subtract(self, start: int, end: int, vec: Sequence[int]) -> tuple[int, int]:
        i, j = self._window_indexes(start, end)
        for k, amount in enumerate(vec):
            if amount:
                used = self._used[k]
                if j == i + 1:
                    used[i] -= amount
                else:
                    used[i:j] = [u - amount for u in used[i:j]]
        return i, j

    def rem_span(self, span_id: int) -> None:
        """Remove a span, releasing every type it holds."""
        start, end, vec = self._lookup(span_id, "rem_span")
        del self._spans[span_id]
        i, j = self._subtract(start, end, vec)
        stale = self._stale_any()
        if stale:
            self._refresh(i, j)
        self._drop_points(start, end, i, j, self._used)
        if stale and end not in self._refs:
            for d in self._stale:
                d.pop(end, None)
        self._version += 1

    # -- stale search keys (Fluxion's min-time tree after a total changes) -----------
    def _stale_any(self) -> bool:
        for d in self._stale:
            if d:
                return True
        return False

    def _refresh(self, i: int, j: int) -> None:
        """Points ``i .. j-1`` were touched by a span change: their keys are current."""
        times = self._times
        for d in self._stale:
            if d:
                for t in times[i:j]:
                    d.pop(t, None)

    def reduce_span(self, span_id: int, requests: Mapping[str, int] | Sequence[int]) -> bool:
        """Release part of a span (partial cancel); True if the span is now gone.

        ``requests`` maps types to the amounts released.  Types this planner does not
        track are ignored (a pruning filter tracks only some types, as in Fluxion).
        The span is removed once it holds nothing of any type.
        """
        rec = self._lookup(span_id, "reduce_span")
        if isinstance(requests, Mapping):
            requests = {t: a for t, a in requests.items() if t in self._index}
        vec = self._vector(requests, "reduce_span")
        held = rec[2]
        for k, amount in enumerate(vec):
            if amount > held[k]:
                raise PlannerError(
                    f"reduce_span: cannot release {amount} {self._types[k]} from span "
                    f"{span_id} holding {held[k]}"
                )
        if vec == held:
            self.rem_span(span_id)
            return True
        if any(vec):
            i, j = self._subtract(rec[0], rec[1], vec)
            if self._stale_any():
                self._refresh(i, j)
            rec[2] = [h - a for h, a in zip(held, vec, strict=True)]
            self._version += 1
        return False

    def span(self, span_id: int) -> MultiSpan:
        """Information about a held span."""
        start, end, vec = self._lookup(span_id, "span")
        return MultiSpan(span_id, start, end - start, dict(zip(self._types, vec, strict=True)))

    def clear(self) -> None:
        """Remove every span (span ids keep increasing)."""
        self._times = [self._base]
        self._used = [[0] for _ in self._types]
        self._stale = [{} for _ in self._types]
        self._refs = {self._base: 1}
        self._spans.clear()
        self._version += 1

    def update(self, totals: Mapping[str, int]) -> None:
        """Re-type and re-size the planner in place (Fluxion's ``planner_multi_update``).

        ``totals`` gives the new types in their new order.  A type already planned keeps
        its spans and takes the new total, which may fall below what is held (Fluxion
        clamps; here the type is simply over-committed until spans go).  A new type
        starts with nothing held; a type left out is dropped with its amounts.

        As in Fluxion, the earliest-fit search of the first type (``points_only``)
        keeps ranking the existing points by what was free *before* the change, until
        a later span change touches them; plain availability queries see the new
        totals at once.
        """
        if not isinstance(totals, Mapping) or not totals:
            raise PlannerError("update: totals must be a non-empty mapping of type to total")
        new_types = tuple(totals)
        npoints = len(self._times)
        old_index = self._index
        used: list[list[int]] = []
        stale: list[dict[int, int]] = []
        tot: list[int] = []
        for rtype in new_types:
            if not isinstance(rtype, str):
                raise PlannerError("update: resource types must be strings")
            total = _int(totals[rtype], f"total of {rtype}", "update")
            if total < 0:
                raise PlannerError(f"update: total of {rtype} must be >= 0, not {total}")
            k = old_index.get(rtype)
            if k is None:
                used.append([0] * npoints)
                stale.append({})
            else:
                u = self._used[k]
                d = self._stale[k]
                old_total = self._totals[k]
                if total != old_total:
                    # Fluxion clamps what is free at 0 (never more held than exists),
                    # and its search keys keep what was free before the change.
                    new_u = [min(x, total) for x in u] if max(u) > total else u
                    for t, x, nx in zip(self._times, u, new_u, strict=True):
                        d[t] = d.get(t, 0) + (old_total - x) - (total - nx)
                    u = new_u
                used.append(u)
                stale.append(d)
            tot.append(total)
        remap = [old_index.get(t) for t in new_types]
        for rec in self._spans.values():
            vec = rec[2]
            rec[2] = [0 if k is None else vec[k] for k in remap]
        self._types = new_types
        self._index = {t: i for i, t in enumerate(new_types)}
        self._totals = tot
        self._used = used
        self._stale = [{t: o for t, o in d.items() if o} for d in stale]
        self._version += 1

    def update_total(self, resource_type: str, new_total: int) -> None:
        """Grow or shrink one type (PlannerError if it would over-commit)."""
        k = self._type_index(resource_type, "update_total")
        new_total = _int(new_total, "total", "update_total")
        if new_total < 0:
            raise PlannerError(f"update_total: total must be >= 0, not {new_total}")
        used = self._used[k]
        peak = max(used)
        if new_total < peak:
            raise PlannerError(
                f"update_total: a total of {new_total} {resource_type} would over-commit: "
                f"{peak} are held at time {self._times[used.index(peak)]}"
            )
        self._totals[k] = new_total
        self._version += 1

    # -- queries -------------------------------------------------------------------
    def avail_at(self, at: int, resource_type: str) -> int:
        """Units of ``resource_type`` free at time ``at``."""
        k = self._type_index(resource_type, "avail_at")
        at = self._check_at(at, "avail_at")
        return self._totals[k] - self._used[k][bisect_right(self._times, at) - 1]

    def avail_resources_at(self, at: int) -> dict[str, int]:
        """Units of every type free at time ``at``."""
        at = self._check_at(at, "avail_resources_at")
        i = bisect_right(self._times, at) - 1
        return self._free_at_index(i)

    def avail_during(
        self, at: int, duration: int, requests: Mapping[str, int] | Sequence[int]
    ) -> bool:
        """True if every type has its request free during the whole window.

        As :meth:`Planner.avail_during`: False outside the horizon or above a total.
        """
        if type(at) is not int or type(duration) is not int or duration < 1:
            at, duration = self._check_query(at, duration, "avail_during")
        vec = self._vector(requests, "avail_during")
        if at < self._base or at + duration > self._end:
            return False
        times = self._times
        i = bisect_right(times, at) - 1
        j = bisect_left(times, at + duration, i + 1)
        one = j == i + 1
        for amount, total, used in zip(vec, self._totals, self._used, strict=True):
            if amount and (used[i] if one else max(used[i:j])) + amount > total:
                return False
        return True

    def avail_resources_during(self, at: int, duration: int, resource_type: str) -> int:
        """Fewest units of ``resource_type`` free at any time of the window."""
        k = self._type_index(resource_type, "avail_resources_during")
        at, duration = self._check_window(at, duration, "avail_resources_during")
        times = self._times
        used = self._used[k]
        i = bisect_right(times, at) - 1
        j = bisect_left(times, at + duration, i + 1)
        return self._totals[k] - (used[i] if j == i + 1 else max(used[i:j]))

    def avail_time_first(
        self,
        on_or_after: int,
        duration: int,
        requests: Mapping[str, int] | Sequence[int],
        *,
        points_only: bool = False,
    ) -> int | None:
        """Earliest start ``>= on_or_after`` at which every request fits for ``duration``."""
        on_or_after, duration = self._check_on_or_after(on_or_after, duration, "avail_time_first")
        vec = self._vector(requests, "avail_time_first")
        return next(self._scan(on_or_after, duration, vec, points_only), None)

    def avail_times(
        self,
        on_or_after: int,
        duration: int,
        requests: Mapping[str, int] | Sequence[int],
        *,
        points_only: bool = False,
    ) -> Iterator[int]:
        """Every candidate start, earliest first (see :meth:`Planner.avail_times`)."""
        on_or_after, duration = self._check_on_or_after(on_or_after, duration, "avail_times")
        vec = self._vector(requests, "avail_times")
        return self._scan(on_or_after, duration, vec, points_only)

    def _scan(
        self, on_or_after: int, duration: int, vec: list[int], points_only: bool
    ) -> Iterator[int]:
        last_start = self._end - duration
        checks = []
        for amount, total, used in zip(vec, self._totals, self._used, strict=True):
            if amount:
                limit = total - amount
                if limit < 0:
                    return
                checks.append((used, limit, limit.__ge__, limit.__lt__))
        if on_or_after > last_start:
            return
        version = self._version
        times = self._times
        n = len(times)
        stale = self._stale[0] if points_only and self._stale[0] else None
        if stale is not None:
            # Fluxion finds candidates of the first type through keys that may be stale.
            used0, need0, total0 = self._used[0], vec[0], self._totals[0]

            def key_short(k: int, t: int) -> bool:
                return total0 - used0[k] + stale.get(t, 0) < need0
        k, start = self._first_candidate(on_or_after, points_only)
        good = k
        while k < n:
            if good <= k:
                # Move k to the first point >= k where every type has room.
                moved = True
                while moved:
                    moved = False
                    for used, limit, ok, _ in checks:
                        if used[k] > limit:
                            try:
                                k += 1 + _indexOf(map(ok, _iter_from(used, k + 1)), True)
                            except ValueError:
                                return
                            moved = True
                            start = None
                good = k + 1
            t = times[k] if start is None else start
            if t > last_start:
                return
            j = bisect_left(times, t + duration, good)
            if j > good:
                r = j  # first point of the window without room, if any
                for used, _, _, bad in checks:
                    window = islice(_iter_from(used, good), r - good)
                    try:
                        r = good + _indexOf(map(bad, window), True)
                    except ValueError:
                        pass
                if r < j:
                    k = good = r + 1
                    start = None
                    continue
                good = j
            if stale is not None and start is None and key_short(k, t):
                k += 1
                continue
            yield t
            if self._version != version:
                raise RuntimeError("planner changed during avail_times iteration")
            k += 1
            start = None

    def points(self) -> list[tuple[int, dict[str, int]]]:
        """``(time, {type: units free from then})`` for every change point."""
        return [(t, self._free_at_index(i)) for i, t in enumerate(self._times)]

    def _free_at_index(self, i: int) -> dict[str, int]:
        return {
            rt: total - used[i]
            for rt, total, used in zip(self._types, self._totals, self._used, strict=True)
        }
