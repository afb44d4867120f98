"""sched-simple: first fit, fcfs blocking, exclusivity, satisfiability, drain."""

from __future__ import annotations

from types import SimpleNamespace

from strato.core.queues import Queues
from strato.core.resource import from_config
from strato.core.schedutil import SchedEnv
from strato.plugins.sched_simple import SimpleScheduler


class Sched:
    """sched-simple with the old (allocated, rejected) pair for short asserts."""

    def __init__(self, s: SimpleScheduler) -> None:
        self.s = s

    def schedule(self, pending):
        result = self.s.schedule(pending)
        assert result.annotations == {}
        return result.allocated, result.rejected

    def __getattr__(self, name):
        return getattr(self.s, name)


def sched(hosts="n[0-3]", cores="0-3", gpus=""):
    nodes = from_config([{"hosts": hosts, "cores": cores, "gpus": gpus}])
    s = SimpleScheduler(SchedEnv(None, {}, nodes, Queues({})), {})
    s.set_resources(nodes)
    return Sched(s)


def job(i, nslots=1, cores=1, gpus=0, nnodes=None, exclusive=False):
    return SimpleNamespace(id=i, summary={"nnodes": nnodes, "nslots": nslots,
                                          "cores_per_slot": cores, "gpus_per_slot": gpus,
                                          "exclusive": exclusive, "duration": 0.0})


def ranks_cores(R):
    return [(e["rank"], e["children"]) for e in R["execution"]["R_lite"]]


def test_first_fit_packs_cores_in_order():
    s = sched()
    alloc, rej = s.schedule([job(1, nslots=3), job(2, nslots=2, cores=2)])
    assert not rej
    assert ranks_cores(alloc[0][1]) == [("0", {"core": "0-2"})]
    assert ranks_cores(alloc[1][1]) == [("1", {"core": "0-3"})]


def test_fcfs_blocks_behind_a_job_that_does_not_fit_now():
    s = sched(hosts="n0")
    s.schedule([job(1, nslots=3)])
    alloc, rej = s.schedule([job(2, nslots=2), job(3, nslots=1)])
    assert alloc == [] and rej == []
    s.free(1, {}, True)
    alloc, _ = s.schedule([job(2, nslots=2), job(3, nslots=1)])
    assert [j.id for j, _ in alloc] == [2, 3]


def test_unsatisfiable_is_rejected_and_the_queue_moves_on():
    s = sched(hosts="n[0-1]", cores="0-1", gpus="0")
    alloc, rej = s.schedule([job(1, nslots=5), job(2, gpus=2), job(3, nnodes=3, nslots=3),
                             job(4)])
    assert [j.id for j, _ in rej] == [1, 2, 3]
    assert "unsatisfiable" in rej[0][1]
    assert [j.id for j, _ in alloc] == [4]


def test_nodes_and_exclusive():
    s = sched()
    s.schedule([job(1)])  # n0 is now partly used
    alloc, _ = s.schedule([job(2, nnodes=2, nslots=2, exclusive=True)])
    R = alloc[0][1]
    assert R["execution"]["nodelist"] == ["n[1-2]"]
    assert ranks_cores(R) == [("1-2", {"core": "0-3"})]
    st = s.resource_status()
    assert st["allocated"]["nnodes"] == 3 and st["allocated"]["ncores"] == 9
    assert st["free"]["ncores"] == 7


def test_drained_nodes_get_no_jobs():
    s = sched()
    s.drain([0, 1, 2], True)
    alloc, _ = s.schedule([job(1, nslots=4), job(2)])
    assert ranks_cores(alloc[0][1]) == [("3", {"core": "0-3"})]
    assert alloc[1:] == []
    assert s.resource_status()["down"]["nodelist"] == "n[0-2]"
