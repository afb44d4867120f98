"""The exec service: starts and signals allocated jobs through an exec backend.

The job manager talks to it only by messages: ``exec.start`` (one-way)
``{id, jobspec, R, userid, cc}`` and ``exec.kill`` (one-way) ``{id, signum}``.
It answers with batches of events, one message per event-loop turn, sent to
``job-manager.exec`` as ``{events: [{id, name, context}]}``: ``start`` (the
tasks are running), ``finish {status}`` (the largest task wait status) and
``exception {type, note}`` (the job must end, e.g. its time limit passed).

Backends (`strato.core.hookspecs.ExecBackend`) are registered by plugins:
``local`` runs real tasks through this node's shell host process, ``sim`` lets a
job "run" for a set time with no process. A job asks for ``sim`` with
``attributes.system.exec.test``; otherwise the instance's ``[exec] backend``,
except that a job which is itself an instance (its command is ``strato start``,
as ``strato batch`` and ``strato alloc`` submit) always runs for real: a child
instance over virtual nodes is a real broker whose own jobs may be simulated.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

from strato.core import ids
from strato.core.errors import ConfigError, RPCError
from strato.core.plugins import unknown_name
from strato.jobspec.fsd import parse_fsd
from strato.jobspec.model import job_name, summarize

log = logging.getLogger("strato.exec")


class ExecJob:
    """A job as exec knows it: what to run, where, and which backend runs it.

    The shell host reads its start messages into the same class."""

    __slots__ = ("id", "jobspec", "R", "userid", "cc", "rank", "_summary", "backend",
                 "_kvsdir")

    def __init__(self, body: dict) -> None:
        self.id: int = body["id"]
        self.jobspec: dict = body["jobspec"]
        self.R: dict = body["R"]
        self.userid: int = body.get("userid", 0)
        self.cc: int | None = body.get("cc")
        # a job spread over several brokers: the one rank whose tasks this part runs
        self.rank: int | None = body.get("rank")
        self._summary: dict | None = None
        self.backend = None
        self._kvsdir = ""

    @property
    def summary(self) -> dict:
        """Counts and duration (`strato.jobspec.model.summarize`), computed on first
        use: the local backend never needs them in the broker."""
        if self._summary is None:
            self._summary = summarize(self.jobspec)
        return self._summary

    @property
    def name(self) -> str:
        return job_name(self.jobspec)

    @property
    def kvsdir(self) -> str:
        """The job's directory in the KVS (its output and exec eventlog live there)."""
        if not self._kvsdir:
            self._kvsdir = ids.encode(self.id, "kvs")
        return self._kvsdir

    def wire(self) -> dict:
        """The start message a shell host gets for this job."""
        wire = {"id": self.id, "jobspec": self.jobspec, "R": self.R, "userid": self.userid,
                "cc": self.cc}
        if self.rank is not None:
            wire["rank"] = self.rank
        return wire


def _part_entries(exec_eventlog: object, name: str,
                  spread: bool) -> Iterator[tuple[int | None, dict]]:
    """``(rank, context)`` of each entry of a job's exec eventlog that records
    `name` (``shell.start`` or ``complete``) of one part of the job
    (`strato.shell.host.ShellHost.part_event`): the leader's `name` names its
    rank if the job is spread over brokers, each other part's ``shell.rank-*``
    its own; a leader's naming none is rank 0's if `spread` (recorded by an older
    strato), otherwise None (a job run by one broker)."""
    other = "shell.rank-" + name.removeprefix("shell.")
    for entry in exec_eventlog if isinstance(exec_eventlog, list) else ():
        if isinstance(entry, dict) and entry.get("name") in (name, other) \
                and isinstance(entry.get("context"), dict):
            yield entry["context"].get("rank", 0 if spread else None), entry["context"]


def recorded_groups(exec_eventlog: object, rank: int | None) -> set[int]:
    """The process groups of the tasks a job's exec eventlog records for its part on
    broker `rank` (None: a job run by one broker): what is left of them is killed
    after a restart that finds their shell host gone."""
    groups: set[int] = set()
    for where, ctx in _part_entries(exec_eventlog, "shell.start", rank is not None):
        if where == rank and isinstance(ctx.get("pgids"), list):
            groups.update(g for g in ctx["pgids"] if isinstance(g, int) and g > 1)
    return groups


def recorded_ends(exec_eventlog: object) -> dict[int, int]:
    """The wait status of each part of a spread job that has ended, by rank, as its
    exec eventlog records them: after a restart those parts are not taken up."""
    return {rank: ctx["status"] for rank, ctx in _part_entries(exec_eventlog, "complete", True)
            if isinstance(rank, int) and isinstance(ctx.get("status"), int)}


def runs_instance(jobspec: dict) -> bool:
    """True if the job's command starts a strato instance (``strato start ...`` or
    ``python -m strato start ...``)."""
    try:
        argv = jobspec["tasks"][0]["command"]
    except (KeyError, IndexError, TypeError):
        return False
    if len(argv) > 3 and argv[1:3] == ["-m", "strato"]:
        argv = argv[2:]
    return len(argv) > 1 and os.path.basename(str(argv[0])) == "strato" and argv[1] == "start"


