"""sched-graph in an instance: policies, reservations and backfill, drain, plugins."""

from __future__ import annotations

import json
import textwrap

import strato
from strato import job

NODES = """
[exec]
backend = "sim"
[[resource.config]]
hosts = "node[0-3]"
cores = "0-3"
"""


def graph_instance(make_instance, extra: str = "", **table):
    lines = "\n".join(f"{k.replace('_', '-')} = {json.dumps(v)}" for k, v in table.items())
    return make_instance(config=f'[sched]\nplugin = "sched-graph"\n[sched-graph]\n{lines}\n'
                                + NODES + extra)


def spec(*command, nodes=None, ntasks=1, duration=0.0, run=100.0):
    js = strato.JobspecV1.from_command(list(command), num_tasks=ntasks, num_nodes=nodes,
                                       exclusive=nodes is not None, duration=duration,
                                       environment={})
    js.setattr("system.exec.test.run_duration", run)
    return js


def test_lists_runs_and_places_by_policy(make_instance):
    inst = graph_instance(make_instance, match_policy="hinode", traverser="flexible")
    h = strato.Handle(inst.uri)
    a = job.submit(h, spec("true"))
    assert job.info(h, a)["nodelist"] == "node3"  # hinode: highest node first
    lst = inst.strato("resource", "list", check=True).stdout.splitlines()
    assert lst[1].split() == ["free", "4", "15", "0", "node[0-3]"]
    assert lst[2].split() == ["allocated", "1", "1", "0", "node3"]
    res = inst.strato("run", "-N", "1", "-S", "exec.test.run_duration=0", "true")
    assert res.returncode == 0, res.stderr
    res = inst.strato("submit", "-n", "100", "true")
    assert res.returncode == 1 and "unsatisfiable" in res.stderr
    job.cancel(h, a)
    assert job.wait(h, a).result == "CANCELED"
    assert "allocated" not in inst.strato("resource", "list", "--json", check=True).stdout \
        or json.loads(inst.strato("resource", "list", "--json").stdout)["allocated"][
            "nnodes"] == 0


def _backfill(make_instance, queue_policy: str) -> tuple[dict, dict, dict]:
    inst = graph_instance(make_instance, queue_policy=queue_policy)
    h = strato.Handle(inst.uri)
    h.rpc("queue.control", {"action": "stop"})
    big = job.submit(h, spec("true", nodes=2, ntasks=2, duration=100, run=100))
    wide = job.submit(h, spec("true", nodes=4, ntasks=4, duration=50, run=1))
    small = job.submit(h, spec("true", ntasks=1, duration=10, run=100))
    h.rpc("queue.control", {"action": "start"})
    job.wait_all(h, [])  # one round trip: the first scheduling cycle has run
    return job.info(h, big), job.info(h, wide), job.info(h, small)


def test_fcfs_blocks_behind_the_first_job_that_does_not_fit(make_instance):
    big, wide, small = _backfill(make_instance, "fcfs")
    assert big["state"] == "RUN", [e["name"] for e in big["eventlog"]]
    assert wide["state"] == "SCHED" and small["state"] == "SCHED"
    assert "annotations" not in wide


def test_easy_reserves_for_the_first_and_backfills_the_rest(make_instance):
    big, wide, small = _backfill(make_instance, "easy")
    assert big["state"] == "RUN"
    assert wide["state"] == "SCHED"
    eta = wide["annotations"]["sched"]["t_estimate"]
    assert eta >= big["t_run"] + 99  # when the big job's time limit ends
    assert small["state"] == "RUN"  # ends before the reservation: backfilled


def test_drain_and_undrain(make_instance):
    inst = graph_instance(make_instance)
    h = strato.Handle(inst.uri)
    inst.strato("resource", "drain", "node[0-2]", "maintenance", check=True)
    a = job.submit(h, spec("true", nodes=1))
    assert job.info(h, a)["nodelist"] == "node3"
    b = job.submit(h, spec("true", nodes=1))
    assert job.info(h, b)["state"] == "SCHED"
    inst.strato("resource", "undrain", "node0", check=True)
    job.wait_all(h, [])
    assert job.info(h, b)["nodelist"] == "node0"


