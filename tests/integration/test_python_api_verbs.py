"""The verbs the CLI is built on, called from Python against a real instance:
strato.queue, strato.resource, strato.instance, and strato.job's control, event and
submission variants. Bad input gets the documented exception with a one-line message.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

import strato
from strato import job, queue, resource
from strato.core import ids
from strato.core.errors import RPCError, StratoError


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert text and "\n" not in text
    return text


def test_queue_verbs(instance):
    h = instance.handle()
    st = queue.status(h)
    assert [q["name"] for q in st["queues"]] == [""]
    assert st["queues"][0]["enabled"] and st["queues"][0]["started"]
    queue.stop(h, reason="maintenance")
    queue.disable(h, reason="closed today")
    q = queue.status(h)["queues"][0]
    assert (q["started"], q["stop_reason"]) == (False, "maintenance")
    assert (q["enabled"], q["disable_reason"]) == (False, "closed today")
    with pytest.raises(RPCError, match="closed today"):
        job.submit(h, strato.JobspecV1.from_command(["true"]))
    queue.enable(h)
    held = job.submit(h, strato.JobspecV1.from_command(["true"]))
    assert queue.status(h)["queues"][0]["counts"] == {"SCHED": 1}
    queue.start(h)
    queue.drain(h)  # returns once the job has ended
    assert job.wait(h, held).success
    queue.idle(h)
    for call in (lambda: queue.status(h, "nope"), lambda: queue.stop(h, "nope"),
                 lambda: queue.drain(h, "nope")):
        with pytest.raises(RPCError) as exc:
            call()
        assert one_line(exc) == "queue 'nope' does not exist"


def test_resource_verbs(instance):
    h = instance.handle()
    total = resource.info(h)
    assert total["nodes"] == 1 and total["cores"] >= 1 and total["gpus"] >= 0
    assert resource.status(h)["free"]["ncores"] == total["cores"]
    assert "R_lite" in resource.R(h)["execution"]
    assert resource.drain(h, "0", "bad fan") == "0"
    st = resource.status(h)
    assert st["drained"]["0"]["reason"] == "bad fan" and st["free"]["nnodes"] == 0
    assert resource.undrain(h, "0") == "0"
    with pytest.raises(RPCError) as exc:
        resource.undrain(h, "0")
    assert one_line(exc) == "rank 0 is not drained"
    with pytest.raises(RPCError) as exc:
        resource.drain(h, "5")
    assert "invalid rank 5" in one_line(exc)


def test_instance_verbs(instance):
    # (the fixture is named `instance`: the module is reached as strato.instance)
    h = instance.handle()
    assert strato.instance.ping(h, seq=3) > 0
    facts = strato.instance.info(h)
    assert facts["uri"] == instance.uri and facts["uptime"] >= 0 and facts["jobs"] == 0
    hooks = {p["name"]: p["hooks"] for p in strato.instance.plugins(h)}
    assert hooks and all(isinstance(names, list) for names in hooks.values())


def test_job_control_and_events(instance):
    h = instance.handle()
    sleeper = job.submit(h, strato.JobspecV1.from_command(["sleep", "100"]))
    start = job.event_wait(h, sleeper, "start", timeout=60)
    assert start["name"] == "start"
    urgency = job.info(h, sleeper)["urgency"]
    submit = job.event_wait(h, sleeper, "submit", context={"urgency": urgency})
    assert submit["name"] == "submit"
    with pytest.raises(TimeoutError):
        job.event_wait(h, sleeper, "no-such-event", timeout=0.2)
    data = job.info(h, sleeper)
    assert data["R"] is not None and data["jobspec"]["version"] == 1
    assert [e["name"] for e in job.eventlog(h, sleeper)][:1] == ["submit"]
    with pytest.raises(RPCError) as exc:
        job.kill(h, sleeper, 99)
    assert one_line(exc) == "invalid signal 99"
    job.kill(h, sleeper, signal.SIGKILL)
    assert job.wait(h, sleeper).returncode == 128 + signal.SIGKILL
    with pytest.raises(StratoError, match="never occurred"):
        job.event_wait(h, sleeper, "no-such-event")
    with pytest.raises(StratoError) as exc:
        job.uri(h, sleeper)
    assert one_line(exc) == f"job {ids.f58(sleeper)} is not a strato instance (it has no URI)"

    # severity 0 ends a job; several ids go in one request, and an unknown one is
    # reported while the others are still acted on
    a, b = job.submit_many(h, strato.JobspecV1.from_command(["true"]), 2, urgency=0)
    job.raise_exception(h, a, "test", severity=0, note="by hand")
    assert job.wait(h, a).exception["type"] == "test"
    with pytest.raises(RPCError) as exc:
        job.cancel(h, [b, 12345], "gone")
    assert "unknown job id" in one_line(exc)
    assert job.wait(h, b).exception["note"] == "gone"

    for call in (lambda: job.info(h, 12345), lambda: job.eventlog(h, 12345),
                 lambda: job.event_wait(h, 12345, "start"), lambda: job.kill(h, 12345)):
        with pytest.raises(RPCError) as exc:
            call()
        assert "unknown job id" in one_line(exc)
    with pytest.raises(ValueError, match="unknown eventlog"):
        job.eventlog(h, a, "nope")
    assert strato.instance.ping(h) > 0  # the handle survives every stream left early


def test_submission_variants(instance):
    h = instance.handle()
    echo = strato.JobspecV1.from_command(["sh", "-c", "echo hi"])
    jobid, stream = job.submit_and_watch(h, echo, output=True)
    msgs = list(stream)
    assert [m["entry"]["context"]["data"] for m in msgs
            if m["log"] == "output" and m["entry"]["name"] == "data"] == ["hi\n"]
    assert msgs[-1]["entry"]["name"] == "clean"
    assert [e["context"]["data"] for e in job.eventlog(h, jobid, "output")
            if e["name"] == "data"] == ["hi\n"]

    t0 = time.time()
    true = strato.JobspecV1.from_command(["true"])
    copies = job.submit_many(h, true, 3, cc=[1, 2, 3])
    mixed = job.submit_list(h, [true, echo], cc=[7, 8])
    batches = list(job.wait_stream(h, copies + mixed))
    assert sorted(r.id for b in batches for r in b) == sorted(copies + mixed)
    recs = job.list_jobs(h, states=job.STATES["INACTIVE"], userid=os.getuid(), since=t0)
    assert {r["id"]: r.get("cc") for r in recs} == dict(zip(copies + mixed, [1, 2, 3, 7, 8],
                                                            strict=True))
    assert job.list_jobs(h, states=job.STATES["INACTIVE"], userid=os.getuid() + 1) == []
    with pytest.raises(RPCError) as exc:
        list(job.wait_stream(h, [12345]))
    assert "unknown job id" in one_line(exc)


def test_a_streaming_wait_gathers_results_while_jobs_keep_ending(sim_instance):
    """20 simulated jobs ending 1 ms apart: one message per job would wake the
    waiter 20 times; the broker sends what ended within WAIT_BATCH_INTERVAL (5 ms)
    of its last message together, so a handful of batches carry all 20."""
    h = sim_instance.handle()
    specs = []
    for i in range(1, 21):
        js = strato.JobspecV1.from_command(["true"])
        js.setattr("system.exec.test.run_duration", i * 0.001)
        specs.append(js)
    ids_ = job.submit_list(h, specs)
    batches = list(job.wait_stream(h, ids_))
    assert sorted(r.id for b in batches for r in b) == sorted(ids_)
    assert all(r.result == "COMPLETED" for b in batches for r in b)
    assert len(batches) <= 8, [len(b) for b in batches]
