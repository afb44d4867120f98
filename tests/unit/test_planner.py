"""sched-graph planner: time-indexed availability (Fluxion's planner / planner_multi)."""

from __future__ import annotations

import random

import pytest

from strato.plugins.sched_graph.planner import (
    INT64_MAX,
    MultiPlanner,
    MultiSpan,
    Planner,
    PlannerError,
    Span,
)


def one_line_error(excinfo) -> str:
    msg = str(excinfo.value)
    assert msg and "\n" not in msg
    return msg


# --------------------------------------------------------------------------- Planner


def test_empty_planner():
    p = Planner(10, resource_type="core")
    assert p.total == 10 and p.base_time == 0 and p.horizon == INT64_MAX and p.spans == 0
    assert p.avail_at(0) == 10 and p.avail_at(10**12) == 10
    assert p.avail_during(0, 100, 10) and not p.avail_during(0, 100, 11)
    assert p.avail_resources_during(5, 100) == 10
    assert p.avail_time_first(0, 100, 10) == 0
    assert p.avail_time_first(7, 100, 10) == 7
    assert p.avail_time_first(0, 100, 11) is None
    assert not p.is_busy(0)
    assert p.points() == [(0, 10)]
    assert "core" in repr(p)


def test_overlapping_spans():
    # Fluxion's availability-checker scenario: total 10.
    p = Planner(10, resource_type="A")
    s1 = p.add_span(1, 1000, 5)
    s2 = p.add_span(2000, 1001, 10)
    assert not p.avail_during(10, 2991, 1)
    assert p.avail_during(10, 1990, 1)
    s3 = p.add_span(10, 1990, 1)
    assert [p.avail_at(t) for t in (0, 1, 10, 1500, 2000, 2500, 3000, 3001)] == [
        10, 5, 4, 9, 0, 0, 0, 10,
    ]
    assert p.avail_resources_during(0, 1001) == 4
    assert p.avail_resources_during(2000, 1001) == 0
    assert p.avail_resources_during(1001, 998) == 9
    assert p.avail_during(100, 1401, 4) and not p.avail_during(1500, 1001, 1)
    assert list(p.avail_times(0, 9, 5)) == [0, 1, 1001, 3001]
    assert list(p.avail_times(0, 10, 9)) == [1001, 3001]
    assert p.spans == 3 and p.span_ids() == [s1, s2, s3]
    assert p.span(s3) == Span(s3, 10, 1990, 1) and p.span(s3).end == 2000
    assert p.is_busy(2500) and not p.is_busy(0) and p.used_at(10) == 6


def test_back_to_back_spans_share_a_point():
    p = Planner(1, horizon=10, resource_type="B")
    assert p.avail_time_first(0, 5, 1) == 0
    a = p.add_span(0, 5, 1)
    assert p.avail_time_first(0, 2, 1) == 5
    b = p.add_span(5, 2, 1)
    assert p.avail_time_first(0, 2, 1) == 7
    c = p.add_span(7, 2, 1)
    assert p.avail_time_first(0, 2, 1) is None  # 9 + 2 passes the horizon
    assert p.avail_time_first(0, 1, 1) == 9
    p.add_span(9, 1, 1)
    assert p.change_points() == [0, 5, 7, 9, 10]
    p.rem_span(b)
    p.rem_span(c)
    assert p.change_points() == [0, 5, 9, 10]
    assert p.avail_time_first(0, 5, 1) is None
    assert p.avail_time_first(0, 4, 1) == 5
    p.add_span(5, 4, 1)
    assert p.avail_at(8) == 0
    assert p.span(a).start == 0


def test_earliest_fit_across_gaps():
    p = Planner(4)
    p.add_span(0, 10, 4)
    p.add_span(12, 5, 3)  # gap [10, 12) is too short for 3 units x 5
    p.add_span(20, 10, 2)
    assert p.avail_time_first(0, 5, 3) == 30
    assert p.avail_time_first(0, 2, 3) == 10
    assert p.avail_time_first(0, 5, 2) == 17  # [17, 22): 4 free, then 2 free
    assert p.avail_time_first(0, 5, 1) == 10
    assert p.avail_time_first(11, 1, 4) == 11  # on_or_after itself, between points
    assert p.avail_time_first(11, 1, 4, points_only=True) == 17  # Fluxion: points only
    assert list(p.avail_times(0, 2, 2)) == [10, 17, 20, 30]
    assert list(p.avail_times(5, 2, 2)) == [10, 17, 20, 30]
    assert list(p.avail_times(0, 3, 2)) == [17, 20, 30]  # [10, 13) meets 3 held at 12
    assert list(p.avail_times(18, 3, 2)) == [18, 20, 30]
    assert list(p.avail_times(18, 3, 2, points_only=True)) == [20, 30]


