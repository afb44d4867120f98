"""Virtual nodes, simulated exec, resource drain, and restart from a statedir."""

from __future__ import annotations

import json

import strato
from strato import job

BIG = """
[[resource.config]]
hosts = "node[0-1023]"
cores = "0-31"
gpus = "0-3"
properties = ["amd64"]
"""


def test_virtual_nodes_and_sim_exec(make_instance):
    inst = make_instance(config=BIG + '[exec]\nbackend = "sim"\n')
    assert inst.strato("resource", "info", check=True).stdout.strip() == \
        "1024 Nodes, 32768 Cores, 4096 GPUs"
    lst = inst.strato("resource", "list", check=True).stdout.splitlines()
    assert lst[1].split() == ["free", "1024", "32768", "4096", "node[0-1023]"]
    res = inst.strato("submit", "--cc=1-200", "--wait", "--quiet", "-N2", "-n4", "-g1",
                      "true", check=True)
    assert res.stdout == ""
    recs = json.loads(inst.strato("jobs", "-a", "--json", check=True).stdout)["jobs"]
    assert len(recs) == 200 and all(r["result"] == "COMPLETED" for r in recs)
    assert all(r["nnodes"] == 2 for r in recs)


def test_per_job_simulated_duration(make_instance):
    inst = make_instance()
    res = inst.strato("submit", "--setattr=system.exec.test.run_duration=30", "sleep", "1000",
                      check=True)
    jobid = res.stdout.strip()
    inst.strato("job", "wait-event", "-t", "10", jobid, "start", check=True)
    out = inst.strato("jobs", "-n", "-o", "{state}", check=True).stdout.split()
    assert out == ["RUN"]
    inst.strato("cancel", jobid, check=True)
    assert inst.strato("job", "wait", jobid).returncode == 1
    res = inst.strato("run", "--setattr=system.exec.test.run_duration=0.01", "no-such-cmd")
    assert res.returncode == 0  # nothing is executed in simulation


def test_exclusive_nodes_and_drain(sim_instance):
    inst = sim_instance
    inst.strato("resource", "drain", "node[0-13]", "broken", "fans", check=True)
    drained = inst.strato("resource", "drain", check=True).stdout
    assert "broken fans" in drained
    lst = inst.strato("resource", "list", check=True).stdout.splitlines()
    assert lst[1].split() == ["free", "2", "8", "0", "node[14-15]"]
    assert lst[3].split() == ["down", "14", "56", "0", "node[0-13]"]
    h = strato.Handle(inst.uri)
    js = strato.JobspecV1.from_command(["true"], num_tasks=2, num_nodes=2, exclusive=True)
    js.setattr("system.exec.test.run_duration", 1000)
    jobid = job.submit(h, js)
    rec = job.info(h, jobid)
    assert rec["state"] == "RUN"
    assert rec["R"]["execution"]["nodelist"] == ["node[14-15]"]
    assert rec["R"]["execution"]["R_lite"][0]["children"] == {"core": "0-3"}
    second = job.submit(h, js)
    assert job.info(h, second)["state"] == "SCHED"  # no free node left
    inst.strato("resource", "undrain", "0-1", check=True)
    job.wait_all(h, [])  # a no-op round trip so the schedule ran
    assert job.info(h, second)["R"]["execution"]["nodelist"] == ["node[0-1]"]
    res = inst.strato("resource", "drain", "node99")
    assert res.returncode == 1 and "unknown host node99" in res.stderr
    res = inst.strato("resource", "undrain", "15")
    assert res.returncode == 1 and "not drained" in res.stderr


