"""The Python API: sync and asyncio handles, job verbs, KVS access."""

from __future__ import annotations

import asyncio

import pytest

import strato
from strato import job, kvs
from strato.core.errors import RPCError


def test_sync_submit_wait_events_list(instance):
    h = strato.Handle(instance.uri)
    js = strato.JobspecV1.from_command(["sh", "-c", "echo hi"], num_tasks=1)
    jobid = job.submit(h, js)
    res = job.wait(h, jobid)
    assert res.success and res.result == "COMPLETED" and res.returncode == 0
    entries = list(job.event_watch(h, jobid, output=True))
    names = [m["entry"]["name"] for m in entries if m["log"] == "eventlog"]
    assert names[0] == "submit" and names[-1] == "clean"
    data = [m["entry"]["context"]["data"] for m in entries
            if m["log"] == "output" and m["entry"]["name"] == "data"]
    assert data == ["hi\n"]
    recs = job.list_jobs(h, states=job.STATES["INACTIVE"])
    assert [r["id"] for r in recs] == [jobid]


def test_many_jobs_one_stream(instance):
    h = strato.Handle(instance.uri)
    js = strato.JobspecV1.from_command(["true"])
    ids = job.submit_many(h, js, 50)
    assert len(set(ids)) == 50 and ids == sorted(ids)
    results = job.wait_all(h, ids)
    assert sorted(r.id for r in results) == ids
    assert all(r.success for r in results)


def test_cancel_and_urgency(instance):
    h = strato.Handle(instance.uri)
    js = strato.JobspecV1.from_command(["sleep", "100"])
    held = job.submit(h, js, urgency=0)
    h.rpc("queue.control", {"action": "stop"})
    assert job.urgency(h, held, 5) == 0
    assert job.info(h, held)["priority"] == 5
    job.urgency(h, held, 0)
    h.rpc("queue.control", {"action": "start"})
    assert job.info(h, held)["state"] == "SCHED"
    job.cancel(h, held, "no longer needed")
    res = job.wait(h, held)
    assert res.result == "CANCELED" and res.exception["note"] == "no longer needed"
    with pytest.raises(RPCError, match="inactive"):
        job.cancel(h, held)
    with pytest.raises(RPCError, match="unknown job id"):
        job.wait(h, 12345)


def test_kvs_api(instance):
    h = strato.Handle(instance.uri)
    kvs.commit(h, [("put", "x.y", {"a": 1}), ("put", "x.z", "s")])
    assert kvs.get(h, "x.y") == {"a": 1}
    assert kvs.ls(h, "x") == {"y": False, "z": False}
    with pytest.raises(RPCError):
        kvs.commit(h, [("put", "ok.key", 1), ("bogus", "x", 1)])
    with pytest.raises(RPCError, match="no such key"):
        kvs.get(h, "ok.key")  # the failed commit changed nothing
    stream = kvs.watch(h, "w.k")
    kvs.put(h, "w.k", 1)
    assert next(stream) == {"op": "put", "value": 1}
    kvs.put(h, "w.k", 2)
    assert next(stream) == {"op": "put", "value": 2}
    stream.close()
    assert kvs.get(h, "w.k") == 2  # the handle still works after cancelling the stream


def test_async_handle(instance):
    async def main():
        async with strato.AsyncHandle(instance.uri) as h:
            js = strato.JobspecV1.from_command(["true"])
            ids = await asyncio.gather(*(job.submit_async(h, js) for _ in range(10)))
            results = await asyncio.gather(*(job.wait_async(h, i) for i in ids))
            names = [m["entry"]["name"] async for m in job.event_watch_async(h, ids[0])]
            return results, names

    results, names = asyncio.run(main())
    assert all(r.success for r in results)
    assert names[-1] == "clean"


def test_handle_without_uri_fails_clearly(monkeypatch):
    from strato.core.errors import NoInstanceError

    monkeypatch.delenv("STRATO_URI", raising=False)
    with pytest.raises(NoInstanceError, match="strato start"):
        strato.Handle()


def test_job_list_is_fluxs_name(instance):
    h = strato.Handle(instance.uri)
    jobid = job.submit(h, strato.JobspecV1.from_command(["true"]), urgency=0)
    assert [r["id"] for r in job.list(h)] == [jobid]


def test_async_handle_notices_a_dead_broker(make_instance):
    from strato.core.errors import NoInstanceError

    inst = make_instance()

    async def main():
        async with strato.AsyncHandle(inst.uri) as h:
            js = strato.JobspecV1.from_command(["sleep", "300"])
            js.setattr("system.exec.test.run_duration", 300)  # simulated: no orphan left
            jobid = await job.submit_async(h, js)
            inst.proc.kill()  # the broker dies without answering
            with pytest.raises(NoInstanceError):
                await asyncio.wait_for(job.wait_async(h, jobid), 30)

    asyncio.run(main())


def test_a_handle_waits_with_a_timeout_on_a_descriptor_past_1024(instance):
    """A workflow process may hold many files: a handle's wait works whatever its fd."""
    import os

    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        with strato.Handle(instance.uri) as h:
            assert h._sock.fileno() > 1024
            assert h.recv(h.send("broker.ping", {"x": 1}), timeout=30) == ({"x": 1}, None, False)
    finally:
        for fd in held:
            os.close(fd)
