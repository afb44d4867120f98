"""The match operations: allocate, reserve, satisfiability, without-allocating.

Why a module of its own: it is the traverser's outer loop, not the walk. ``run``
checks the request against the graph (duration, node counts, constraints), calls
``select`` at now or at each later change point of the root's filter until the
request fits, falls back to a satisfiability check to tell "not now" from
"never", and hands a successful selection to the update walk.
"""

from __future__ import annotations

from strato.core import gcpolicy

from .errors import EBUSY, EINVAL, ENODEV, ENOENT, ERANGE, error_for
from .jobspec import Jobspec
from .matching import AT_ALLOC, AT_ALLOC_ORELSE_RESERVE, AT_NO_ALLOC, AT_SATISFIABILITY, JobMeta


class Scheduling:
    """``run`` and its schedule loop; mixed into ``Traverser``."""

    def _far_future(self, meta: JobMeta) -> int:
        sp = self.root().subplans[self.dom]
        return sp.end - meta.duration - 1

    def request_feasible(self, meta: JobMeta, op: str, dfv: dict[str, int]) -> int:
        target = dfv.get("node", 0)
        checking_sat = op in ("allocate_with_satisfiability", "satisfiability")
        g = self.g
        if meta.constraint is None and target <= g.nodes_up:
            return 0
        fail = EBUSY if op in ("allocate", "allocate_orelse_reserve", "without_allocating",
                               "without_allocating_future") else (ENODEV if checking_sat else "")
        if target > g.nodes_up and fail:
            self._errno = fail
            return -1
        nodes = g.by_type.get("node")
        if not nodes:
            return 0
        t = meta.at if op in ("allocate", "without_allocating") else g.graph_end - 1
        feasible = 0
        for vid in nodes:
            n = g.vertices[vid]
            if ((meta.constraint is None or meta.constraint(n))
                    and (checking_sat or n.status == "up")
                    and n.plans.avail_resources_during(t, meta.duration) == 1):
                feasible += 1
                if feasible >= target:
                    break
        if feasible < target and fail:
            self._errno = fail
            return -1
        return 0

    def sat_select(self, js: Jobspec, meta: JobMeta, x: bool) -> int:
        meta.alloc_type = AT_SATISFIABILITY
        meta.at = self._far_future(meta)
        rc = self.select(js.resources, self.root(), meta, x)
        if rc < 0 and self._errno in (EBUSY, ERANGE):
            self._errno = ENODEV
        return rc

    def schedule(self, js: Jobspec, meta: JobMeta, x: bool, op: str,
                 dfv: dict[str, int]) -> int:
        if self.request_feasible(meta, op, dfv) < 0:
            return -1
        root = self.root()
        rc = self.select(js.resources, root, meta, x)
        self.total_preorder, self.total_postorder = self.preorder, self.postorder
        if rc == 0:
            return 0
        if op == "allocate_with_satisfiability":
            self._errno = EBUSY
            if self.sat_select(js, meta, x) < 0:
                self.reset_color()
            self.total_preorder += self.preorder
            self.total_postorder += self.postorder
        elif op in ("allocate_orelse_reserve", "without_allocating_future"):
            if op == "allocate_orelse_reserve":
                meta.alloc_type = AT_ALLOC_ORELSE_RESERVE
            sp = root.subplans[self.dom]
            agg = self.relevant(sp, dfv)
            # Fluxion's planner_multi_avail_time_first/_next: change points only.
            for t in sp.avail_times(meta.at + 1, meta.duration, agg, points_only=True):
                meta.at = t
                rc = self.select(js.resources, root, meta, x)
                self.total_preorder += self.preorder
                self.total_postorder += self.postorder
                if rc == 0:
                    break
            else:
                self._errno = ENOENT
            if rc < 0 and self._errno in (ENOENT, ERANGE):
                self._errno = EBUSY
                if self.sat_select(js, meta, x) < 0:
                    self.reset_color()
                meta.at = -1
        else:
            self._errno = EBUSY
        return rc

    def run(self, js: Jobspec, writer, op: str, jobid: int, at: int) -> int:
        """Match ``js`` with ``op`` (allocate, allocate_orelse_reserve, satisfiability, ...)
        at time ``at``; returns the scheduled time. Selected vertices go to ``writer``.

        Raises ``Busy`` (not now), ``Unsatisfiable`` (never), ``InvalidRequest`` (bad
        duration, exclusivity conflict), ``Overflow`` (too many xor-slot variants), or
        a plain ``MatchError``; the message is Fluxion's error text.

        The cyclic collector is paused for the match: a walk over a large graph makes
        a million short-lived, acyclic records, and the collections they would
        trigger cost a third of the match's time (t3006's disaggregated system).
        """
        with gcpolicy.paused():
            return self._run(js, writer, op, jobid, at)

    def _run(self, js: Jobspec, writer, op: str, jobid: int, at: int) -> int:
        self.err = ""
        self._errno = ""
        root = self.root()
        x = self.exclusivity(js.resources, root)
        saved_x = set(self.policy.x_types)
        dfv: dict[str, int] = {}
        self.prime_jobspec(js.resources, dfv)
        g_duration = self.g.graph_end - self.g.graph_start
        if js.duration < 0 or js.duration > g_duration:
            # as Fluxion, the jobspec's exclusive types stay in the policy here
            raise error_for(EINVAL, self.err)
        duration = g_duration if js.duration == 0 else -int(-js.duration // 1)
        meta = JobMeta(AT_ALLOC, jobid, at, at, duration, js.constraint, js.queue)
        if op in ("without_allocating", "without_allocating_future"):
            meta.alloc_type = AT_NO_ALLOC
        if op == "satisfiability":
            self.preorder = self.postorder = 0
            rc = self.sat_select(js, meta, x)
            self.total_preorder, self.total_postorder = self.preorder, self.postorder
            self.reset_color()
        else:
            rc = self.schedule(js, meta, x, op, dfv)
            if rc == 0:
                at = meta.at
                if at == self.g.graph_end or at < 0 or at > self.g.graph_end:
                    self._errno = EBUSY if at == self.g.graph_end else EINVAL
                    self.policy.x_types = saved_x
                    raise error_for(self._errno, self.err)
                if at + meta.duration > self.g.graph_end:
                    meta.duration = self.g.graph_end - at
                rc = self.update(root, writer, meta)
        self.policy.x_types = saved_x
        if rc != 0:
            raise error_for(self._errno, self.err)
        return at
