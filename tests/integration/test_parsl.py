"""Parsl's `StratoProvider`: a Parsl app graph whose workers run as blocks (jobs) of a
real strato instance, and the provider's answers when strato cannot help."""

from __future__ import annotations

from pathlib import Path

import pytest

parsl = pytest.importorskip("parsl", reason="parsl is not installed (pip install 'strato[parsl]')")
from parsl.jobs.states import JobState  # noqa: E402
from parsl.launchers import SingleNodeLauncher  # noqa: E402

from strato.parsl_provider import StratoProvider, StratoSubmitError, walltime_seconds  # noqa: E402

HERE = Path(__file__).resolve().parent

# Two virtual nodes of two cores (tasks run on this machine), and a queue.
CONFIG = """
[[resource.config]]
hosts = "node[0-1]"
cores = "0-1"
[queues.batch]
[policy.jobspec.defaults.system]
queue = "batch"
"""


@parsl.python_app
def square(x):
    import os

    return x * x, os.environ["GREETING"], os.environ["STRATO_JOB_ID"]


@parsl.python_app
def total(*parts):
    return sum(p[0] for p in parts), {p[1] for p in parts}, {p[2] for p in parts}


def htex_config(provider: StratoProvider, run_dir) -> parsl.Config:
    """HTEX over ``provider``. Parsl scales out (submits the first block) and reads
    the blocks' states on its strategy timer: every second here instead of every 5 s,
    so a test does not sit waiting for the first tick."""
    from parsl.executors import HighThroughputExecutor

    htex = HighThroughputExecutor(label="htex", provider=provider, address="127.0.0.1",
                                  max_workers_per_node=2, heartbeat_period=2,
                                  heartbeat_threshold=6)
    return parsl.Config(executors=[htex], run_dir=str(run_dir), usage_tracking=0,
                        strategy_period=1)


def records(inst) -> list[dict]:
    from strato import job as jobapi
    from strato.core.states import ALL

    with inst.handle() as h:
        return jobapi.list_jobs(h, states=ALL)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("launcher", [None, SingleNodeLauncher()], ids=["strato", "single"])
def test_map_reduce_through_htex(make_instance, tmp_path, launcher):
    inst = make_instance(config=CONFIG)
    # the workers import this module to run its apps
    provider = StratoProvider(uri=inst.uri, nodes_per_block=1, init_blocks=1, max_blocks=1,
                              walltime="00:05:00", queue="batch", launcher=launcher,
                              worker_init=f"export GREETING=hello PYTHONPATH={HERE}")
    with parsl.load(htex_config(provider, tmp_path / "runinfo")):
        result = total(*[square(i) for i in range(10)]).result(timeout=120)
    squares, greetings, jobs = result
    assert squares == sum(i * i for i in range(10))
    assert greetings == {"hello"}  # worker_init ran before the workers
    # every app ran in the one block, a strato job of the batch queue
    (block,) = records(inst)
    assert jobs == {_f58(block["id"])}
    assert block["name"].startswith("parsl.htex.block-0")
    # Parsl cancelled the block as the workflow ended; the cancel is answered before
    # the job has ended, so wait (a minute at most) for its clean event
    from strato import job as jobapi

    with inst.handle() as h:
        jobapi.event_wait(h, block["id"], "clean", timeout=60)
    assert records(inst)[0]["state"] == "INACTIVE"


def _f58(jobid: int) -> str:
    from strato.core import ids

    return ids.f58(jobid)


def test_submit_status_cancel(make_instance, tmp_path):
    inst = make_instance(config=CONFIG)
    provider = StratoProvider(uri=inst.uri, nodes_per_block=2, walltime="1m")
    provider.script_dir = str(tmp_path)
    ok = provider.submit("echo $STRATO_TASK_RANK", 2, "parsl.test.block-0")
    slow = provider.submit("sleep 60", 1, "parsl.test.block-1")
    inst.strato("job", "wait", ok)
    inst.strato("job", "wait-event", slow, "start", check=True)
    done, running = provider.status([ok, slow])
    assert done.state == JobState.COMPLETED and done.exit_code == 0
    assert sorted(done.stdout.split()) == ["0", "1", "2", "3"]  # 2 tasks on each of 2 nodes
    assert running.state == JobState.RUNNING
    rec = {r["name"]: r for r in records(inst)}["parsl.test.block-0"]
    assert (rec["ntasks"], rec["nnodes"], rec["duration"]) == (4, 2, 60.0)
    assert provider.cancel([slow, ok]) == [True, False]
    inst.strato("job", "wait", slow)
    assert [s.state for s in provider.status([ok, slow])] == [JobState.COMPLETED,
                                                              JobState.CANCELLED]


