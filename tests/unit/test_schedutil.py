"""The scheduler protocol, spoken to sched-simple through SchedModule in one broker:
hello/ready, batched alloc, deny, cancel, prioritize and partial free."""

from __future__ import annotations

import asyncio

from strato.core.broker import Broker
from strato.core.queues import Queues
from strato.core.resource import from_config
from strato.core.schedutil import SchedEnv, SchedModule
from strato.jobspec.idset import decode_idset
from strato.jobspec.model import JobspecV1
from strato.plugins.sched_simple import SimpleScheduler


def spec(**kw) -> dict:
    return JobspecV1.from_command(["true"], **kw).jobspec


def ranks(R: dict) -> list[int]:
    return [r for e in R["execution"]["R_lite"] for r in decode_idset(e["rank"])]


async def _session():
    b = Broker()
    got: list[dict] = []
    held = [{"id": 99, "priority": 16, "userid": 0, "t_submit": 0.0, "jobspec": spec(),
             "R": None}]
    nodes = from_config([{"hosts": "n[0-2]", "cores": "0-1"}])
    sched = SimpleScheduler(SchedEnv(None, {}, nodes, Queues({})), {})
    sched.set_resources(nodes)
    mod = SchedModule(b, "sched-simple", sched, SchedEnv(None, {}, nodes, Queues({})))
    from strato.core.resource import make_R

    held[0]["R"] = make_R([(2, "n2", [0, 1], [])])
    b.register("job-manager.sched-hello", lambda req: req.respond({"jobs": held}))
    b.register("job-manager.sched-ready", lambda req: req.respond())
    b.register("job-manager.sched", lambda req: got.extend(req.body["responses"]))
    await mod.prepare([])
    await mod.start()

    def alloc(*jobs):
        b.send("sched.alloc", {"jobs": [{"id": i, "priority": p, "userid": 0,
                                         "t_submit": 0.0, "jobspec": js}
                                        for i, p, js in jobs]})
        b.run_deferred()

    # n2 is held by job 99 (from the hello): a 2-node job takes n0 and n1
    alloc((1, 16, spec(num_nodes=2, num_tasks=2, exclusive=True)))
    assert [(r["id"], r["type"]) for r in got] == [(1, "alloc")]
    assert ranks(got[0]["R"]) == [0, 1]
    got.clear()
    # nothing is free now: two jobs wait; the later one is prioritized first
    alloc((2, 16, spec(num_tasks=2, cores_per_task=1)), (3, 16, spec()))
    assert got == []
    b.send("sched.prioritize", {"jobs": [[3, 20]]})
    b.send("sched.cancel", {"ids": [2]})
    b.run_deferred()
    assert got == [{"id": 2, "type": "cancel"}]
    got.clear()
    # a partial free of rank 0 lets job 3 run there, and job 1 keeps rank 1
    b.send("sched.free", {"jobs": [{"id": 1, "R": make_R([(0, "n0", [0, 1], [])]),
                                    "final": False}]})
    b.run_deferred()
    assert [(r["id"], r["type"]) for r in got] == [(1, "free"), (3, "alloc")]
    assert ranks(got[1]["R"]) == [0]
    got.clear()
    # a job that can never fit is denied with a reason
    alloc((4, 16, spec(num_nodes=4, num_tasks=4)))
    assert got[0]["type"] == "deny" and "unsatisfiable" in got[0]["note"]
    stats = await b.call("sched.stats")
    assert stats == {"name": "sched-simple", "pending": 0, "running": 3}


def test_scheduler_protocol_session():
    asyncio.run(_session())
