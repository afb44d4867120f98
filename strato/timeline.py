"""How a set of jobs used an instance over time: the data behind ``strato job
timeline`` and ``strato report``, apart from any drawing.

A job's `Interval`\\ s say which node it ran on, with how many cores and gpus,
from its ``start`` event to its ``finish`` (or, for one still running, to now);
its R says where, its eventlog when. A `Timeline` holds them with the nodes and
cores of the instance, and gives the utilisation curve (cores in use over time)
and the totals a report prints. `build` asks an instance for them; `from_jobs`
makes one from ``job-list.info`` answers, so it can be checked without one.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from strato.core.ids import f58
from strato.core.resource import nodes_from_R
from strato.handle import Handle, _raise

#: events that end a job's run, first found wins (``finish`` is the normal one;
#: a job that ended otherwise has freed its resources by ``release`` or ``free``)
_END_EVENTS = ("finish", "release", "free", "clean")


@dataclass
class Interval:
    """A job's run on one node."""

    jobid: int
    name: str
    host: str
    ncores: int
    ngpus: int
    start: float
    #: None while the job runs
    end: float | None

    @property
    def label(self) -> str:
        return f"{f58(self.jobid)} {self.name}"


@dataclass
class Timeline:
    """Where and when jobs ran on an instance."""

    #: the instance's nodes, in rank order (those no job used too)
    hosts: list[str]
    #: the instance's cores in all
    ncores: int
    intervals: list[Interval] = field(default_factory=list)
    #: what "now" was when it was built: the end of a run that has not ended
    now: float = 0.0

    def end_of(self, iv: Interval) -> float:
        return self.now if iv.end is None else iv.end

    @property
    def start(self) -> float:
        """When the first job started (0.0 if none ran)."""
        return min((iv.start for iv in self.intervals), default=0.0)

    @property
    def end(self) -> float:
        """When the last job ended (now if one still runs; 0.0 if none ran)."""
        return max((self.end_of(iv) for iv in self.intervals), default=0.0)

    @property
    def jobs(self) -> list[int]:
        """The ids of the jobs that ran, in the order they started."""
        seen: dict[int, float] = {}
        for iv in self.intervals:
            seen[iv.jobid] = min(seen.get(iv.jobid, iv.start), iv.start)
        return sorted(seen, key=lambda j: (seen[j], j))

    def by_host(self) -> dict[str, list[Interval]]:
        """Each node's intervals, by start time; every node is a key."""
        out: dict[str, list[Interval]] = {h: [] for h in self.hosts}
        for iv in sorted(self.intervals, key=lambda iv: (iv.start, iv.jobid)):
            out.setdefault(iv.host, []).append(iv)
        return out

    def utilisation(self) -> list[tuple[float, int]]:
        """Cores in use over time, as steps ``(t, cores)``: from `t` until the next
        step's time, `cores` are in use. Starts at the first start and ends with
        ``(end, 0)`` (or the cores still in use at `now`)."""
        deltas: dict[float, int] = {}
        for iv in self.intervals:
            deltas[iv.start] = deltas.get(iv.start, 0) + iv.ncores
            if iv.end is not None:
                deltas[iv.end] = deltas.get(iv.end, 0) - iv.ncores
        steps: list[tuple[float, int]] = []
        level = 0
        for t in sorted(deltas):
            level += deltas[t]
            steps.append((t, level))
        if steps and steps[-1][1] != 0:  # still running: the curve reaches now
            steps.append((self.now, steps[-1][1]))
        return steps

    def core_seconds(self) -> float:
        """Core-seconds the jobs used."""
        return sum(iv.ncores * (self.end_of(iv) - iv.start) for iv in self.intervals)

    def mean_utilisation(self) -> float | None:
        """Core-seconds used over the core-seconds the instance had from the first
        start to the last end (None if no job ran or no time passed)."""
        span = self.end - self.start
        if span <= 0 or self.ncores <= 0:
            return None
        return self.core_seconds() / (self.ncores * span)

    def peak(self) -> int:
        """The most cores in use at once."""
        return max((cores for _, cores in self.utilisation()), default=0)


def job_intervals(info: dict) -> list[Interval]:
    """A job's intervals from its ``job-list.info`` answer (its R and eventlog):
    one per node of R, from ``start`` to the first of `_END_EVENTS`; none if
    it never started."""
    events = {}
    for entry in info.get("eventlog") or ():
        events.setdefault(entry["name"], entry["timestamp"])
    start = events.get("start")
    if start is None or not info.get("R"):
        return []
    end = next((events[e] for e in _END_EVENTS if e in events), None)
    return [Interval(info["id"], info.get("name", ""), node.hostname, len(node.cores),
                     len(node.gpus), start, end)
            for node in nodes_from_R(info["R"])]


def from_jobs(R: dict, infos: Iterable[dict], now: float | None = None) -> Timeline:
    """A `Timeline` of the instance whose R is `R`, from its jobs'
    ``job-list.info`` answers (`strato.job.info`)."""
    nodes = nodes_from_R(R)
    line = Timeline([n.hostname for n in nodes], sum(len(n.cores) for n in nodes),
                    now=time.time() if now is None else now)
    for info in infos:
        line.intervals.extend(job_intervals(info))
    return line


def build(h: Handle, jobids: Iterable[int | str] | None = None) -> Timeline:
    """The `Timeline` of the jobs `jobids` (default: every job that has run, of
    every user) on the instance at `h`. The jobs are asked for all at once.
    Raises RPCError for an unknown job id."""
    from strato import job as jobapi
    from strato import resource
    from strato.core.states import ALL

    if jobids is None:
        jobids = [r["id"] for r in jobapi.list_jobs(h, states=ALL) if r.get("t_run")]
    tags = [h.send("job-list.info", {"id": jobid}) for jobid in jobids]
    infos = []
    for tag in tags:
        body, err, _ = h.recv(tag)
        if err is not None:
            _raise(body, err)
        infos.append(body)
    return from_jobs(resource.R(h), infos)
