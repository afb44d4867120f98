"""The core's services behind protocols: module list/load/reload, the shell host
process, a scheduler or shell host that answers garbage, rank addressing."""

from __future__ import annotations

import json
import os
import signal
import textwrap
import time

import pytest

import strato
from strato import job
from strato import module as modapi
from strato.core import proto
from strato.core.errors import RPCError
from strato.handle import split_frames

SIM = """
[exec]
backend = "sim"
[[resource.config]]
hosts = "node[0-7]"
cores = "0-3"
"""


def states(inst) -> dict[str, int]:
    recs = json.loads(inst.strato("jobs", "-a", "--json", check=True).stdout)["jobs"]
    out: dict[str, int] = {}
    for r in recs:
        out[r["state"]] = out.get(r["state"], 0) + 1
    return out


def allocated(inst) -> list[str]:
    return inst.strato("resource", "list", check=True).stdout.splitlines()[2].split()


def test_module_list_shows_services_and_the_shell_host_process(instance):
    out = instance.strato("module", "list", check=True).stdout
    names = [line.split()[0] for line in out.splitlines()[1:-1]]
    assert names == ["kvs", "job-manager", "sched", "exec", "shell-host"]
    mods = {m["name"]: m for m in modapi.list_modules(instance.handle())["modules"]}
    assert mods["sched"]["module"] == "sched-simple" and mods["sched"]["state"] == "running"
    host = mods["shell-host"]
    pid = int(host["where"].split()[1])
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        assert b"shell-host" in f.read().split(b"\0")
    assert host["memory"] > 0
    # tasks are children of the shell host, not of the broker
    res = instance.strato("run", "sh", "-c", "echo $PPID", check=True)
    assert int(res.stdout) == pid


def test_reload_keeps_running_jobs_and_the_queue(make_instance):
    inst = make_instance(config=SIM)
    running = inst.strato("submit", "--cc=1-8", "-N1",
                          "--setattr=system.exec.test.run_duration=300", "true",
                          check=True).stdout.split()
    inst.strato("submit", "--cc=1-20", "-N1", "true", check=True)
    before = allocated(inst)
    assert before[:2] == ["allocated", "8"]
    res = inst.strato("module", "reload", "sched", check=True)
    assert res.stdout.startswith("reloaded sched-simple")
    assert allocated(inst) == before  # still held: nothing new fits on them
    assert states(inst) == {"RUN": 8, "SCHED": 20}
    res = inst.strato("module", "load", "sched-graph", "queue-policy=easy", check=True)
    assert res.stdout.startswith("loaded sched-graph")
    assert allocated(inst) == before
    mods = {m["name"]: m for m in modapi.list_modules(inst.handle())["modules"]}
    assert mods["sched"]["module"] == "sched-graph" and mods["sched"]["pending"] == 20
    inst.strato("cancel", *running, check=True)
    inst.strato("queue", "drain", check=True)  # the 20 run once the 8 free their nodes
    assert states(inst) == {"INACTIVE": 28}
    recs = json.loads(inst.strato("jobs", "-a", "--json", check=True).stdout)["jobs"]
    assert sorted(r["result"] for r in recs) == ["CANCELED"] * 8 + ["COMPLETED"] * 20


def test_reload_to_a_bad_config_keeps_the_old_scheduler(make_instance):
    inst = make_instance(config=SIM)
    jobid = inst.strato("submit", "--setattr=system.exec.test.run_duration=100", "-N1",
                        "true", check=True).stdout.strip()
    for args, message in [
        (("load", "sched-grpah"), "no such module 'sched-grpah'"),
        (("load", "sched-graph", "match-policy=nope"), "unknown match-policy 'nope'"),
        (("reload", "sched", "bogus"), "invalid override"),
        (("reload", "kvs"), "cannot be reloaded"),
        (("remove", "exec"), "cannot be removed"),
    ]:
        res = inst.strato("module", *args)
        assert res.returncode != 0
        assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    mods = {m["name"]: m for m in modapi.list_modules(inst.handle())["modules"]}
    assert mods["sched"]["module"] == "sched-simple"
    assert allocated(inst)[:2] == ["allocated", "1"]
    inst.strato("run", "-N1", "true", check=True)  # the old scheduler still schedules
    inst.strato("cancel", jobid, check=True)