def test_on_or_after_points_only_like_fluxion():
    # Fluxion's test_on_or_after: only change points are ever returned.
    p = Planner(3, resource_type="A")
    assert p.avail_time_first(100000, 100, 2, points_only=True) is None
    assert p.avail_time_first(100000, 100, 2) == 100000
    p.add_span(100000, 100, 2)
    assert p.avail_time_first(100000, 200, 2, points_only=True) == 100100
    p.add_span(100100, 200, 2)
    assert list(p.avail_times(100000, 200, 1, points_only=True)) == [100000, 100100, 100300]
    assert list(p.avail_times(0, 200, 1, points_only=True))[:2] == [0, 100000]


def test_avail_times_iterator_detects_changes():
    p = Planner(2)
    p.add_span(0, 5, 2)
    p.add_span(10, 5, 2)
    it = p.avail_times(0, 2, 1)
    assert next(it) == 5
    p.add_span(5, 1, 1)
    with pytest.raises(RuntimeError):
        next(it)


def test_horizon_limits():
    p = Planner(5, base_time=100, horizon=50)
    assert p.end == 150 and p.horizon == 50
    s = p.add_span(140, 10, 5)  # ends exactly at the horizon
    assert p.avail_time_first(100, 40, 5) == 100
    assert p.avail_time_first(100, 41, 5) is None
    p.rem_span(s)
    assert p.avail_time_first(149, 1, 5) == 149
    assert p.avail_time_first(149, 2, 5) is None
    assert p.avail_time_first(150, 1, 1) is None
    assert not p.avail_during(145, 10, 1)  # leaves the horizon
    assert not p.avail_during(99, 2, 1)  # before the base time
    for args, words in [
        ((145, 10, 1), "outside the planner horizon [100, 150)"),
        ((99, 1, 1), "outside the planner horizon"),
    ]:
        with pytest.raises(PlannerError) as e:
            p.add_span(*args)
        assert words in one_line_error(e)
    with pytest.raises(PlannerError):
        p.avail_at(150)
    with pytest.raises(PlannerError):
        p.avail_at(99)
    with pytest.raises(PlannerError):
        p.avail_resources_during(140, 11)
    with pytest.raises(PlannerError):
        p.avail_time_first(99, 1, 1)
    assert p.spans == 0 and p.points() == [(100, 5)]


def test_request_zero_spans_and_the_horizon_test():
    p = Planner(5, base_time=100, horizon=50)
    p.add_span(140, 10, 5)
    # request 0 always fits; the earliest start is on_or_after if the window fits.
    assert p.avail_time_first(149, 1, 0) == 149
    z = p.add_span(120, 5, 0)
    assert p.span(z).request == 0 and 120 in p.change_points()
    assert p.reduce_span(z, 0) is True and z not in p


def test_remove_and_reduce_restore_availability():
    p = Planner(8)
    a = p.add_span(0, 10, 3)
    b = p.add_span(5, 10, 4)
    assert p.avail_resources_during(0, 20) == 1
    assert p.reduce_span(b, 1) is False
    assert p.span(b).request == 3 and p.avail_at(6) == 2
    assert p.reduce_span(b, 0) is False
    assert p.reduce_span(b, 3) is True
    assert b not in p and p.spans == 1
    assert p.points() == [(0, 5), (10, 8)]
    p.rem_span(a)
    assert p.points() == [(0, 8)] and p.spans == 0
    # ids are never reused
    c = p.add_span(0, 1, 1)
    assert c not in (a, b)
    p.clear()
    assert p.points() == [(0, 8)] and p.spans == 0


def test_elastic_total():
    p = Planner(4)
    p.add_span(10, 10, 3)
    p.update_total(8)
    assert p.avail_at(12) == 5 and p.avail_at(0) == 8
    p.add_span(10, 10, 5)
    with pytest.raises(PlannerError) as e:
        p.update_total(7)
    assert "over-commit" in one_line_error(e) and "time 10" in str(e.value)
    assert p.total == 8
    p.update_total(8)
    with pytest.raises(PlannerError):
        p.update_total(-1)