POLICY = textwrap.dedent('''
    """A site match policy: odd-numbered nodes first, lowest ids first within them."""

    from strato.core.hookspecs import hookimpl
    from strato.plugins.sched_graph.policies import MultilevelId
    from strato.plugins.sched_graph.scoring import MATCH_MET

    EVEN_PENALTY = 1 << 20  # larger than any node id: every odd node sorts first


    def node_key(v) -> int:
        return v.id + (EVEN_PENALTY if v.id % 2 == 0 else 0)


    class OddFirst(MultilevelId):
        """``lonode`` with a different node order; resources below a node follow it."""

        subtree_local = True

        def __init__(self) -> None:
            super().__init__(high=False)
            self.add_score_factor("node", 1, 10000)

        def dom_discover_vtx(self, v) -> int:
            if v.type == "node":
                self.factor_value["node"] = (node_key(v) + 2) * 10000
                self.scores += self.factor_value["node"]
            return 0

        def dom_finish_vtx(self, v, s, resources, dfu) -> int:
            rc = super().dom_finish_vtx(v, s, resources, dfu)
            if v.type == "node" and dfu.overall_score >= MATCH_MET:
                dfu.overall_score += node_key(v) - v.id
            return rc


    @hookimpl
    def sched_register_match_policies(register):
        register("oddfirst", OddFirst)
''')


def test_a_match_policy_from_outside_the_package(make_instance, tmp_path):
    (tmp_path / "oddfirst.py").write_text(POLICY)
    inst = graph_instance(make_instance, extra=f'[plugins]\nsearchpath = ["{tmp_path}"]\n'
                                              'load = ["oddfirst"]\n', match_policy="oddfirst")
    h = strato.Handle(inst.uri)
    placed = [job.info(h, job.submit(h, spec("true", nodes=1))).get("nodelist")
              for _ in range(4)]
    assert placed == ["node1", "node3", "node0", "node2"]


def test_bad_sched_graph_config(make_instance):
    import pytest

    for table, message in (({"match_policy": "nope"}, "unknown match-policy 'nope'"),
                           ({"queue_policy": "lifo"}, "unknown queue-policy 'lifo'"),
                           ({"prune_filters": "ALL:widget"}, "invalid prune filter"),
                           ({"queue_depth": 0}, "queue-depth"),
                           ({"traverser": "zigzag"}, "unknown traverser 'zigzag'")):
        with pytest.raises(RuntimeError, match=message):
            graph_instance(make_instance, **table)


def test_constraints_and_queue_requires(make_instance):
    inst = make_instance(config="""
[sched]
plugin = "sched-graph"
[sched-graph]
match-policy = "lonode"
[exec]
backend = "sim"
sim-duration = 100
[[resource.config]]
hosts = "node[0-1]"
cores = "0-3"
properties = ["batch"]
[[resource.config]]
hosts = "node[2-3]"
cores = "0-3"
properties = ["debug"]
[queues.batch]
requires = ["batch"]
[queues.debug]
requires = ["debug"]
[policy.jobspec.defaults.system]
queue = "batch"
""")
    h = strato.Handle(inst.uri)
    d = inst.strato("submit", "-q", "debug", "true", check=True).stdout.strip()
    b = inst.strato("submit", "true", check=True).stdout.strip()
    r = inst.strato("submit", "-q", "debug", "--requires=host:node3", "true",
                    check=True).stdout.strip()
    assert job.info(h, d)["nodelist"] == "node2"
    assert job.info(h, b)["nodelist"] == "node0"
    assert job.info(h, r)["nodelist"] == "node3"
    res = inst.strato("submit", "-q", "debug", "--requires=host:node0", "true")
    assert res.returncode == 1 and "unsatisfiable" in res.stderr


def test_more_jobs_than_queue_depth_all_start(make_instance):
    """A cycle looks at queue-depth jobs; when it made progress, the next cycle
    follows by itself (it used to wait for a job to end, so 40 long jobs on 64
    free cores left 8 pending for as long as the first 32 ran)."""
    inst = graph_instance(make_instance, queue_depth=4,
                          extra='[[resource.config]]\nhosts = "node[4-15]"\ncores = "0-3"\n')
    h = strato.Handle(inst.uri)
    ids = job.submit_many(h, spec("true", run=1000.0), 40)
    for jobid in ids:
        job.event_wait(h, jobid, "start", timeout=10)
    assert {job.info(h, j)["state"] for j in ids} == {"RUN"}
    job.cancel(h, ids)
    job.wait_all(h, ids)
