"""Load and crashes (issue 13, "Load"): many clients at once, a SIGKILL and restart in
the middle, and the checker of tests/bench/load_check.py comparing what every client
was told with what the instance recorded. Also the faults found on the way, each
on its own: an answer that left before its state was on disk, a handle that never
noticed its instance had been restarted, and a restarted instance that could issue
an id it had issued before."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import time
from pathlib import Path

import pytest

import strato
from strato import job
from strato.async_handle import AsyncHandle
from strato.core.errors import NoInstanceError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import load_check  # noqa: E402


def _ok(out: dict) -> None:
    report = out["report"]
    assert not report.failures, "\n".join(report.failures[:30])


def test_ten_clients_lose_and_duplicate_nothing(tmp_path):
    """10 clients (5 Python API, 5 CLI) x 250 simulated jobs of mixed shapes, some
    cancelled while pending or running: every id told exists once, nothing else does,
    every eventlog is complete, results and cancels agree, all resources are free."""
    out = load_check.run_load(tmp_path, nclients=10, njobs=250, timeout=300)
    _ok(out)
    c = out["report"].counts
    assert c["instance_jobs"] == c["told jobs"] == 2500
    assert c["cancels acknowledged"] > 0 and c["result CANCELED"] > 0
    assert c["wait results checked"] == 1250 and c["job status checked"] == 1250


def test_ten_clients_across_a_sigkill_and_restart(tmp_path):
    """The same with 10 x 200 jobs and the broker SIGKILLed once half of them are in,
    then started again on its statedir and rundir: clients reconnect and go on; a
    submit whose answer was lost left none or all of its jobs; the jobs that were
    running at the kill end (today with a ``restart`` exception), none is lost; and
    a clean restart afterwards shows exactly the same jobs and eventlogs."""
    out = load_check.run_load(tmp_path, nclients=10, njobs=200, restart="kill", timeout=300)
    _ok(out)
    assert out["reconnects"] > 0  # the clients did see the instance go
    c = out["report"].counts
    assert c["instance_jobs"] >= c["told jobs"] > 0


def test_ten_clients_across_a_clean_stop_and_restart(tmp_path):
    """The same with ``strato shutdown`` instead of the SIGKILL (10 x 120 jobs): a submit
    refused because the instance is shutting down leaves no job, what was pending
    runs after the restart, and nothing is lost or duplicated."""
    out = load_check.run_load(tmp_path, nclients=10, njobs=120, restart="stop", timeout=300)
    _ok(out)
    c = out["report"].counts
    assert c["instance_jobs"] >= c["told jobs"] > 0


def test_no_answer_before_the_state_is_on_disk(tmp_path):
    """A submit is answered only once its job is in the statedir. Another process holds
    the state database's write lock, so the broker cannot commit; the client must not
    get ids meanwhile (over ZeroMQ they came back at once, and a SIGKILL then lost
    jobs the client had been told about)."""
    inst = load_check.LoadInstance(tmp_path)
    inst.start()
    try:
        h = inst.handle()
        js = strato.JobspecV1.from_command(["true"], environment={})
        first = job.submit(h, js)
        job.wait(h, first)
        pid = inst.pid()
        db = sqlite3.connect(inst.statedir / "content.sqlite", isolation_level=None)
        _wait_saved(db, first, len(job.info(h, first)["eventlog"]))
        db.execute("BEGIN IMMEDIATE")  # the broker's next commit waits for this
        tag = h.send("job-manager.submit", {"jobspec": js.jobspec, "count": 3})
        try:
            told = h.recv(tag, timeout=1.0)[0]["ids"]
        except TimeoutError:
            told = []
        inst.kill(pid)  # while its commit still waits
        db.execute("ROLLBACK")
        db.close()
        h.close()
        assert told == [], "the ids came back before they were on disk"
        inst.start()
        with inst.handle() as h:
            kept = [r["id"] for r in job.list_jobs(h, states=job.STATES["INACTIVE"] | job.ACTIVE)]
        assert first in kept and set(told) <= set(kept)
    finally:
        inst.cleanup()


def test_no_cancel_acknowledged_before_it_is_on_disk(tmp_path):
    """The same for a cancel that arrives with a ping in one read: the ping's answer
    is written first in that turn, and the cancel's used to leave with it, before the
    commit, so after a SIGKILL the job the client was told was cancelled came back
    pending. Now the cancel is acknowledged only once its exception is on disk."""
    import socket

    from strato.core import proto

    inst = load_check.LoadInstance(tmp_path)
    inst.start()
    try:
        js = strato.JobspecV1.from_command(["true"], environment={})
        with inst.handle() as h:
            held = job.submit(h, js, urgency=0)
            n = len(job.info(h, held)["eventlog"])
        pid = inst.pid()
        db = sqlite3.connect(inst.statedir / "content.sqlite", isolation_level=None)
        _wait_saved(db, held, n)
        db.execute("BEGIN IMMEDIATE")  # the broker's next commit waits for this
        raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        raw.connect(str(inst.rundir / "local"))
        frames = b"".join(len(m).to_bytes(4, "little") + m for m in (
            proto.request("broker.ping", 1, None),
            proto.request("job-manager.cancel", 2, {"ids": [held]})))
        raw.sendall(frames)  # one write: the broker reads both in one turn
        raw.settimeout(1.0)
        got = b""
        try:
            while True:
                got += raw.recv(65536)
        except TimeoutError:
            pass
        tags = []
        while len(got) >= 4:
            size = int.from_bytes(got[:4], "little")
            tags.append(proto.decode(got[4:4 + size])[1])
            got = got[4 + size:]
        inst.kill(pid)  # while its commit still waits
        db.execute("ROLLBACK")
        db.close()
        raw.close()
        assert tags == [1], "the cancel was acknowledged before it was on disk"
        inst.start()
        with inst.handle() as h:
            assert job.info(h, held)["state"] == "SCHED"  # not cancelled, and not told so
    finally:
        inst.cleanup()


def _wait_saved(db: sqlite3.Connection, jobid: int, n: int) -> None:
    """Wait until `n` entries of the job's eventlog are in the state database (the
    whole list as last written plus the entries appended since)."""
    from strato.core import ids, proto

    key = ids.encode(jobid, "kvs") + ".eventlog"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        row = db.execute("SELECT value FROM kvs WHERE key = ?", (key,)).fetchone()
        appended = db.execute("SELECT count(*) FROM log WHERE key = ?", (key,)).fetchone()[0]
        if row is not None and len(proto.decode(row[0])) + appended >= n:
            return
        time.sleep(0.01)
    raise AssertionError(f"{key} never reached {n} entries on disk")


def test_a_handle_notices_its_instance_was_restarted(tmp_path):
    """A request in flight when the broker dies is lost; if a new broker is up at the
    same URI before the handle looks, the handle must still say so (over ZeroMQ it
    waited forever: the new broker answered pings but would never answer that
    request; a stream socket's end of file now says at once that its broker went)."""
    inst = load_check.LoadInstance(tmp_path)
    inst.start()
    try:
        h = inst.handle()
        js = strato.JobspecV1.from_command(["true"], environment={})
        js.setattr("system.exec.test.run_duration", 3600)
        long = job.submit(h, js)

        async def both_handles() -> None:
            tag = h.send("job-manager.wait", {"ids": [long]})
            async with AsyncHandle(inst.uri) as ah:
                waiting = asyncio.ensure_future(job.wait_async(ah, long))
                done, _ = await asyncio.wait([waiting], timeout=0.5)  # the request is out
                assert not done
                inst.kill()
                inst.start()
                with pytest.raises(NoInstanceError):
                    h.recv(tag, timeout=10)
                with pytest.raises(NoInstanceError):
                    await asyncio.wait_for(waiting, 10)

        asyncio.run(both_handles())
        h.close()
        with inst.handle() as fresh:  # a new handle works (the sim job runs on)
            assert job.info(fresh, long)["state"] == "RUN"
    finally:
        inst.cleanup()


def test_a_restart_never_reuses_a_job_id(tmp_path):
    """New ids stay above every recovered one even when the wall clock went back
    between two runs (here: the instance's epoch moves an hour later, which is what
    a clock an hour behind looks like). Before, new ids came out smaller than the old
    ones, so one could equal an old job's id and replace that job."""
    from strato.core import proto

    inst = load_check.LoadInstance(tmp_path)
    inst.statedir.mkdir()

    def set_epoch(ms_ago: int) -> None:
        db = sqlite3.connect(inst.statedir / "content.sqlite", isolation_level=None)
        db.execute("CREATE TABLE IF NOT EXISTS kvs (ns TEXT, key TEXT, value BLOB,"
                   " PRIMARY KEY (ns, key)) WITHOUT ROWID")
        db.execute("INSERT OR REPLACE INTO kvs VALUES ('primary', 'instance.fluid-epoch', ?)",
                   (proto.encode(time.time_ns() // 1_000_000 - ms_ago),))
        db.close()

    set_epoch(3_600_000)
    inst.start()
    try:
        js = strato.JobspecV1.from_command(["true"], environment={})
        with inst.handle() as h:
            old = job.submit_many(h, js, 3)
        inst.stop()
        set_epoch(1_000)
        inst.start()
        with inst.handle() as h:
            new = job.submit_many(h, js, 3)
            kept = {r["id"] for r in job.list_jobs(h, states=0x7F)}
        assert min(new) > max(old)
        assert kept == set(old) | set(new)
    finally:
        inst.cleanup()


def test_the_checker_sees_every_kind_of_broken_promise(tmp_path):
    """The checker is only worth its silence if it speaks: a real instance's record
    against a client record that is right (no failure), then wrong in each way."""
    inst = load_check.LoadInstance(tmp_path, statedir=False)
    inst.start()
    try:
        h = inst.handle()

        def spec(name: str, duration: float):
            js = strato.JobspecV1.from_command(["true"], environment={}, name=name)
            js.setattr("system.exec.test.run_duration", duration)
            return js

        b0 = job.submit_many(h, spec("c-b0", 0), 3)
        b1 = job.submit_many(h, spec("c-b1", 3600), 2)
        job.cancel(h, b1[0])
        job.wait(h, b0[0])
        ids = b0 + b1
        rec = load_check.ClientRecord("c", "api")
        rec.batches = {"c-b0": {"size": 3, "ids": b0, "resolved": None},
                       "c-b1": {"size": 2, "ids": b1, "resolved": None}}
        rec.cancels = [{"ids": [b1[0]], "outcome": "ok", "refused": [], "t_answer": time.time()}]
        job.cancel(h, b1[1])
        rec.results = {str(r.id): [r.result, r.status] for r in job.wait_all(h, ids)}

        def failures(mutate=None) -> str:
            r = load_check.ClientRecord(**json.loads(json.dumps(rec.__dict__)))
            if mutate:
                mutate(r)
            return "\n".join(load_check.check(h, [r]).failures)

        assert failures() == ""
        assert "the instance lost it" in failures(lambda r: r.batches["c-b0"]["ids"].append(7))
        assert "told to nobody" in failures(lambda r: r.batches.pop("c-b1"))
        assert "told to c-b0 and to c-b1" in failures(
            lambda r: r.batches["c-b1"]["ids"].append(b0[0]))
        assert "wait told" in failures(
            lambda r: r.results.__setitem__(str(b0[1]), ["FAILED", 256]))
        assert "no cancel exception" in failures(lambda r: r.cancels[0]["ids"].append(b0[2]))
        assert "cancel refused, yet" in failures(
            lambda r: r.cancels[0].update(outcome="refused", refused=[b1[0]]))
        assert "unknown submit of 3 left 0 jobs" not in failures(
            lambda r: r.batches["c-b0"].update(ids=None))  # none or all: all is fine
        assert "unknown submit of 4 left 3 jobs" in failures(
            lambda r: r.batches["c-b0"].update(ids=None, size=4))
    finally:
        inst.cleanup()


def _ev(*names, **ctx):
    return [{"timestamp": float(i), "name": n, **({"context": ctx[n]} if n in ctx else {})}
            for i, n in enumerate(names)]


@pytest.mark.parametrize("eventlog, record, expected", [
    (_ev("submit", "validate", "depend", "priority", "alloc", "start", "finish", "release",
         "free", "clean", finish={"status": 0}), ("COMPLETED", 0), ""),
    (_ev("submit", "validate", "depend", "priority", "alloc", "start", finish={"status": 0}),
     ("COMPLETED", 0), "does not end with its only clean"),
    (_ev("validate", "submit", "clean"), (None, None), "does not start with submit"),
    (_ev("submit", "validate", "depend", "priority", "alloc", "start", "clean"),
     ("COMPLETED", None), "allocated but not"),
    (_ev("submit", "validate", "depend", "priority", "alloc", "finish", "release", "free",
         "clean", finish={"status": 256}), ("COMPLETED", 256), "its eventlog says FAILED"),
    (_ev("submit", "validate", "depend", "priority", "alloc", "exception", "clean",
         exception={"type": "restart", "severity": 0, "note": ""}), ("FAILED", None),
     "not running at a kill"),
])
def test_the_checker_reads_an_eventlog_as_the_job_manager_does(eventlog, record, expected):
    report = load_check.Report()
    rec = {"state": "INACTIVE", "result": record[0], "waitstatus": record[1]}
    load_check.check_eventlog(1 << 24, eventlog, rec, report, kills=[(100.0, 101.0)])
    assert ("\n".join(report.failures) == "") if not expected else \
        expected in "\n".join(report.failures)