def test_copy_is_independent():
    p = Planner(4)
    s = p.add_span(0, 10, 2)
    q = p.copy()
    q.rem_span(s)
    assert p.avail_at(0) == 2 and q.avail_at(0) == 4
    assert q.add_span(0, 1, 1) == p.add_span(0, 1, 1)


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda p: p.add_span(0, 10, 3),
         "request of 3 core exceeds the 2 available during [0, 10)"),
        (lambda p: p.add_span(0, 0, 1), "duration must be >= 1"),
        (lambda p: p.add_span(0, -5, 1), "duration must be >= 1"),
        (lambda p: p.add_span(0, 1, -1), "request must be >= 0"),
        (lambda p: p.add_span(0, 1, 5), "exceeds the total of 4"),
        (lambda p: p.add_span(0.5, 1, 1), "start time must be an integer, not float"),
        (lambda p: p.add_span(0, True, 1), "duration must be an integer, not bool"),
        (lambda p: p.add_span(0, 1, "2"), "request must be an integer, not str"),
        (lambda p: p.rem_span(99), "rem_span: unknown span id 99"),
        (lambda p: p.rem_span([1]), "unknown span id"),
        (lambda p: p.reduce_span(1, 3), "cannot release 3 from span 1 holding 2"),
        (lambda p: p.reduce_span(1, -1), "cannot release -1"),
        (lambda p: p.reduce_span(42, 1), "unknown span id 42"),
        (lambda p: p.span(42), "unknown span id 42"),
        (lambda p: p.avail_during(0, 0, 1), "duration must be >= 1"),
        (lambda p: p.avail_during(0, 1, -1), "request must be >= 0"),
        (lambda p: p.avail_time_first(0, 0, 1), "duration must be >= 1"),
        (lambda p: p.avail_time_first(0, 1, -2), "avail_time_first: request must be >= 0"),
        (lambda p: p.avail_time_first(-1, 1, 1), "before the planner base time 0"),
        (lambda p: p.avail_at("x"), "time must be an integer"),
        (lambda p: p.update_total(1), "would over-commit"),
        (lambda p: Planner(-1), "total must be >= 0"),
        (lambda p: Planner(1, horizon=0), "horizon must be >= 1"),
        (lambda p: Planner(1, resource_type=3), "resource_type must be a string"),
    ],
)
def test_bad_inputs_raise_one_line_errors(call, words):
    p = Planner(4, horizon=100, resource_type="core")
    p.add_span(0, 10, 2)
    before = (p.points(), p.spans)
    with pytest.raises(PlannerError) as e:
        call(p)
    assert isinstance(e.value, ValueError)
    assert words in one_line_error(e)
    assert (p.points(), p.spans) == before


def test_integer_like_arguments_are_accepted():
    class Idx:
        def __init__(self, v):
            self.v = v

        def __index__(self):
            return self.v

    p = Planner(Idx(4))
    s = p.add_span(Idx(1), Idx(2), Idx(3))
    assert p.span(s) == Span(s, 1, 2, 3)
    assert p.avail_during(Idx(0), Idx(5), Idx(1))
    assert p.avail_time_first(Idx(0), Idx(2), Idx(4)) == 3


# ------------------------------------------------------------------ brute force


class RefPlanner:
    """Availability per time unit: the obvious, slow reference."""

    def __init__(self, total, base, horizon):
        self.total, self.base, self.end = total, base, base + horizon
        self.used = [0] * horizon
        self.spans = {}

    def fits(self, at, duration, request):
        if at < self.base or at + duration > self.end or request > self.total:
            return False
        lo, hi = at - self.base, at + duration - self.base
        return max(self.used[lo:hi]) + request <= self.total

    def hold(self, start, end, amount):
        for t in range(start - self.base, end - self.base):
            self.used[t] += amount

    def points(self):
        pts = {self.base}
        for start, end, _ in self.spans.values():
            pts.update((start, end))
        return sorted(pts)

    def first(self, t0, duration, request):
        for t in range(t0, self.end - duration + 1):
            if self.fits(t, duration, request):
                return t
        return None

    def times(self, t0, duration, request, points_only):
        pts = [p for p in self.points() if p > t0 or (p == t0)]
        cands = pts if points_only or t0 in pts else [t0, *pts]
        return [t for t in cands if self.fits(t, duration, request)]