def test_remove_then_load_a_scheduler(make_instance):
    inst = make_instance(config=SIM)
    inst.strato("module", "remove", "sched", check=True)
    jobid = inst.strato("submit", "true", check=True).stdout.strip()
    assert states(inst) == {"SCHED": 1}
    res = inst.strato("resource", "list")
    assert res.returncode != 0 and "no scheduler is loaded" in res.stderr
    inst.strato("module", "load", "sched-simple", check=True)
    inst.strato("job", "wait", jobid, check=True)


BAD_SCHED = '''
from strato.core.hookspecs import hookimpl
from strato.core.resource import make_R
from strato.core.schedutil import SchedulePass
from strato.plugins.sched_simple import SimpleScheduler


class Liar(SimpleScheduler):
    """Gives every job core 0 of node 0, whatever it asked for and whoever holds it."""

    def schedule(self, pending):
        node = self.nodes[0].node
        out = [(j, make_R([(0, node.hostname, [0], [])])) for j in pending]
        return SchedulePass(out, [], {})


@hookimpl
def sched_register_schedulers(register):
    register("liar", Liar)
'''


def test_a_scheduler_that_answers_garbage_loses_no_job(make_instance, tmp_path):
    (tmp_path / "liar.py").write_text(textwrap.dedent(BAD_SCHED))
    inst = make_instance(config=SIM + f'[plugins]\nsearchpath = ["{tmp_path}"]\n'
                         'load = ["liar"]\n[sched]\nplugin = "liar"\n')
    res = inst.strato("run", "-n2", "true")  # one core for two
    assert res.returncode != 0
    assert "scheduler returned invalid R: fewer cores or gpus than the job asked for" \
        in res.stderr
    first = inst.strato("submit", "--setattr=system.exec.test.run_duration=100", "true",
                        check=True).stdout.strip()
    res = inst.strato("run", "true")  # core 0 of node 0 is held by the first job
    assert "scheduler returned invalid R: resources on rank 0 are held by another job" \
        in res.stderr
    assert states(inst) == {"RUN": 1, "INACTIVE": 2}
    inst.strato("cancel", first, check=True)
    inst.strato("job", "wait", first)
    inst.strato("run", "true", check=True)  # a well-formed answer still runs


FLAKY_FREE = '''
from strato.core.hookspecs import hookimpl
from strato.plugins.sched_simple import SimpleScheduler


class FlakyFree(SimpleScheduler):
    """sched-simple whose first free raises."""

    failed = False

    def free(self, jobid, R, final):
        if not self.failed:
            self.failed = True
            raise RuntimeError("lost the ledger")
        super().free(jobid, R, final)


@hookimpl
def sched_register_schedulers(register):
    register("flakyfree", FlakyFree)
'''


def test_a_scheduler_bug_on_one_job_does_not_strand_the_others(make_instance, tmp_path):
    (tmp_path / "flakyfree.py").write_text(textwrap.dedent(FLAKY_FREE))
    inst = make_instance(config=SIM + f'[plugins]\nsearchpath = ["{tmp_path}"]\n'
                         'load = ["flakyfree"]\n[sched]\nplugin = "flakyfree"\n')
    inst.strato("submit", "--cc=1-4", "--wait", "true", check=True)
    assert states(inst) == {"INACTIVE": 4}


def test_tasks_do_not_inherit_the_shell_host_link(instance):
    res = instance.strato("run", "sh", "-c", "test -e /proc/$$/fd/3 && echo leaked || echo clean",
                          check=True)
    assert res.stdout == "clean\n"


def test_a_dead_shell_host_ends_its_jobs_and_is_restarted(instance):
    jobid = instance.strato("submit", "sleep", "300", check=True).stdout.strip()
    instance.strato("job", "wait-event", "-t", "20", jobid, "start", check=True)
    mods = {m["name"]: m for m in modapi.list_modules(instance.handle())["modules"]}
    os.kill(int(mods["shell-host"]["where"].split()[1]), signal.SIGKILL)
    res = instance.strato("job", "wait", jobid)
    assert res.returncode != 0
    info = job.info(instance.handle(), jobid)
    assert info["exception"]["type"] == "exec"
    assert "the shell host exited (killed by signal 9)" in info["exception"]["note"]
    assert instance.strato("run", "echo", "again", check=True).stdout == "again\n"
    assert "free" in instance.strato("resource", "list", check=True).stdout


