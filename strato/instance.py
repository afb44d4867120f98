"""Instance verbs over a handle: ping, info (uptime, size, job counts), plugins,
attributes, shutdown; and `resolve`, which finds an instance in the hierarchy.

Flux's ``flux ping``, ``flux uptime``, ``flux getattr``, ``flux uri`` and strato's
``strato plugins list`` are these functions and a print.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

from strato.core import ids as ids_mod
from strato.core.errors import StratoError
from strato.core.states import ACTIVE, ALL
from strato.handle import Handle, _raise, resolve_uri
from strato.job import JobStats


def ping(h: Handle, seq: int = 0) -> float:
    """Send one request to the broker and return the round trip in seconds."""
    t0 = time.perf_counter()
    h.rpc("broker.ping", {"seq": seq})
    return time.perf_counter() - t0


def info(h: Handle) -> dict:
    """The broker's facts: ``uri``, ``rundir``, ``statedir``, ``pid``, ``size``,
    ``nodes``, ``t_start``, ``uptime`` (seconds), ``jobs`` (all it knows) and
    ``active``."""
    return h.rpc("broker.info")


def plugins(h: Handle) -> list[dict]:
    """The loaded plugins in load order: ``{"name", "module", "hooks"}`` each."""
    return h.rpc("plugins.list")["plugins"]


def attr_get(h: Handle, name: str) -> object:
    """One broker attribute (``rank``, ``size``, ``instance-level``, ``parent-uri``,
    ``jobid``, ``local-uri``, ...); RPCError for an unknown one."""
    return h.rpc("attr.get", {"name": name})["value"]


def attributes(h: Handle) -> dict:
    """Every broker attribute and its value (``strato lsattr -v``)."""
    return h.rpc("attr.list")["attrs"]


def shutdown(h: Handle, exit_code: int = 0) -> None:
    """Stop the instance: its initial program is ended (SIGTERM), or, if it has
    none, it exits with `exit_code`; its jobs end with it."""
    h.rpc("broker.shutdown", {"exit": exit_code})


def resolve(target: str | None = None, wait: bool = False, uri: str | None = None) -> str:
    """The URI of an instance named by `target`, looked up from the instance at `uri`
    (default: ``$STRATO_URI``).

    `target` is a URI (``local://...``, returned as it is), a job id, or a path of
    job ids ``ID/ID2/...`` (each a child instance of the one before; a leading
    ``/`` starts at the root instance), as Flux's ``flux uri`` takes them. With
    `wait`, wait for each instance on the path to start. StratoError (one line)
    if a step is not an instance.
    """
    from strato import job as jobapi

    here = resolve_uri(uri)
    if not target:
        return here
    if "://" in target:
        return target
    if target.startswith("/"):
        while True:  # up to the root
            with Handle(here) as h:
                up = attr_get(h, "parent-uri")
            if not up:
                break
            here = up
    for step in (s for s in target.split("/") if s):
        try:
            jobid = jobapi.id_parse(step)
        except ValueError:
            raise StratoError(f"{step}: not a job id or URI") from None
        with Handle(here) as h:
            here = jobapi.uri(h, jobid, wait=wait)
    return here


# -- the hierarchy: child instances' progress and the jobs inside them ---------------------
#: how long a walk waits for the instances of one level to answer (seconds)
TIMEOUT = 5.0

_RESOURCE_STATES = ("all", "up", "down", "allocated", "free")


@dataclass
class InstanceInfo:
    """What a running child instance reports of itself: its job counts and its
    resources by state (Flux's ``instance.*`` fields of ``flux jobs``)."""

    uri: str
    stats: JobStats
    #: ``all``, ``up``, ``down``, ``allocated``, ``free`` -> ``nnodes``, ``ncores``, ``ngpus``
    resources: dict[str, dict[str, int]]

    @classmethod
    def from_answers(cls, uri: str, stats: dict, status: dict) -> InstanceInfo:
        """From a ``job-list.job-stats`` and a ``resource.status`` answer."""
        rows = {s: status[s] for s in ("free", "allocated", "down")}
        ranks = {s: set(rows[s]["ranks"]) for s in rows}
        every = ranks["free"] | ranks["allocated"] | ranks["down"]
        res = {s: {"nnodes": len(ranks[s]), "ncores": rows[s]["ncores"],
                   "ngpus": rows[s]["ngpus"]} for s in rows}
        res["all"] = {"nnodes": len(every),
                      "ncores": sum(r["ncores"] for r in rows.values()),
                      "ngpus": sum(r["ngpus"] for r in rows.values())}
        res["up"] = {"nnodes": len(every - (ranks["down"] - ranks["free"]
                                            - ranks["allocated"])),
                     "ncores": res["all"]["ncores"] - res["down"]["ncores"],
                     "ngpus": res["all"]["ngpus"] - res["down"]["ngpus"]}
        return cls(uri, JobStats.from_answer(stats), {s: res[s] for s in _RESOURCE_STATES})

    @property
    def utilization(self) -> float | None:
        """Allocated cores over all cores (None without cores)."""
        total = self.resources["all"]["ncores"]
        return self.resources["allocated"]["ncores"] / total if total else None

    @property
    def gpu_utilization(self) -> float | None:
        """Allocated gpus over all gpus (None without gpus)."""
        total = self.resources["all"]["ngpus"]
        return self.resources["allocated"]["ngpus"] / total if total else None

    @property
    def progress(self) -> float | None:
        """Ended jobs over all jobs (None before the first job)."""
        total = self.stats.total
        return self.stats.inactive / total if total else None

    def as_dict(self) -> dict:
        """Plain data, as a job record's ``instance`` key carries it (JSON-ready)."""
        return {"uri": self.uri, "stats": self.stats.as_dict(),
                "resources": self.resources, "utilization": self.utilization,
                "gpu_utilization": self.gpu_utilization, "progress": self.progress}


def is_instance(record: dict) -> bool:
    """True if a job record is a running child instance that can be asked about
    itself: in RUN (not CLEANUP: it is going away) with a URI in its memo."""
    memo = record.get("memo")  # first: most jobs have none, so a listing pays little
    return bool(memo and memo.get("uri")) and record.get("state") == "RUN"


def _ask_many(uris: list[str], requests: list[tuple[str, dict]],
              timeout: float) -> list[list[object]]:
    """Send the same `requests` to every instance in `uris` at once, then collect
    the answers, all within one `timeout`: a level of a tree costs one round trip
    however many instances it has. Per instance, a list with an answer body or a
    StratoError per request; an instance that is gone, or that does not answer in
    time, gets the same error for each."""
    out: list[list[object]] = []
    sent: list[tuple[Handle, list[int]] | None] = []
    try:
        for uri in uris:
            try:
                h = Handle(uri)
            except StratoError as exc:
                sent.append(None)
                out.append([exc] * len(requests))
                continue
            sent.append((h, [h.send(topic, body) for topic, body in requests]))
            out.append([])
        deadline = time.monotonic() + timeout
        for answers, entry in zip(out, sent, strict=True):
            if entry is None:
                continue
            h, tags = entry
            for tag in tags:
                try:
                    body, err, _ = h.recv(tag, timeout=max(0.0, deadline - time.monotonic()))
                    if err is not None:
                        _raise(body, err)
                    answers.append(body)
                except TimeoutError:
                    stuck = StratoError(f"{h.uri}: no answer within {timeout:g}s")
                    answers.extend([stuck] * (len(tags) - len(answers)))
                    break
                except StratoError as exc:
                    answers.append(exc)
    finally:
        for entry in sent:
            if entry is not None:
                entry[0].close()
    return out


_INFO_REQUESTS = [("job-list.job-stats", {}), ("resource.status", {})]


def _info_from(uri: str, answers: list[object]) -> InstanceInfo | None:
    stats, status = answers
    if isinstance(stats, StratoError) or isinstance(status, StratoError):
        return None
    return InstanceInfo.from_answers(uri, stats, status)


def summary(h: Handle, queue: str | None = None) -> InstanceInfo:
    """The `InstanceInfo` of the instance at `h` itself: its job counts (of
    `queue`'s jobs only, if given) and its resources by state, asked in one
    round trip (what ``strato top`` shows)."""
    requests = [("job-list.job-stats", {} if queue is None else {"queue": queue}),
                ("resource.status", {})]
    tags = [h.send(topic, body) for topic, body in requests]
    answers = []
    for tag in tags:
        body, err, _ = h.recv(tag)
        if err is not None:
            _raise(body, err)
        answers.append(body)
    return InstanceInfo.from_answers(h.uri, *answers)


def child_info(uris: list[str], timeout: float = TIMEOUT) -> list[InstanceInfo | None]:
    """The `InstanceInfo` of each instance in `uris`, asked all at once; None for
    one that cannot be reached or does not answer within `timeout` seconds (a
    listing must not fail because one child is stuck or gone)."""
    answers = _ask_many(uris, _INFO_REQUESTS, timeout)
    return [_info_from(u, a) for u, a in zip(uris, answers, strict=True)]


def add_instance_info(records: list[dict], timeout: float = TIMEOUT) -> int:
    """Give each record that `is_instance` an ``instance`` key (`InstanceInfo.as_dict`)
    from its child, all asked at once; a child that cannot be reached gets none.

    Records of plain jobs cost nothing: with no instance among them, no request is
    sent. Returns how many records were given their info.
    """
    targets = [r for r in records if is_instance(r)]
    if not targets:
        return 0
    found = child_info([r["memo"]["uri"] for r in targets], timeout)
    for rec, got in zip(targets, found, strict=True):
        if got is not None:
            rec["instance"] = got.as_dict()
    return sum(got is not None for got in found)


@dataclass
class JobNode:
    """A job in a walk of the hierarchy, and, if it is a child instance that the
    walk descended into, the jobs inside it."""

    job: dict
    #: the job's id path from where the walk started, ``ƒA/ƒB`` (``strato uri`` takes it)
    path: str
    #: the jobs listed inside this instance; None if it is no running instance or
    #: the walk stopped above it
    children: list[JobNode] | None = None
    #: why a running instance's jobs could not be listed (it is gone or stuck)
    error: str | None = None

    def __iter__(self) -> Iterator[JobNode]:
        """This node, then every node below it, depth first."""
        yield self
        for child in self.children or ():
            yield from child


def walk(h: Handle, states: int = ACTIVE, results: list[str] | None = None,
         name: str | None = None, max_entries: int = 0, userid: int | None = None,
         queue: str | None = None, since: float | None = None,
         ids: list[int] | None = None, level: int | None = None, info: bool = False,
         recurse_all: bool = False, timeout: float = TIMEOUT) -> list[JobNode]:
    """The jobs of the instance at `h` and, recursively, of its child instances
    (what ``strato pstree`` draws and ``strato jobs -R`` lists).

    The filters are `strato.job.list_jobs`'s, applied at every level; `ids`
    names the jobs to start from instead (the other filters then apply below
    them only, as Flux's ``flux pstree JOBID`` does). The walk descends `level`
    levels (None: all the way; 0: this instance only) into each running instance
    job of this user (`recurse_all`: of every user, whose instances may refuse).
    With `info`, every running instance job listed gets its ``instance`` record
    (see `add_instance_info`), the deepest ones included.

    Children are asked level by level, each level's instances all at once, so a
    tree costs one round trip per level. A child that cannot be reached, or does
    not answer within `timeout` seconds, keeps ``children`` None and gets an
    ``error``; the walk goes on with the rest.
    """
    from strato import job as jobapi

    filters = {"states": states, "results": results, "name": name,
               "max_entries": max_entries, "userid": userid, "queue": queue, "since": since}
    top = jobapi.list_jobs(h, ids=ids, states=ALL) if ids else jobapi.list_jobs(h, **filters)
    nodes = [JobNode(rec, ids_mod.f58(rec["id"])) for rec in top]
    listing = ("job-list.list", jobapi.list_request(**filters))
    me = os.getuid()

    def mine(node: JobNode) -> bool:
        # as Flux: another user's instance would refuse, so the walk does not
        # enter it unless told to (with `info` it is still asked for its counts)
        return recurse_all or node.job.get("userid") == me

    depth, frontier = 0, nodes
    while frontier:
        descend = level is None or depth < level
        if not (descend or info):
            break
        targets = [n for n in frontier
                   if is_instance(n.job) and (info or (descend and mine(n)))]
        requests = ([listing] if descend else []) + (_INFO_REQUESTS if info else [])
        answers = _ask_many([n.job["memo"]["uri"] for n in targets], requests, timeout)
        frontier = []
        for node, got in zip(targets, answers, strict=True):
            if info:
                found = _info_from(node.job["memo"]["uri"], got[-2:])
                if found is not None:
                    node.job["instance"] = found.as_dict()
            if not descend or not mine(node):
                continue
            listed = got[0]
            if isinstance(listed, StratoError):
                node.error = str(listed)
                continue
            node.children = [JobNode(rec, f"{node.path}/{ids_mod.f58(rec['id'])}")
                             for rec in listed["jobs"]]
            frontier.extend(node.children)
        depth += 1
    return nodes


def root_record(h: Handle, with_info: bool = False, timeout: float = TIMEOUT) -> dict:
    """The job record of the instance at `h` itself, as the root of its tree.

    A child instance's is its job's record in its parent; a root instance's (or
    a child's whose parent cannot be asked) is made up, with id 0 and name ``.``,
    as Flux's ``flux pstree`` shows the enclosing instance. With `with_info`, it
    has its own ``instance`` record too.
    """
    attrs = attributes(h)
    rec = None
    parent, jobid = attrs.get("parent-uri"), attrs.get("jobid")
    if parent and jobid:
        request = ("job-list.list", {"ids": [ids_mod.parse(jobid)], "states": ALL})
        got = _ask_many([parent], [request], timeout)[0][0]
        if not isinstance(got, StratoError) and got["jobs"]:
            rec = got["jobs"][0]
    if rec is None:
        facts = info(h)
        rec = {"id": 0, "userid": os.getuid(), "state": "RUN", "name": ".",
               "ntasks": facts["size"], "nnodes": facts["nodes"],
               "nodelist": attrs.get("hostlist", ""), "t_run": facts["t_start"]}
    rec["memo"] = {"uri": h.uri}
    if with_info:
        found = child_info([h.uri], timeout)[0]
        if found is not None:
            rec["instance"] = found.as_dict()
    return rec
