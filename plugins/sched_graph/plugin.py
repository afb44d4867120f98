"""The ``sched-graph`` plugin: graph scheduling for an instance.

Chosen with ``[sched] plugin = "sched-graph"`` and configured in its own table::

    [sched-graph]
    match-policy = "lonode"                 # any registered match policy
    prune-filters = "ALL:core,ALL:node"
    traverser = "simple"                    # or "flexible" (jobspecs with or/xor slots)
    queue-policy = "easy"                   # fcfs, easy, conservative, hybrid
    reservation-depth = 8                   # hybrid only
    queue-depth = 32                        # pending jobs considered per cycle

The instance's R becomes a resource graph; each cycle the pending jobs are
matched in order by the traverser (depth-first search under the match policy).
Jobs that do not fit now get a reservation in the planners (as many as the queue
policy's depth allows) so that later jobs backfill only around them; the
reservations are recomputed every cycle and shown as ``t_estimate`` annotations.
Match policies and queue policies are registered through hooks, so a plugin can
add its own (see docs/plugins.md).
"""

from __future__ import annotations

import json
import time

from strato.core.errors import ConfigError
from strato.core.hookspecs import hookimpl
from strato.core.plugins import registry, unknown_name
from strato.core.resource import status_rows
from strato.core.schedutil import SchedulePass
from strato.jobspec.idset import decode_idset

from .config import core_declare_config  # noqa: F401 - the plugin declares its config keys
from .errors import MatchError, Unsatisfiable
from .flexible import TRAVERSERS, create_traverser
from .jobspec import JobspecError, match_text, parse_jobspec
from .policies import MatchPolicy, create_policy
from .rv1exec import load_rv1exec, r_ranks, rv1exec_update
from .update import partial_cancel
from .writers import create_writer

BUILTIN_POLICIES = ("first", "low", "high", "lonode", "hinode", "lonodex", "hinodex",
                    "firstnodex", "locality", "variation")
UNLIMITED = 1 << 30


class QueuePolicy:
    """How many blocked jobs get a reservation per cycle, and whether one blocks."""

    def __init__(self, name: str, reservation_depth: int, blocks: bool) -> None:
        self.name = name
        self.reservation_depth = reservation_depth
        self.blocks = blocks


def _queue_policies() -> dict:
    def hybrid(config: dict) -> QueuePolicy:
        depth = config.get("reservation-depth", 64)
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
            raise ConfigError("sched-graph.reservation-depth must be an integer >= 0")
        return QueuePolicy("hybrid", depth, False)

    return {
        "fcfs": lambda config: QueuePolicy("fcfs", 0, True),
        "easy": lambda config: QueuePolicy("easy", 1, False),
        "conservative": lambda config: QueuePolicy("conservative", UNLIMITED, False),
        "hybrid": hybrid,
    }