def test_garbage_to_the_exec_protocol_is_refused(instance):
    h = instance.handle()
    with pytest.raises(RPCError, match="not this node's shell host"):
        h.rpc("exec.host-hello", {"rank": 0, "pid": 1})
    with pytest.raises(RPCError, match="needs a list of events"):
        h.rpc("exec.host-batch", {"events": "nope"})
    with pytest.raises(RPCError, match="the body of exec.host-batch must be a mapping"):
        h.rpc("exec.host-batch", [1, 2])  # refused by the broker before exec sees it
    h.rpc("exec.host-batch", {"events": [{"id": 12, "name": "finish"}, "junk", 7],
                              "ops": [["append", "x", 1], "junk"], "seq": 5})
    assert instance.strato("run", "true").returncode == 0


def test_requests_are_addressed_by_rank(instance):
    h = instance.handle()
    assert h.rpc("broker.ping", {"n": 0}, nodeid=0) == {"n": 0}
    assert h.rpc("broker.ping", {"n": 1}, nodeid=proto.NODEID_ANY) == {"n": 1}
    with pytest.raises(RPCError, match=r"no route to rank 3 \(instance size is 1\)"):
        h.rpc("broker.ping", None, nodeid=3)
    with pytest.raises(RPCError, match="rank 0 has no upstream broker"):
        h.rpc("broker.ping", None, nodeid=proto.NODEID_UPSTREAM)
    info = h.rpc("broker.info")
    assert (info["rank"], info["size"]) == (0, 1)


def _next_request(provider: strato.Handle) -> list:
    """The next raw message a client that provides a service is sent."""
    buf = bytearray()
    while True:
        buf += provider._sock.recv(1 << 16)
        frames = split_frames(buf)
        if frames:
            return proto.decode(frames[0])


def test_a_provider_that_disconnects_fails_its_requests_and_frees_its_name(instance):
    provider = strato.Handle(instance.uri)
    provider.rpc("service.add", {"service": "echo"})
    caller = instance.handle()
    tag = caller.send("echo.hello", {"x": 1})
    assert _next_request(provider)[1] == "echo.hello"
    provider.close()  # never answers
    body, err, more = caller.recv(tag, timeout=30)
    assert (err, body, more) == ("service echo went away", "EHOSTUNREACH", False)
    again = instance.handle()
    again.rpc("service.add", {"service": "echo"})  # the name is free again


def test_a_client_that_disconnects_drops_its_subscriptions(instance):
    watcher = strato.Handle(instance.uri)
    events = watcher.rpc_stream("event.subscribe", {"prefix": "module."})
    assert next(events)["topic"] == "event.subscribed"
    h = instance.handle()
    before = h.rpc("broker.info")
    watcher.close()
    deadline = time.monotonic() + 30
    while (after := h.rpc("broker.info"))["clients"] == before["clients"]:
        assert time.monotonic() < deadline, "the broker never saw the client go"
    assert after["clients"] == before["clients"] - 1
    assert after["streams"] == before["streams"] - 1


def test_a_client_provides_a_service_and_events_carry_a_sequence(instance):
    provider = strato.Handle(instance.uri)
    provider.rpc("service.add", {"service": "echo"})
    with pytest.raises(RPCError, match="already provided"):
        instance.handle().rpc("service.add", {"service": "echo"})
    caller = instance.handle()
    tag = caller.send("echo.hello", {"x": 1})
    msg = _next_request(provider)
    assert msg[0] == proto.REQ and msg[1] == "echo.hello" and msg[3] == {"x": 1}
    provider._write(proto.response(msg[2], {"echoed": msg[3]}))
    assert caller.recv(tag) == ({"echoed": {"x": 1}}, None, False)
    events = caller.rpc_stream("event.subscribe", {"prefix": "module."})
    first = next(events)
    assert first["topic"] == "event.subscribed"
    instance.strato("module", "reload", "sched", check=True)
    ev = next(events)
    assert ev["topic"] == "module.loaded" and ev["body"]["name"] == "sched-simple"
    assert ev["seq"] > first["seq"]