def test_randomized_against_brute_force():
    rng = random.Random(20240611)
    for _trial in range(30):
        total = rng.randint(1, 8)
        base = rng.randint(0, 20)
        horizon = rng.randint(5, 60)
        p = Planner(total, base_time=base, horizon=horizon)
        ref = RefPlanner(total, base, horizon)
        end = base + horizon
        for _ in range(250):
            op = rng.random()
            if op < 0.45:
                start = rng.randint(base - 2, end + 1)
                duration = rng.randint(-1, horizon // 2 + 2)
                request = rng.randint(-1, ref.total + 1)
                if duration >= 1 and request >= 0 and ref.fits(start, duration, request):
                    sid = p.add_span(start, duration, request)
                    ref.spans[sid] = [start, start + duration, request]
                    ref.hold(start, start + duration, request)
                else:
                    with pytest.raises(PlannerError):
                        p.add_span(start, duration, request)
            elif op < 0.6 and ref.spans:
                sid = rng.choice(list(ref.spans))
                start, stop, amount = ref.spans.pop(sid)
                p.rem_span(sid)
                ref.hold(start, stop, -amount)
            elif op < 0.75 and ref.spans:
                sid = rng.choice(list(ref.spans))
                start, stop, amount = ref.spans[sid]
                less = rng.randint(0, amount + 1)
                if less > amount:
                    with pytest.raises(PlannerError):
                        p.reduce_span(sid, less)
                    continue
                removed = p.reduce_span(sid, less)
                assert removed == (less == amount)
                ref.hold(start, stop, -less)
                if removed:
                    del ref.spans[sid]
                else:
                    ref.spans[sid][2] -= less
            elif op < 0.8:
                new_total = rng.randint(0, ref.total + 3)
                if new_total >= max(ref.used):
                    p.update_total(new_total)
                    ref.total = new_total
                else:
                    with pytest.raises(PlannerError):
                        p.update_total(new_total)
            else:
                pass
            # Check the whole state and a handful of queries.
            assert p.spans == len(ref.spans)
            assert p.change_points() == ref.points()
            for t in range(base, end):
                assert p.avail_at(t) == ref.total - ref.used[t - base]
            for _ in range(6):
                at = rng.randint(base - 1, end)
                duration = rng.randint(1, horizon)
                request = rng.randint(0, ref.total + 1)
                assert p.avail_during(at, duration, request) == ref.fits(at, duration, request)
                if base <= at and at + duration <= end:
                    lo = at - base
                    assert p.avail_resources_during(at, duration) == ref.total - max(
                        ref.used[lo:lo + duration])
                t0 = rng.randint(base, end + 1)
                assert p.avail_time_first(t0, duration, request) == ref.first(t0, duration, request)
                for points_only in (False, True):
                    want = ref.times(t0, duration, request, points_only)
                    got = list(p.avail_times(t0, duration, request, points_only=points_only))
                    assert got == want, (t0, duration, request, points_only)
                    first = p.avail_time_first(t0, duration, request, points_only=points_only)
                    assert first == (want[0] if want else None)


# ---------------------------------------------------------------------- MultiPlanner


def test_multi_planner_lockstep():
    m = MultiPlanner({"core": 32, "gpu": 2, "memory": 64}, horizon=1000)
    assert m.resource_types == ("core", "gpu", "memory")
    assert m.totals == {"core": 32, "gpu": 2, "memory": 64} and m.total("gpu") == 2
    a = m.add_span(0, 100, {"core": 16, "gpu": 1})
    b = m.add_span(50, 100, {"core": 16, "gpu": 1, "memory": 32})
    assert m.span(a) == MultiSpan(a, 0, 100, {"core": 16, "gpu": 1, "memory": 0})
    assert m.avail_resources_at(60) == {"core": 0, "gpu": 0, "memory": 32}
    assert m.avail_at(120, "core") == 16
    assert m.avail_resources_during(0, 200, "gpu") == 0
    assert m.avail_resources_during(100, 50, "memory") == 32
    assert m.avail_during(0, 10, {"gpu": 1, "core": 16, "memory": 64})
    assert not m.avail_during(50, 10, {"core": 1})
    assert m.avail_during(50, 10, {"memory": 32})
    assert m.avail_during(0, 10, [16, 1, 64])
    assert m.avail_time_first(0, 10, {"core": 20}) == 150
    assert m.avail_time_first(0, 10, {"core": 16, "gpu": 1}) == 0
    assert m.avail_time_first(40, 20, {"core": 16, "gpu": 1}) == 100
    assert m.avail_time_first(0, 10, {"memory": 64}) == 0
    assert m.avail_time_first(60, 10, {"memory": 64}) == 150
    assert list(m.avail_times(0, 10, {"gpu": 1})) == [0, 100, 150]
    assert m.avail_time_first(0, 10, {"gpu": 3}) is None
    with pytest.raises(PlannerError) as e:
        m.add_span(60, 10, {"core": 1, "gpu": 0})
    assert "request of 1 core exceeds the 0 available during [60, 70)" in one_line_error(e)
    with pytest.raises(PlannerError) as e:
        m.add_span(140, 10, {"core": 16, "gpu": 2})  # gpu lacks room: nothing added
    assert "gpu" in one_line_error(e) and m.spans == 2 and m.avail_at(145, "core") == 16
    # partial cancel: types not tracked here are ignored
    assert m.reduce_span(b, {"core": 8, "nic": 1}) is False
    assert m.span(b).requests == {"core": 8, "gpu": 1, "memory": 32}
    assert m.avail_at(60, "core") == 8
    assert m.reduce_span(b, {"core": 8, "gpu": 1, "memory": 32}) is True
    assert b not in m and m.avail_resources_at(60) == {"core": 16, "gpu": 1, "memory": 64}
    m.rem_span(a)
    assert m.points() == [(0, {"core": 32, "gpu": 2, "memory": 64})]
    assert m.change_points() == [0]


def test_multi_planner_zero_span_and_elastic_total():
    m = MultiPlanner({"core": 4, "node": 1}, base_time=10, horizon=100)
    z = m.add_span(20, 10, {})
    assert m.reduce_span(z, {}) is True and m.spans == 0
    s = m.add_span(20, 10, {"core": 4, "node": 1})
    m.update_total("core", 8)
    assert m.avail_at(25, "core") == 4
    with pytest.raises(PlannerError) as e:
        m.update_total("core", 3)
    assert "would over-commit" in one_line_error(e)
    q = m.copy()
    q.rem_span(s)
    assert m.avail_at(25, "node") == 0 and q.avail_at(25, "node") == 1
    m.clear()
    assert m.spans == 0 and m.avail_resources_at(25) == {"core": 8, "node": 1}


def test_multi_planner_update_retypes_and_keeps_spans():
    """``update`` is Fluxion's planner_multi_update: re-type and re-size in place."""
    m = MultiPlanner({"core": 4, "node": 1}, horizon=100)
    s = m.add_span(0, 10, {"core": 4, "node": 1})
    m.update({"gpu": 2, "core": 8})  # new type first, node dropped, core grown
    assert m.resource_types == ("gpu", "core") and m.totals == {"gpu": 2, "core": 8}
    assert m.span(s).requests == {"gpu": 0, "core": 4}
    assert m.avail_at(5, "core") == 4 and m.avail_at(5, "gpu") == 2
    # Shrinking below what is held clamps what is free at 0, as Fluxion does.
    m.update({"gpu": 2, "core": 2})
    assert m.avail_at(5, "core") == 0
    m.rem_span(s)
    assert m.avail_at(5, "core") == 2 + 2  # Fluxion over-releases the same way
    with pytest.raises(PlannerError) as e:
        m.update({})
    assert "non-empty" in one_line_error(e)


def test_multi_planner_update_keeps_stale_search_keys():
    """After a total grows, Fluxion's earliest-fit search still ranks existing points
    by what was free before, until a span change touches them (t3028 elastic/009)."""
    m = MultiPlanner({"core": 36, "node": 1})
    m.add_span(0, 3600, {"core": 36, "node": 1})
    m.add_span(3600, 3600, {"core": 36, "node": 1})
    m.update({"core": 72, "node": 2})
    assert m.avail_during(3600, 3600, {"core": 36, "node": 1})  # plain queries see it
    got = list(m.avail_times(1, 3600, {"core": 36, "node": 1}, points_only=True))
    assert got == [7200]  # point 3600 keeps its old key (0 cores free)
    assert m.avail_time_first(1, 3600, {"core": 36, "node": 1}) == 1  # not points_only
    # A span over the point refreshes its key.
    t = m.add_span(3600, 10, {"core": 0, "node": 0})
    m.rem_span(t)
    assert list(m.avail_times(1, 3600, {"core": 36, "node": 1}, points_only=True)) == [
        3600, 7200]
    c = m.copy()
    c.clear()
    assert list(c.avail_times(0, 10, {"core": 1}, points_only=True)) == [0]


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda m: m.add_span(0, 10, {"disk": 1}), "unknown resource type 'disk'"),
        (lambda m: m.add_span(0, 10, {"core": -1}), "request of core must be >= 0"),
        (lambda m: m.add_span(0, 10, [1]), "expected 2 amounts (core, gpu), got 1"),
        (lambda m: m.add_span(0, 10, 3), "requests must be a mapping"),
        (lambda m: m.add_span(0, 10, {"core": 1.5}), "must be an integer, not float"),
        (lambda m: m.add_span(95, 10, {"core": 1}), "outside the planner horizon [0, 100)"),
        (lambda m: m.add_span(0, 10, {"core": 9}), "exceeds the 4 available during [0, 10)"),
        (lambda m: m.rem_span(7), "rem_span: unknown span id 7"),
        (lambda m: m.reduce_span(1, {"core": 5}), "cannot release 5 core from span 1 holding 4"),
        (lambda m: m.avail_at(0, "disk"), "unknown resource type 'disk'"),
        (lambda m: m.avail_resources_during(0, 200, "core"), "outside the planner horizon"),
        (lambda m: m.avail_time_first(0, 0, {"core": 1}), "duration must be >= 1"),
        (lambda m: m.update_total("gpu", 0), "would over-commit"),
        (lambda m: MultiPlanner({}), "non-empty mapping"),
        (lambda m: MultiPlanner({"core": -3}), "total of core must be >= 0"),
    ],
)
def test_multi_bad_inputs(call, words):
    m = MultiPlanner({"core": 8, "gpu": 2}, horizon=100)
    m.add_span(0, 10, {"core": 4, "gpu": 1})
    before = (m.points(), m.spans)
    with pytest.raises(PlannerError) as e:
        call(m)
    assert words in one_line_error(e)
    assert (m.points(), m.spans) == before


