"""strato.job.JobExecutor: jobs as concurrent.futures futures, against real instances.

Every wait below is on something the executor promises (a future's result, an event
callback having run, shutdown returning once the executor's jobs have ended), so
the tests need no sleeps.
"""

from __future__ import annotations

import concurrent.futures as cf
import gc
import threading

import pytest

import strato
from strato import job
from strato.core.errors import NoInstanceError, RPCError
from strato.executor import CANCEL_NOTE
from strato.job import JobExecutor, JobExecutorFuture

TIMEOUT = 60  # a bound on every wait, so a bug fails the test instead of hanging it


def spec(*argv: str, **kw) -> strato.JobspecV1:
    return strato.JobspecV1.from_command(list(argv), **kw)


def sim_spec(seconds: float) -> strato.JobspecV1:
    js = spec("sleep", str(seconds))
    js.setattr("system.exec.test.run_duration", seconds)
    return js


def test_success_and_failure_are_results(instance):
    with JobExecutor(uri=instance.uri) as ex:
        ok = ex.submit(spec("true"))
        bad = ex.submit({**spec("sh", "-c", "exit 3").jobspec})  # a dict works too
        assert isinstance(ok, JobExecutorFuture) and isinstance(ok, cf.Future)
        r = ok.result(TIMEOUT)
        assert (r.success, r.result, r.returncode, r.id) == (True, "COMPLETED", 0, ok.jobid())
        assert bad.exception(TIMEOUT) is None  # a failed job is data, not an exception
        r = bad.result()
        assert (r.success, r.result, r.returncode) == (False, "FAILED", 3)
        assert not ok.running() and not ok.cancelled()


def test_bad_jobspec_fails_only_its_own_future(sim_instance):
    """A submission the instance refuses sets the instance's reason on that future
    alone, whether it went in a request of its own or with others."""
    specs = [spec("true", str(i)).jobspec for i in range(20)]
    specs[7] = {"version": 1, "tasks": []}
    with JobExecutor(uri=sim_instance.uri) as ex:
        futs = [ex.submit(s) for s in specs]
        repeated = spec("true")
        same = [ex.submit(repeated) for _ in range(10)]
        hurry = ex.submit(repeated, urgency=99)
        exc = futs[7].exception(TIMEOUT)
        assert isinstance(exc, RPCError) and str(exc) == "resources: is required"
        with pytest.raises(RPCError, match="resources: is required"):
            futs[7].jobid()
        with pytest.raises(RPCError, match="urgency must be an integer from 0 to 31"):
            hurry.result(TIMEOUT)
        good = [f for i, f in enumerate(futs) if i != 7] + same
        ids = [f.jobid(TIMEOUT) for f in good]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)  # in submission order
        assert all(f.result(TIMEOUT).success for f in good)


def test_jobid_and_jobid_callbacks(sim_instance):
    with JobExecutor(sim_instance.handle()) as ex:
        got = []
        fut = ex.submit(spec("true")).add_jobid_callback(lambda f: got.append(f.jobid()))
        jobid = fut.jobid(TIMEOUT)
        assert isinstance(jobid, int) and job.id_parse(str(jobid)) == jobid
        fut.add_jobid_callback(lambda f: got.append(-f.jobid()))  # known: called at once
        assert got == [jobid, -jobid]
        assert fut.result(TIMEOUT).id == jobid


def test_event_callbacks_including_past_events(instance):
    names, starts, submits, late = [], [], [], []

    def on_start(fut, entry):
        starts.append(entry)
        # the job is past "submit": the callback gets it now, in this call
        fut.add_event_callback("submit", lambda f, e: submits.append(e))
        assert [e["name"] for e in submits] == ["submit"]

    with JobExecutor(uri=instance.uri) as ex:
        fut = ex.submit(spec("true"))
        for name in ("submit", "alloc", "start", "finish", "clean", "exception"):
            fut.add_event_callback(name, lambda f, e: names.append(e["name"]))
        fut.add_event_callback("start", on_start)
        r = fut.result(TIMEOUT)
        # every callback added before the future was done has had every entry
        assert names == ["submit", "alloc", "start", "finish", "clean"]
        assert len(starts) == 1 and starts[0]["timestamp"] > 0
        assert r.success
        # added once the future is done: the entries are fetched, the callback runs now
        fut.add_event_callback("finish", lambda f, e: late.append(e["context"]["status"]))
        assert late == [0]
        with pytest.raises(ValueError, match="unknown event 'started'"):
            fut.add_event_callback("started", print)


def test_exception_event_and_result_of_a_failed_start(sim_instance):
    js = spec("true")
    js.setattr("system.exec.test.run_duration", "bogus")  # exec raises an exception
    seen = []
    with JobExecutor(uri=sim_instance.uri) as ex:
        fut = ex.submit(js)
        fut.add_event_callback("exception", lambda f, e: seen.append(e["context"]["type"]))
        r = fut.result(TIMEOUT)
    assert seen == ["exec"]
    assert (r.success, r.result, r.exception["type"]) == (False, "FAILED", "exec")


