"""sched-simple: first-fit scheduling of nodes, cores and gpus, first come first served.

Jobs are considered in priority order; the first job of a queue that does not
fit now blocks the ones behind it in that queue (fcfs per queue), and a job that
could never fit, even on an empty instance, is rejected at once with an
``alloc`` exception. A job's constraint (``--requires``, and its queue's
``requires``) limits it to the nodes it matches. Drained nodes get no new jobs.
Each node keeps sorted lists of its free core and gpu ids, and a hint to the first
node with a free core keeps first fit cheap on thousands of nodes.
"""

from __future__ import annotations

import time

from strato.core.hookspecs import hookimpl
from strato.core.resource import Node, make_R, status_rows
from strato.core.schedutil import SchedulePass
from strato.jobspec.idset import decode_idset


class _NodeState:
    __slots__ = ("node", "free_cores", "free_gpus", "drained")

    def __init__(self, node: Node) -> None:
        self.node = node
        self.free_cores = list(node.cores)
        self.free_gpus = list(node.gpus)
        self.drained = False

    def idle(self) -> bool:
        return (len(self.free_cores) == len(self.node.cores)
                and len(self.free_gpus) == len(self.node.gpus))


class SimpleScheduler:
    """First fit, fcfs (see module docstring)."""

    name = "sched-simple"

    def __init__(self, env, config: dict) -> None:
        self.nqueues = len(env.queues.named(None))
        self.nodes: list[_NodeState] = []
        self.allocs: dict[int, list[tuple[_NodeState, list[int], list[int]]]] = {}
        self._hint = 0
        self._satisfiable: dict[tuple, str | None] = {}

    def set_resources(self, nodes: list[Node]) -> None:
        self.nodes = [_NodeState(n) for n in nodes]

    # -- matching ------------------------------------------------------------------------
    @staticmethod
    def _key(s: dict) -> tuple:
        return (s["nnodes"], s["nslots"], s["cores_per_slot"], s["gpus_per_slot"],
                s["exclusive"], s.get("constraint_key", ""))

    def feasibility(self, job) -> str | None:
        """Checked at submission: why this request can never run here (None: it can)."""
        return self._why_unsatisfiable(job.summary)

    def _why_unsatisfiable(self, s: dict) -> str | None:
        """Why the request could not fit even on the whole, idle instance (None: it can)."""
        key = self._key(s)
        if key in self._satisfiable:
            return self._satisfiable[key]
        nnodes, nslots, cps, gps, _excl, _ckey = key
        match = s.get("constraint")
        nodes = [n for n in self.nodes if match is None or match(n.node)]
        fits = [min(len(n.node.cores) // cps if cps else nslots,
                    len(n.node.gpus) // gps if gps else nslots) for n in nodes]
        if nnodes is None:
            ok = sum(fits) >= nslots
        else:
            per = nslots // nnodes
            ok = sum(1 for f in fits if f >= per) >= nnodes
        why = None
        if not ok:
            ncores = sum(len(n.node.cores) for n in nodes)
            ngpus = sum(len(n.node.gpus) for n in nodes)
            why = (f"unsatisfiable request: {nslots} slot(s) of {cps} core(s)"
                   + (f" and {gps} gpu(s)" if gps else "")
                   + (f" on {nnodes} node(s)" if nnodes else "")
                   + ("; the constraint matches" if match is not None else
                      "; the instance has")
                   + f" {len(nodes)} node(s), {ncores} core(s), {ngpus} gpu(s)")
        self._satisfiable[key] = why
        return why

    def _try_alloc(self, s: dict) -> list | None:
        nnodes, nslots, cps, gps = s["nnodes"], s["nslots"], s["cores_per_slot"], \
            s["gpus_per_slot"]
        picks = []
        match = s.get("constraint")
        if nnodes is None:
            remaining = nslots
            for i in range(self._hint, len(self.nodes)):
                ns = self.nodes[i]
                if ns.drained or not ns.free_cores or (match is not None and not match(ns.node)):
                    continue
                k = len(ns.free_cores) // cps if cps else remaining
                if gps:
                    k = min(k, len(ns.free_gpus) // gps)
                if k <= 0:
                    continue
                k = min(k, remaining)
                picks.append((ns, k * cps, k * gps))
                remaining -= k
                if not remaining:
                    break
            if remaining:
                return None
        else:
            per = nslots // nnodes
            excl = s["exclusive"]
            for i in range(self._hint, len(self.nodes)):
                ns = self.nodes[i]
                if ns.drained or (match is not None and not match(ns.node)):
                    continue
                if excl:
                    if ns.idle() and len(ns.free_cores) >= per * cps \
                            and len(ns.free_gpus) >= per * gps:
                        picks.append((ns, len(ns.free_cores), len(ns.free_gpus)))
                elif len(ns.free_cores) >= per * cps and len(ns.free_gpus) >= per * gps:
                    picks.append((ns, per * cps, per * gps))
                if len(picks) == nnodes:
                    break
            if len(picks) < nnodes:
                return None
        taken = []
        for ns, nc, ng in picks:
            cores = ns.free_cores[:nc]
            del ns.free_cores[:nc]
            gpus = ns.free_gpus[:ng]
            del ns.free_gpus[:ng]
            taken.append((ns, cores, gpus))
        while self._hint < len(self.nodes) and not self.nodes[self._hint].free_cores:
            self._hint += 1
        return taken

    def schedule(self, pending: list) -> SchedulePass:
        """Allocate pending jobs in order; a job that does not fit blocks its queue."""
        allocated, rejected = [], []
        now = time.time()
        nqueues = self.nqueues
        blocked: set[str] = set()
        for job in pending:
            s = job.summary
            queue = s.get("queue", "")
            if queue in blocked:
                continue
            taken = self._try_alloc(s)
            if taken is None:
                why = self._why_unsatisfiable(s)
                if why is not None:
                    rejected.append((job, why))
                    continue
                blocked.add(queue)
                if len(blocked) >= nqueues:
                    break
                continue
            self.allocs[job.id] = taken
            duration = s["duration"]
            R = make_R([(ns.node.rank, ns.node.hostname, cores, gpus)
                        for ns, cores, gpus in taken],
                       starttime=now, expiration=now + duration if duration else 0.0)
            allocated.append((job, R))
        return SchedulePass(allocated, rejected, {})

    def allocate_existing(self, job, R: dict) -> None:
        """Take the resources of a job that already holds `R` (a scheduler reload)."""
        taken = []
        for entry in R["execution"]["R_lite"]:
            children = entry.get("children", {})
            cores = decode_idset(children.get("core", ""))
            gpus = decode_idset(children.get("gpu", ""))
            for rank in decode_idset(entry["rank"]):
                ns = self.nodes[rank]
                ns.free_cores = [c for c in ns.free_cores if c not in cores]
                ns.free_gpus = [g for g in ns.free_gpus if g not in gpus]
                taken.append((ns, list(cores), list(gpus)))
        self.allocs[job.id] = taken
        while self._hint < len(self.nodes) and not self.nodes[self._hint].free_cores:
            self._hint += 1

    def free(self, jobid: int, R: dict, final: bool) -> None:
        """Give back the job's resources on the ranks of `R` (all of them if final)."""
        taken = self.allocs.pop(jobid, None)
        if not taken:
            return
        if not final:
            ranks = {r for e in R["execution"]["R_lite"] for r in decode_idset(e["rank"])}
            keep = [t for t in taken if t[0].node.rank not in ranks]
            taken = [t for t in taken if t[0].node.rank in ranks]
            if keep:
                self.allocs[jobid] = keep
        for ns, cores, gpus in taken:
            ns.free_cores.extend(cores)
            ns.free_cores.sort()
            if gpus:
                ns.free_gpus.extend(gpus)
                ns.free_gpus.sort()
            idx = ns.node.rank
            if idx < self._hint:
                self._hint = idx

    # -- status and drain ------------------------------------------------------------------
    def drain(self, ranks: list[int], drained: bool) -> None:
        for r in ranks:
            self.nodes[r].drained = drained
        self._hint = 0

    def resource_status(self) -> dict:
        """Free, allocated and down (drained) nodes with their core and gpu counts."""
        return status_rows((ns.node, ns.drained, len(ns.node.cores) - len(ns.free_cores),
                            len(ns.node.gpus) - len(ns.free_gpus)) for ns in self.nodes)


@hookimpl
def sched_register_schedulers(register):
    register("sched-simple", SimpleScheduler)