class ExecService:
    """Routes exec requests to backends and batches their events (module docstring)."""

    def __init__(self, instance, factories: dict, default: str) -> None:
        self.instance = instance
        self.kvs = instance.kvs
        self.statedir = instance.statedir
        self.broker = instance.broker
        self.config = instance.config
        self.rundir = instance.rundir
        self.uri = instance.uri
        self.reaper = instance.reaper
        self.factories = factories
        if default not in factories:
            raise ConfigError(unknown_name("exec backend", default, self.config,
                                           "exec_register_backends"))
        self.default = default
        exec_conf = self.config.get("exec", {})
        try:
            orphan = parse_fsd(str(exec_conf.get("orphan-timeout", "1d")))
            self.adopt_timeout = parse_fsd(str(exec_conf.get("adopt-timeout", "10s")))
        except ValueError as exc:
            raise ConfigError(f"exec: {exc}") from None
        #: running jobs outlive a stopping broker: a statedir keeps them for its restart
        #: (a child instance's jobs end with its allocation)
        self.keep_running = instance.statedir is not None and instance.parent is None \
            and orphan > 0
        self.backends: dict = {}
        for name in factories:  # a backend's bad config fails startup, not a job
            self.backend(name)
        self.jobs: dict[int, ExecJob] = {}
        self._events: list[dict] = []
        # jobs spread over several brokers (strato.core.exec_ranks), if size > 1
        self.spread = None
        for method, fn in (("start", self._start), ("kill", self._kill),
                           ("stats", self._stats)):
            self.broker.register(f"exec.{method}", fn)

    def backend(self, name: str):
        be = self.backends.get(name)
        if be is None:
            be = self.backends[name] = self.factories[name](self, self.config.get("exec", {}))
        return be

    def event(self, jobid: int, name: str, context: dict | None = None) -> None:
        """Report an event of a job to the job manager (batched to the end of the turn)."""
        if self.spread is not None and self.spread.takes(jobid, name, context):
            return  # this rank's part of a spread job: gathered with the others
        if name == "finish":
            self.jobs.pop(jobid, None)
        if not self._events:
            self.broker.defer(self._flush)
        self._events.append({"id": jobid, "name": name, "context": context})

    def _flush(self) -> None:
        events, self._events = self._events, []
        self.broker.send("job-manager.exec", {"events": events})

    def _start(self, req) -> None:
        job = ExecJob(req.body)
        system = job.jobspec.get("attributes", {}).get("system", {})
        exec_attrs = system.get("exec")
        test = exec_attrs.get("test") if isinstance(exec_attrs, dict) else None
        if test is not None:
            name = "sim"
        elif self.default != "local" and "local" in self.factories \
                and runs_instance(job.jobspec):
            name = "local"
        else:
            name = self.default
        if name == "local" and self.spread is not None and self.spread.wants(job):
            name = "ranks"
        job.backend = self.backend(name)
        self.jobs[job.id] = job
        try:
            if req.body.get("reattach"):
                self._reattach(job, req.body)
            else:
                job.backend.start(job)
        except Exception as exc:  # a backend bug must not wedge the job
            log.exception("exec failed to start job %s", job.id)
            self.event(job.id, "exception", {"type": "exec",
                                             "note": f"exec failed to start: {exc}"})
            self.event(job.id, "finish", {"status": 1 << 8})

    def _reattach(self, job: ExecJob, body: dict) -> None:
        """A job that was running when the instance stopped (``exec.start`` with
        ``reattach``, ``started`` and ``t_run``): its backend takes it up again,
        or, if the backend cannot, it ends."""
        reattach = getattr(job.backend, "reattach", None)
        if reattach is not None:
            reattach(job, bool(body.get("started")), float(body.get("t_run") or 0.0))
            return
        self.event(job.id, "exception", {"type": "node-failure", "note":
                                         f"exec backend {job.backend.name} cannot take up"
                                         " a job across a restart"})
        self.event(job.id, "finish", {"status": 9})

    def _kill(self, req) -> None:
        body = req.body
        job = self.jobs.get(body.get("id"))
        if job is None:
            return
        signum = body.get("signum")
        if not isinstance(signum, int) or not 0 < signum < 65:
            raise RPCError(f"invalid signal {signum}")
        job.backend.kill(job.id, signum)

    def _stats(self, req) -> None:
        req.respond({"running": len(self.jobs),
                     "backends": {n: getattr(b, "stats", dict)() for n, b in
                                  self.backends.items()}})

    def warm_up(self) -> None:
        """Let the default backend start what it runs on (the shell host) ahead of
        the first job; a backend may offer ``warm_up()`` for this."""
        warm_up = getattr(self.backend(self.default), "warm_up", None)
        if warm_up is not None:
            warm_up()

    def shutdown(self) -> None:
        for backend in self.backends.values():
            backend.shutdown()