def test_cancel_a_running_job(instance):
    started = threading.Event()
    names = []
    h = instance.handle()
    with JobExecutor(uri=instance.uri) as ex:
        fut = ex.submit(spec("sleep", "300"))
        fut.add_event_callback("start", lambda f, e: started.set())
        fut.add_event_callback("exception", lambda f, e: names.append(e["context"]["note"]))
        fut.add_event_callback("clean", lambda f, e: names.append("clean"))
        assert started.wait(TIMEOUT)
        assert fut.running()
        assert fut.cancel() and fut.cancelled() and fut.done()
        assert fut.cancel()  # again: still canceled
        with pytest.raises(cf.CancelledError):
            fut.result(TIMEOUT)
        done, _ = cf.wait([fut], timeout=TIMEOUT)  # concurrent.futures sees it canceled
        assert done == {fut}
        held = ex.submit(spec("true"), urgency=0)  # waits in the queue until canceled
        assert held.jobid(TIMEOUT) and held.cancel()
    # leaving the with block waited for both jobs to end; callbacks saw the end
    assert names == [CANCEL_NOTE, "clean"]
    for f in (fut, held):
        r = job.wait(h, f.jobid())
        assert (r.result, r.exception["note"]) == ("CANCELED", CANCEL_NOTE)


def test_a_thousand_jobs_through_one_executor(sim_instance):
    js = spec("true")
    with JobExecutor(uri=sim_instance.uri) as ex:
        futs = [ex.submit(js) for _ in range(1000)]
        results = [f.result() for f in cf.as_completed(futs, timeout=TIMEOUT)]
    assert len(results) == 1000 and all(r.success for r in results)
    ids = [f.jobid() for f in futs]
    assert ids == sorted(ids) and len(set(ids)) == 1000
    assert sorted(r.id for r in results) == ids
    h = sim_instance.handle()
    assert len(job.list_jobs(h, states=job.STATES["INACTIVE"])) == 1000


def test_shutdown_cancel_futures(sim_instance):
    """Every future not done is canceled: jobs not yet submitted never are, submitted
    ones (running or waiting: 64 cores for 200 jobs) are canceled in the instance."""
    ex = JobExecutor(uri=sim_instance.uri)
    quick = ex.submit(spec("true"))
    assert quick.result(TIMEOUT).success
    futs = [ex.submit(sim_spec(300)) for _ in range(200)]
    ex.shutdown(wait=True, cancel_futures=True)
    assert all(f.cancelled() for f in futs) and not quick.cancelled()
    submitted = []
    for f in futs:
        try:
            submitted.append(f.jobid(timeout=0))
        except cf.CancelledError:
            pass  # canceled before it was submitted
    h = sim_instance.handle()
    assert job.list_jobs(h) == []  # nothing of the executor is left active
    ended = job.list_jobs(h, states=job.STATES["INACTIVE"], results=["CANCELED"])
    assert sorted(r["id"] for r in ended) == sorted(submitted)
    with pytest.raises(RuntimeError, match="after shutdown"):
        ex.submit(spec("true"))


def test_two_executors_on_two_instances(make_instance):
    sim = '[exec]\nbackend = "sim"\n[[resource.config]]\nhosts = "n[0-3]"\ncores = "0-3"\n'
    a, b = make_instance(config=sim), make_instance(config=sim)
    with JobExecutor(uri=a.uri) as ea, JobExecutor(a.handle()) as ea2, \
            JobExecutor(uri=b.uri) as eb:
        fa = [ea.submit(spec("true")) for _ in range(50)]
        fa2 = [ea2.submit(spec("true")) for _ in range(10)]
        fb = [eb.submit(spec("true")) for _ in range(30)]
        done, not_done = cf.wait(fa + fa2 + fb, timeout=TIMEOUT)
        assert not not_done and all(f.result().success for f in done)
    ha, hb = a.handle(), b.handle()
    in_a = {r["id"] for r in job.list_jobs(ha, states=job.STATES["INACTIVE"])}
    in_b = {r["id"] for r in job.list_jobs(hb, states=job.STATES["INACTIVE"])}
    assert in_a == {f.jobid() for f in fa + fa2} and in_b == {f.jobid() for f in fb}


def test_waiting_inside_a_callback_raises_instead_of_hanging(sim_instance):
    errors = []
    called = threading.Event()
    with JobExecutor(uri=sim_instance.uri) as ex:
        held = ex.submit(spec("true"), urgency=0)  # never done until canceled

        def on_done(f):
            try:
                held.result()
            except RuntimeError as exc:
                errors.append(str(exc))
            called.set()

        ex.submit(spec("true")).add_done_callback(on_done)
        assert called.wait(TIMEOUT)
        held.cancel()
    assert len(errors) == 1 and "would never return" in errors[0]


def test_no_instance_and_a_lost_instance(make_instance, tmp_path):
    with pytest.raises(NoInstanceError):
        JobExecutor(uri=f"local://{tmp_path}/nothing")
    inst = make_instance()
    ex = JobExecutor(uri=inst.uri)
    fut = ex.submit(sim_spec(300))  # simulated: no process outlives the broker
    fut.jobid(TIMEOUT)
    inst.proc.kill()  # the broker dies without answering
    assert isinstance(fut.exception(TIMEOUT), NoInstanceError)
    with pytest.raises(cf.BrokenExecutor):
        ex.submit(spec("true"))
    ex.shutdown()


def test_a_dropped_executor_finishes_its_jobs_and_its_thread(sim_instance):
    fut = JobExecutor(uri=sim_instance.uri).submit(sim_spec(0.2))  # the executor is dropped
    gc.collect()
    assert fut.result(TIMEOUT).success
    thread = fut._worker.thread
    thread.join(TIMEOUT)
    assert not thread.is_alive()


def test_batches_split_by_urgency_and_repeated_jobspec():
    from strato.executor import _runs

    a, b, c = {"a": 1}, {"b": 1}, {"c": 1}
    items = [("submit", i, s, u) for i, (s, u) in
             enumerate([(a, 16), (a, 16), (a, 16), (b, 16), (c, 16), (c, 0), (c, 0), (a, 0)])]
    assert [[it[1] for it in run] for run in _runs(items)] == [[0, 1, 2], [3, 4], [5, 6], [7]]