def test_failed_and_timed_out_blocks(make_instance):
    inst = make_instance(config=CONFIG)
    provider = StratoProvider(uri=inst.uri, walltime="1s")
    failed = provider.submit("exit 7", 1)
    late = provider.submit("sleep 30", 1)
    inst.strato("job", "wait", failed)
    inst.strato("job", "wait", late)
    f, t = provider.status([failed, late])
    assert (f.state, f.exit_code, f.message) == (JobState.FAILED, 7, "exit code 7")
    assert (t.state, t.message) == (JobState.TIMEOUT, "timeout: resource allocation expired")


# -- what strato cannot do: one line -------------------------------------------------------
@pytest.mark.parametrize(("kwargs", "message"), [
    ({"queue": "nope"}, "queue 'nope' does not exist (have: batch)"),
    ({"nodes_per_block": 3},
     "unsatisfiable request: 3 slot(s) of 1 core(s) on 3 node(s); the instance has "
     "2 node(s), 4 core(s), 0 gpu(s)"),
    ({"cores_per_node": 4, "exclusive": False},
     "unsatisfiable request: 1 slot(s) of 4 core(s) on 1 node(s); the instance has "
     "2 node(s), 4 core(s), 0 gpu(s)"),
])
def test_refused_block_is_one_line(make_instance, kwargs, message):
    inst = make_instance(config=CONFIG)
    provider = StratoProvider(uri=inst.uri, **kwargs)
    with pytest.raises(StratoSubmitError) as err:
        provider.submit("true", 1, "parsl.htex.block-0")
    assert str(err.value) == f"strato: cannot start block parsl.htex.block-0: {message}"
    assert records(inst) == []


def test_refused_block_fails_the_app_with_strato_reason(make_instance, tmp_path):
    inst = make_instance(config=CONFIG)
    provider = StratoProvider(uri=inst.uri, queue="nope", status_polling_interval=1)

    @parsl.python_app
    def one():
        return 1

    with parsl.load(htex_config(provider, tmp_path / "runinfo")):
        with pytest.raises(Exception) as err:
            one().result(timeout=60)
    assert ("strato: cannot start block parsl.htex.block-0: queue 'nope' does not exist"
            in str(err.value))


@pytest.mark.parametrize(("walltime", "message"), [
    ("1:xx", "walltime '1:xx': expected HH:MM:SS"),
    ("soon", "walltime 'soon': expected HH:MM:SS or a duration such as 10m"),
    ("00:00:00", "walltime '00:00:00': must be more than zero"),
])
def test_bad_walltime(walltime, message):
    with pytest.raises(ValueError) as err:
        StratoProvider(walltime=walltime)
    assert str(err.value) == message


def test_walltime_forms():
    assert walltime_seconds("01:02:03") == 3723
    assert walltime_seconds("05:00") == 300
    assert walltime_seconds("10m") == 600
    assert walltime_seconds(90) == 90


def test_instance_gone_under_the_provider(make_instance, tmp_path, caplog):
    inst = make_instance(config=CONFIG)
    provider = StratoProvider(uri=inst.uri)
    block = provider.submit("sleep 60", 1)
    inst.strato("job", "wait-event", block, "start", check=True)
    inst.stop()
    (status,) = provider.status([block])
    assert status.state == JobState.FAILED
    assert status.message == f"strato: no instance at {inst.uri} (it is not running)"
    assert provider.cancel([block]) == [False]
    with pytest.raises(StratoSubmitError) as err:
        provider.submit("true", 1, "parsl.htex.block-1")
    assert str(err.value) == ("strato: cannot start block parsl.htex.block-1: "
                              f"no instance at {inst.uri} (it is not running)")
    assert all("Traceback" not in r.getMessage() and r.exc_info is None for r in caplog.records)


@parsl.python_app
def nap(seconds):
    import time

    time.sleep(seconds)
    return seconds


@pytest.mark.timeout(180)
def test_instance_gone_under_a_running_workflow(make_instance, tmp_path):
    """The instance stops while an app runs in its block: the app fails with
    strato's one line (through Parsl's block-failure report), nothing hangs."""
    inst = make_instance(config=CONFIG)
    provider = StratoProvider(uri=inst.uri, status_polling_interval=1,
                              worker_init=f"export PYTHONPATH={HERE}")
    with parsl.load(htex_config(provider, tmp_path / "runinfo")):
        assert nap(0).result(timeout=120) == 0  # the block is up
        fut = nap(120)
        inst.stop()
        with pytest.raises(Exception) as err:
            fut.result(timeout=120)
    assert f"strato: no instance at {inst.uri} (it is not running)" in str(err.value)