def test_restart_recovers_the_queue(make_instance, tmp_path):
    state = tmp_path / "state"
    first = make_instance(statedir=state, sub="a")
    done = first.strato("submit", "--wait", "echo", "done", check=True).stdout.strip()
    held = first.strato("submit", "--urgency=hold", "true", check=True).stdout.strip()
    running = first.strato("submit", "sleep", "300", check=True).stdout.strip()
    first.strato("job", "wait-event", "-t", "20", running, "start", check=True)
    first.strato("kvs", "put", "site.note=hello", check=True)
    assert first.stop() == 0

    second = make_instance(statedir=state, sub="b")
    out = second.strato("jobs", "-a", "-n", "-o", "{id.f58} {state} {result}",
                        check=True).stdout
    rows = dict(line.split(" ", 1) for line in out.splitlines())
    assert rows[done] == "INACTIVE COMPLETED"
    assert rows[held] == "SCHED "
    # with a statedir, what runs keeps running across the stop (tests/integration/
    # test_restart.py has the details)
    assert rows[running] == "RUN "
    second.strato("cancel", running, check=True)
    assert second.strato("kvs", "get", "site.note", check=True).stdout == "hello\n"
    assert second.strato("job", "attach", done, check=True).stdout == "done\n"
    second.strato("job", "urgency", held, "16", check=True)
    second.strato("job", "wait", held, check=True)
    newer = second.strato("submit", "true", check=True).stdout.strip()
    assert strato.job.id_parse(newer) > strato.job.id_parse(running)


def test_priority_order_and_expedite(make_instance):
    inst = make_instance(config='[exec]\nbackend = "sim"\nsim-duration = "0.01s"\n'
                                '[[resource.config]]\nhosts = "solo"\ncores = "0"\n')
    h = strato.Handle(inst.uri)
    h.rpc("queue.control", {"action": "stop"})
    js = strato.JobspecV1.from_command(["true"])
    a, b, c, d = (job.submit(h, js, urgency=u) for u in (16, 16, 16, 20))
    job.urgency(h, c, 31)
    h.rpc("queue.control", {"action": "start"})
    job.wait_all(h, [a, b, c, d])
    started = sorted((job.info(h, i)["t_run"], i) for i in (a, b, c, d))
    assert [i for _, i in started] == [c, d, a, b]


def test_urgency_change_in_depend_survives_restart(make_instance, tmp_path):
    state = tmp_path / "state"
    first = make_instance(statedir=state, sub="a")
    a = first.strato("submit", "sleep", "300", check=True).stdout.strip()
    first.strato("job", "wait-event", "-t", "20", a, "start", check=True)
    b = first.strato("submit", f"--dependency=afterok:{a}", "true", check=True).stdout.strip()
    first.strato("job", "urgency", b, "20", check=True)
    assert "DEPEND" in first.strato("jobs", "-o", "{state}", check=True).stdout
    first.proc.kill()  # a crash: a keeps running, b keeps waiting for it
    first.proc.wait()
    first.stop()
    second = make_instance(statedir=state, sub="b")
    assert "DEPEND" in second.strato("jobs", "-o", "{state}", check=True).stdout
    second.strato("cancel", a, check=True)
    res = second.strato("job", "wait", b)
    assert res.returncode == 1  # a was cancelled: b can never run
    out = second.strato("job", "eventlog", b, check=True).stdout
    assert "alloc" not in out and "dependency" in out


def test_nodes_of_a_job_without_n_nodes_come_from_its_R(sim_instance):
    """submit -n16 -c2 (no -N) on 4-core nodes spans 8 nodes: NNODES says 8, as its
    NODELIST and RANKS do (it said 1: the rank idset "0-7" was counted as one entry)."""
    inst = sim_instance
    spread = inst.strato("submit", "-n16", "-c2", "--wait", "true", check=True).stdout.strip()
    odd = inst.strato("submit", "-n3", "-c3", "--wait", "true", check=True).stdout.strip()
    out = inst.strato("jobs", "-a", "-n", "-o", "{id} {nnodes} {nodelist} {ranks}",
                      check=True).stdout.splitlines()
    assert sorted(out) == sorted([f"{spread} 8 node[0-7] 0-7", f"{odd} 3 node[0-2] 0-2"])