class GraphScheduler:
    """The scheduler object an instance drives (see module docstring)."""

    name = "sched-graph"

    def __init__(self, env, config: dict) -> None:
        self.env = env
        hook = env.hook
        policies = registry(hook.sched_register_match_policies, "match policy")
        self.policy_name = str(config.get("match-policy", "first"))
        if self.policy_name not in policies:
            raise ConfigError("sched-graph: " + unknown_name(
                "match-policy", self.policy_name, env.config, "sched_register_match_policies"))
        self.policy_factory = policies[self.policy_name]
        self.prune_filters = str(config.get("prune-filters", "ALL:core,ALL:node"))
        known = set(registry(hook.sched_register_prune_filters, "prune filter type"))
        for spec in filter(None, self.prune_filters.split(",")):
            anchor, _, rtype = spec.partition(":")
            if not rtype or rtype not in known:
                raise ConfigError(f"sched-graph: invalid prune filter '{spec}': " + unknown_name(
                    "prune filter type", rtype, env.config, "sched_register_prune_filters"))
        self.traverser = str(config.get("traverser", "simple"))
        if self.traverser not in TRAVERSERS:
            raise ConfigError(f"sched-graph: unknown traverser '{self.traverser}' "
                              f"(have: {', '.join(sorted(TRAVERSERS))})")
        queue_policies = registry(hook.sched_register_queue_policies, "queue policy")
        qname = str(config.get("queue-policy", "fcfs"))
        if qname not in queue_policies:
            raise ConfigError("sched-graph: " + unknown_name(
                "queue-policy", qname, env.config, "sched_register_queue_policies"))
        self.queue_policy = queue_policies[qname](config)
        depth = config.get("queue-depth", 32)
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise ConfigError("sched-graph.queue-depth must be an integer >= 1")
        self.queue_depth = depth
        self.reserved: set[int] = set()  # jobids with a reservation this cycle
        self.allocs: dict[int, dict[int, tuple[int, int]]] = {}  # jobid -> rank -> cores, gpus
        self._specs: dict[int, tuple[dict, object]] = {}

    # -- resources ---------------------------------------------------------------------
    def set_resources(self, nodes) -> None:
        self.nodes = {n.rank: n for n in nodes}
        self.drained: set[int] = set()
        self.graph = load_rv1exec(json.dumps(self.env.R))
        policy = self.policy_factory()
        if not isinstance(policy, MatchPolicy):
            raise ConfigError(f"sched-graph: match policy '{self.policy_name}' is not a "
                              "MatchPolicy")
        try:
            self.trav = create_traverser(self.traverser, self.graph, policy, ["containment"],
                                         self.prune_filters)
            self.trav.initialize()
        except ValueError as exc:
            raise ConfigError(f"sched-graph: {exc}") from None
        self.node_paths = {v.rank: v.paths["containment"] for v in self.graph.vertices
                           if v.type == "node"}

    def _jobspec(self, jobspec: dict, queue: str = ""):
        """The traverser's form of a jobspec, parsed once per distinct jobspec object,
        with the constraint of its queue's ``requires`` added."""
        orig = jobspec
        key = id(jobspec)
        hit = self._specs.get(key)
        if hit is not None and hit[0] is orig:
            return hit[1]
        q = self.env.queues.queues.get(queue) if queue else None
        if q is not None and q.requires:
            system = jobspec["attributes"]["system"]
            need = {"properties": list(q.requires)}
            have = system.get("constraints")
            jobspec = {**jobspec, "attributes": {**jobspec["attributes"], "system": {
                **system, "constraints": {"and": [have, need]} if have else need}}}
        js = parse_jobspec(match_text(jobspec))
        if len(self._specs) > 4096:
            self._specs.clear()
        self._specs[key] = (orig, js)
        return js

    # -- scheduling --------------------------------------------------------------------
    def feasibility(self, job) -> str | None:
        """Why the request can never be satisfied here (None if it can)."""
        try:
            js = self._jobspec(job.jobspec, job.summary.get("queue", ""))
        except JobspecError as exc:
            return f"sched-graph cannot match this jobspec: {exc}"
        try:
            self.trav.run(js, create_writer("simple"), "satisfiability", 0, int(time.time()))
        except MatchError:
            return "unsatisfiable request"
        return None

    def schedule(self, pending: list) -> SchedulePass:
        now = int(time.time())
        for jobid in self.reserved:  # reservations are redone each cycle
            self.trav.remove(jobid)
        self.reserved.clear()
        allocated, rejected, annotations = [], [], {}
        qp = self.queue_policy
        reservations = 0
        window = pending[: self.queue_depth]
        blocked = False
        for job in window:
            try:
                js = self._jobspec(job.jobspec, job.summary.get("queue", ""))
            except JobspecError as exc:
                rejected.append((job, f"sched-graph cannot match this jobspec: {exc}"))
                continue
            reserve = reservations < qp.reservation_depth
            op = "allocate_orelse_reserve" if reserve else "allocate"
            writer = create_writer("rv1_nosched")
            try:
                at = self.trav.run(js, writer, op, job.id, now)
            except Unsatisfiable:
                rejected.append((job, "unsatisfiable request"))
                continue
            except MatchError:
                if qp.blocks:
                    blocked = True
                    break
                continue
            if at <= now:
                R = json.loads(writer.emit())
                self._account(job.id, R)
                allocated.append((job, R))
            else:
                self.reserved.add(job.id)
                annotations[job.id] = {"sched": {"t_estimate": float(at)}}
                reservations += 1
        # jobs beyond the window wait for the next pass, which follows at once if
        # this one decided anything (otherwise the same window would be tried again)
        more = not blocked and len(pending) > len(window) and bool(allocated or rejected)
        return SchedulePass(allocated, rejected, annotations, more)

    def allocate_existing(self, job, R: dict) -> None:
        """Book the resources of a job that already holds `R` (a scheduler reload);
        raises MatchError (with Fluxion's message) if they cannot be booked."""
        text = json.dumps(R)
        start = int(R["execution"].get("starttime", 0))
        end = int(R["execution"].get("expiration", 0))
        duration = end - start if end > start else self.trav.g.graph_end - start
        trav = self.trav
        trav.run_update(lambda: rv1exec_update(trav, text, job.id, start, duration,
                                               share_partial_nodes=True),
                        create_writer("rv1_nosched"), job.id, start, duration)
        self._account(job.id, R)

    def _account(self, jobid: int, R: dict) -> None:
        used: dict[int, tuple[int, int]] = {}
        for entry in R["execution"]["R_lite"]:
            children = entry.get("children", {})
            nc = len(decode_idset(children.get("core", "")))
            ng = len(decode_idset(children.get("gpu", "")))
            for rank in decode_idset(entry["rank"]):
                used[rank] = (nc, ng)
        self.allocs[jobid] = used

    def free(self, jobid: int, R: dict, final: bool) -> None:
        """Give back the job's resources on the ranks of `R` (all of them if final)."""
        used = self.allocs.get(jobid)
        if used is None:
            return
        ranks = set(r_ranks(json.dumps(R))) if not final else set(used)
        left = {r: u for r, u in used.items() if r not in ranks}
        if left:
            partial_cancel(self.trav, jobid, sorted(ranks))
            self.allocs[jobid] = left
        else:
            del self.allocs[jobid]
            self.trav.remove(jobid)

    # -- status and drain ----------------------------------------------------------------
    def drain(self, ranks: list[int], drained: bool) -> None:
        for r in ranks:
            path = self.node_paths.get(r)
            if path is not None:
                self.trav.mark(path, "down" if drained else "up")
            (self.drained.add if drained else self.drained.discard)(r)

    def resource_status(self) -> dict:
        used: dict[int, list[int]] = {}
        for alloc in self.allocs.values():
            for rank, (nc, ng) in alloc.items():
                u = used.setdefault(rank, [0, 0])
                u[0] += nc
                u[1] += ng
        return status_rows((node, rank in self.drained, *used.get(rank, (0, 0)))
                           for rank, node in sorted(self.nodes.items()))


@hookimpl
def sched_register_schedulers(register):
    register("sched-graph", GraphScheduler)


@hookimpl
def sched_register_match_policies(register):
    for name in BUILTIN_POLICIES:
        register(name, lambda name=name: create_policy(name))


@hookimpl
def sched_register_prune_filters(register):
    for rtype in ("cluster", "rack", "node", "socket", "core", "gpu", "memory", "storage"):
        register(rtype)


@hookimpl
def sched_register_queue_policies(register):
    for name, factory in _queue_policies().items():
        register(name, factory)
