"""The data behind ``strato report`` and ``strato job timeline``: intervals per
node from each job's R and eventlog, and the utilisation curve, built from
``job-list.info`` answers made here (no instance)."""

from __future__ import annotations

import pytest

from strato.core.resource import make_R
from strato.timeline import Interval, from_jobs, job_intervals

# the instance: 3 nodes x 4 cores
INSTANCE_R = make_R([(0, "n0", [0, 1, 2, 3], []), (1, "n1", [0, 1, 2, 3], []),
                     (2, "n2", [0, 1, 2, 3], [])])


def info(jobid: int, name: str, parts, events: dict[str, float]) -> dict:
    """A job-list.info answer: R over `parts` ((rank, host, cores)), and an
    eventlog with `events` (name -> time) in time order."""
    R = make_R([(rank, host, cores, []) for rank, host, cores in parts]) if parts else None
    log = [{"timestamp": t, "name": n, "context": {}}
           for n, t in sorted(events.items(), key=lambda e: e[1])]
    return {"id": jobid, "name": name, "R": R, "eventlog": log}


def ran(start: float, end: float | None) -> dict[str, float]:
    events = {"submit": start - 1, "alloc": start - 0.5, "start": start}
    if end is not None:
        events.update(finish=end, release=end + 0.1, free=end + 0.2, clean=end + 0.3)
    return events


JOBS = [
    # a: 2 cores on n0 and 2 on n1, from 10 to 20
    info(1, "a", [(0, "n0", [0, 1]), (1, "n1", [0, 1])], ran(10, 20)),
    # b: all of n2, from 15 to 30
    info(2, "b", [(2, "n2", [0, 1, 2, 3])], ran(15, 30)),
    # c: 1 core on n0, from 25, still running at 40
    info(3, "c", [(0, "n0", [3])], ran(25, None)),
    # d: canceled before it started: no interval
    info(4, "d", None, {"submit": 5, "exception": 6, "clean": 6.1}),
]


def test_intervals_per_node_from_R_and_eventlog():
    line = from_jobs(INSTANCE_R, JOBS, now=40.0)
    assert line.hosts == ["n0", "n1", "n2"] and line.ncores == 12
    assert line.by_host() == {
        "n0": [Interval(1, "a", "n0", 2, 0, 10, 20), Interval(3, "c", "n0", 1, 0, 25, None)],
        "n1": [Interval(1, "a", "n1", 2, 0, 10, 20)],
        "n2": [Interval(2, "b", "n2", 4, 0, 15, 30)],
    }
    assert line.jobs == [1, 2, 3]
    assert (line.start, line.end) == (10, 40)


def test_utilisation_curve_and_totals():
    line = from_jobs(INSTANCE_R, JOBS, now=40.0)
    # a: 4 cores 10-20; b: 4 cores 15-30; c: 1 core 25-now (40)
    assert line.utilisation() == [(10, 4), (15, 8), (20, 4), (25, 5), (30, 1), (40.0, 1)]
    assert line.peak() == 8
    assert line.core_seconds() == 4 * 10 + 4 * 15 + 1 * 15
    assert line.mean_utilisation() == pytest.approx(115 / (12 * 30))


def test_a_job_that_ended_without_finish_ends_at_release():
    events = {"submit": 0, "start": 1, "exception": 2, "release": 3, "clean": 4}
    (iv,) = job_intervals(info(9, "x", [(1, "n1", [0])], events))
    assert (iv.host, iv.ncores, iv.start, iv.end) == ("n1", 1, 1, 3)


def test_no_job_ran_gives_an_empty_timeline():
    line = from_jobs(INSTANCE_R, [JOBS[3]], now=1.0)
    assert line.intervals == [] and line.utilisation() == []
    assert (line.start, line.end, line.peak(), line.mean_utilisation()) == (0.0, 0.0, 0, None)
    assert set(line.by_host()) == {"n0", "n1", "n2"}