def test_multi_randomized_against_brute_force():
    rng = random.Random(77)
    types = ("core", "gpu", "memory")
    for _trial in range(20):
        totals = {t: rng.randint(0, 6) for t in types}
        base, horizon = rng.randint(0, 10), rng.randint(5, 50)
        m = MultiPlanner(totals, base_time=base, horizon=horizon)
        refs = {t: RefPlanner(totals[t], base, horizon) for t in types}
        spans = {}
        end = base + horizon

        def fits(at, duration, req, refs=refs):
            return all(refs[t].fits(at, duration, req.get(t, 0)) for t in types)

        for _ in range(200):
            op = rng.random()
            if op < 0.5:
                start = rng.randint(base - 1, end)
                duration = rng.randint(1, horizon // 2 + 1)
                some = rng.sample(types, rng.randint(0, 3))
                req = {t: rng.randint(0, totals[t] + 1) for t in some}
                if fits(start, duration, req):
                    sid = m.add_span(start, duration, req)
                    spans[sid] = (start, start + duration, dict(req))
                    for t, a in req.items():
                        refs[t].hold(start, start + duration, a)
                else:
                    with pytest.raises(PlannerError):
                        m.add_span(start, duration, req)
            elif op < 0.7 and spans:
                sid = rng.choice(list(spans))
                start, stop, req = spans.pop(sid)
                m.rem_span(sid)
                for t, a in req.items():
                    refs[t].hold(start, stop, -a)
            elif spans:
                sid = rng.choice(list(spans))
                start, stop, req = spans[sid]
                less = {t: rng.randint(0, a) for t, a in req.items()}
                removed = m.reduce_span(sid, less)
                for t, a in less.items():
                    refs[t].hold(start, stop, -a)
                    req[t] -= a
                assert removed == (not any(req.values()))
                if removed:
                    del spans[sid]
            pts = {base}
            for start, stop, _ in spans.values():
                pts.update((start, stop))
            assert m.change_points() == sorted(pts)
            for t in range(base, end):
                assert m.avail_resources_at(t) == {
                    rt: totals[rt] - refs[rt].used[t - base] for rt in types}
            for _ in range(5):
                at = rng.randint(base, end)
                duration = rng.randint(1, horizon)
                req = {t: rng.randint(0, totals[t] + 1) for t in rng.sample(types, 2)}
                assert m.avail_during(at, duration, req) == fits(at, duration, req)
                for points_only in (False, True):
                    cands = [p for p in sorted(pts) if p >= at]
                    if not points_only and at not in cands:
                        cands.insert(0, at)
                    want = [c for c in cands if fits(c, duration, req)]
                    got = list(m.avail_times(at, duration, req, points_only=points_only))
                    assert got == want
                    assert m.avail_time_first(at, duration, req, points_only=points_only) == (
                        want[0] if want else None)
                brute = next((t for t in range(at, end) if fits(t, duration, req)), None)
                assert m.avail_time_first(at, duration, req) == brute
