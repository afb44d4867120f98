"""Purging inactive jobs (``strato job purge``, ``job-manager.inactive-*-limit``):
a purged job is gone from job lists, the KVS and the statedir, and stays gone
after a restart; with a limit, memory and statedir stop growing however many
jobs run."""

from __future__ import annotations

import shlex
import sqlite3
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, Instance

import strato
from strato import job, queue
from strato.core import ids
from strato.core.errors import RPCError

SIM = """
[exec]
backend = "sim"
[[resource.config]]
hosts = "node[0-3]"
cores = "0-3"
"""


def _run_jobs(h, count: int) -> list[int]:
    jobids = job.submit_many(h, strato.JobspecV1.from_command(["true"]), count)
    queue.drain(h)
    return jobids


def _listed(inst) -> list[int]:
    out = inst.strato("jobs", "-a", "-n", "-o", "{id.dec}", check=True).stdout.split()
    return sorted(int(x) for x in out)


def _stored_keys(statedir: Path) -> set[str]:
    db = sqlite3.connect(statedir / "content.sqlite")
    try:
        return {k for (k,) in db.execute("SELECT key FROM kvs UNION SELECT key FROM log")}
    finally:
        db.close()


def test_purge_counts_then_purges_oldest_and_a_restart_does_not_bring_them_back(
        make_instance, tmp_path):
    statedir = tmp_path / "state"
    inst = make_instance(config=SIM, statedir=statedir)
    jobids = _run_jobs(inst.handle(), 10)

    def purge(args: str) -> str:
        return inst.strato("job", "purge", *shlex.split(args), check=True).stdout.strip()

    assert purge("") == "use --force to purge 0 of 10 inactive jobs"
    assert purge("--num-limit=4") == "use --force to purge 6 of 10 inactive jobs"
    assert _listed(inst) == sorted(jobids)  # counting purges nothing
    assert purge("--num-limit=4 --force") == "purged 6 inactive jobs, 4 remaining"
    assert _listed(inst) == sorted(jobids[6:])  # the oldest went
    gone = ids.f58(jobids[0])
    for args in (("job", "eventlog", gone), ("job", "info", gone, "jobspec")):
        res = inst.strato(*args)
        assert (res.returncode, res.stderr.strip()) == (1, f"strato-job: unknown job id {gone}")
    res = inst.strato("kvs", "get", ids.encode(jobids[0], "kvs") + ".eventlog")
    assert res.returncode == 1 and "no such key" in res.stderr
    assert purge(ids.f58(jobids[6])) == "use --force to purge 1 of 4 inactive jobs"
    assert purge(f"-f {ids.f58(jobids[6])}") == "purged 1 inactive jobs, 3 remaining"
    stats = job.stats(inst.handle())
    assert (stats.inactive, stats.successful, stats.total, stats.inactive_purged) == (3, 3, 3, 7)
    assert inst.stop() == 0

    stored = _stored_keys(statedir)
    for jobid in jobids:
        kvsdir = ids.encode(jobid, "kvs")
        kept = any(k.startswith(kvsdir + ".") for k in stored)
        assert kept == (jobid in jobids[7:]), ids.f58(jobid)
    again = make_instance(config=SIM, statedir=statedir)
    assert _listed(again) == sorted(jobids[7:])
    # ids are never reused: a new job's id is larger than every purged one
    assert job.submit(again.handle(), strato.JobspecV1.from_command(["true"])) > max(jobids)


def test_force_purges_in_batches_until_done(make_instance):
    inst = make_instance(config=SIM)
    h = inst.handle()
    _run_jobs(h, 7)
    res = inst.strato("job", "purge", "--num-limit=0", "--batch=2", "--force", check=True)
    assert res.stdout.strip() == "purged 7 inactive jobs, 0 remaining"
    assert _listed(inst) == []
    assert inst.strato("kvs", "ls", "job").returncode == 1  # no empty directories left


def test_python_api_purges_by_id_and_by_age(make_instance):
    inst = make_instance(config=SIM)
    h = inst.handle()
    first, second = _run_jobs(h, 2)
    assert job.purge(h, [first]) == job.PurgeResult(1, 2)
    assert job.purge(h, [first], force=True) == job.PurgeResult(1, 1)
    assert job.purge(h, age_limit="1h", force=True) == job.PurgeResult(0, 1)
    assert job.purge(h, age_limit=0, force=True) == job.PurgeResult(1, 0)
    with pytest.raises(RPCError, match="unknown job id"):
        job.info(h, second)


def test_num_limit_in_the_config_purges_as_jobs_end_and_at_restart(make_instance, tmp_path):
    statedir = tmp_path / "state"
    inst = make_instance(config=SIM + "[job-manager]\ninactive-num-limit = 3\n",
                         statedir=statedir)
    jobids = _run_jobs(inst.handle(), 10)
    assert _listed(inst) == sorted(jobids[7:])
    assert job.stats(inst.handle()).inactive_purged == 7
    inst.stop()
    again = make_instance(config=SIM + "[job-manager]\ninactive-num-limit = 1\n",
                          statedir=statedir)
    assert _listed(again) == [max(jobids)]


def test_age_limit_in_the_config_purges_jobs_once_that_old(make_instance):
    age = 5.0
    inst = make_instance(config=SIM + f'[job-manager]\ninactive-age-limit = "{age:g}s"\n')
    h = inst.handle()
    jobids = _run_jobs(h, 2)
    seen = job.list_jobs(h, states=job.STATES["INACTIVE"])
    assert sorted(r["id"] for r in seen) == sorted(jobids)
    ended = max(r["t_inactive"] for r in seen)
    deadline = time.time() + 60
    while job.list_jobs(h, states=job.STATES["INACTIVE"]) and time.time() < deadline:
        time.sleep(0.2)  # polling for the purge, which the instance times on its own
    assert job.list_jobs(h, states=job.STATES["INACTIVE"]) == []
    assert time.time() - ended >= age


# (arguments, exit code, the one line on stderr)
BAD = [
    ("job purge --age-limit=x", 2,
     "strato-job: Invalid value for '--age-limit': invalid duration 'x'"),
    ("job purge --age-limit=-1s", 2,
     "strato-job: Invalid value for '--age-limit': invalid duration '-1s'"),
    ("job purge --num-limit=-1", 2,
     "strato-job: Invalid value for '--num-limit': -1 is not in the range x>=0."),
    ("job purge --num-limit=x", 2,
     "strato-job: Invalid value for '--num-limit': 'x' is not a valid integer range."),
    ("job purge --batch=0 --num-limit=1", 2,
     "strato-job: Invalid value for '--batch': 0 is not in the range x>=1."),
    ("job purge --batch=5000 --num-limit=0 --force", 1,
     "strato-job: batch must be an integer from 1 to 1000"),
    ("job purge --num-limit=1 ƒ2Xm", 2,
     "strato-job: give job ids or --age-limit/--num-limit, not both"),
    ("job purge ƒ2Xm", 1, "strato-job: unknown job id ƒ2Xm"),
    ("job purge nojob", 2, "strato-job: Invalid value for '[JOBIDS]...': invalid job id 'nojob'"),
    ("config check -S job-manager.inactive-age-limit=x CONFIG", 1,
     "strato-config: job-manager.inactive-age-limit: invalid duration 'x'"),
    ("config check -S job-manager.inactive-num-limit=-1 CONFIG", 1,
     "strato-config: job-manager.inactive-num-limit: must be an integer >= 0 (got -1)"),
    ("config check -S job-manager.inactive-num-limit=x CONFIG", 1,
     "strato-config: job-manager.inactive-num-limit: must be an integer >= 0 (got 'x')"),
    ("config check -S job-manager.inactive-num=1 CONFIG", 1,
     "strato-config: unknown key 'job-manager.inactive-num' (did you mean "
     "'inactive-num-limit'?)"),
    ("start -S job-manager.inactive-age-limit=7x true", 1,
     "strato-start: job-manager.inactive-age-limit: invalid duration '7x'"),
    ("start -S job-manager.inactive-num-limit=1.5 true", 1,
     "strato-start: job-manager.inactive-num-limit: must be an integer >= 0 (got 1.5)"),
]


@pytest.fixture(scope="module")
def bad_input_instance(tmp_path_factory):
    """One instance with two inactive jobs, which no bad input may change."""
    tmp = tmp_path_factory.mktemp("purge-bad-input")
    (tmp / "empty.toml").write_text("")
    inst = Instance(tmp, SIM)
    _run_jobs(inst.handle(), 2)
    yield inst
    inst.stop()


@pytest.mark.parametrize("args,code,line", BAD, ids=[b[0] for b in BAD])
def test_bad_purge_input_is_one_line(bad_input_instance, args, code, line):
    inst = bad_input_instance
    argv = [a.replace("CONFIG", str(inst.tmp / "empty.toml")) for a in shlex.split(args)]
    res = inst.strato(*argv)
    assert (res.returncode, res.stderr.splitlines(), res.stdout) == (code, [line], "")
    assert len(_listed(inst)) == 2


def test_an_active_job_cannot_be_purged(make_instance):
    inst = make_instance(config=SIM)
    h = inst.handle()
    queue.stop(h)
    jobid = job.submit(h, strato.JobspecV1.from_command(["true"]))
    res = inst.strato("job", "purge", "--force", ids.f58(jobid))
    assert (res.returncode, res.stderr.strip()) == (
        1, f"strato-job: cannot purge active job {ids.f58(jobid)}")
    assert job.info(h, jobid)["state"] == "SCHED"


def test_python_api_refuses_bad_limits_before_asking(make_instance):
    h = make_instance(config=SIM).handle()
    for kwargs, msg in (({"age_limit": "x"}, "invalid duration 'x'"),
                        ({"age_limit": -1}, "invalid age limit -1"),
                        ({"num_limit": -1}, "invalid num limit -1"),
                        ({"num_limit": 1.5}, "invalid num limit 1.5"),
                        ({"jobids": [1], "num_limit": 1}, "job ids or limits, not both")):
        with pytest.raises(ValueError, match=msg):
            job.purge(h, **kwargs)
    for body, msg in (({"age_limit": "x"}, "age limit must be"),
                      ({"num_limit": True}, "num limit must be"),
                      ({"batch": 0}, "batch must be"),
                      ({"ids": "x"}, "ids must be a list")):
        with pytest.raises(RPCError, match=msg):
            h.rpc("job-manager.purge", body)


@pytest.mark.timeout(300)
def test_memory_and_statedir_stay_flat_over_8000_jobs():
    """The small version of tests/bench/bench_purge.py (200,000 jobs): with
    inactive-num-limit, the second half of the run grows the broker and the
    statedir by a small fraction of what the first half did, per job."""
    sys.path.insert(0, str(REPO / "tests" / "bench"))
    try:
        import bench_purge
    finally:
        sys.path.pop(0)
    res = bench_purge.run(jobs=8_000, chunk=1_000, num_limit=500, timeout=280)
    last = res["samples"][-1]
    assert (last["kept"], last["purged"]) == (500, 7_500)
    assert res["verdict"]["rss"]["flat"], res["verdict"]
    assert res["verdict"]["statedir"]["flat"], res["verdict"]


def test_stats_count_purged_jobs_per_queue(make_instance):
    inst = make_instance(config=SIM + "[queues.batch]\n[queues.debug]\n"
                                      "[policy.jobspec.defaults.system]\nqueue = \"batch\"\n")
    h = inst.handle()
    debug = strato.JobspecV1.from_command(["true"])
    debug.setattr("system.queue", "debug")
    job.submit_many(h, debug, 2)
    _run_jobs(h, 3)
    assert job.purge(h, num_limit=1, force=True) == job.PurgeResult(4, 1)
    assert job.stats(h, "debug").inactive_purged == 2
    assert job.stats(h, "batch").inactive_purged == 2
    line = inst.strato("jobs", "--stats-only").stdout.strip()
    assert line == "0 running, 1 completed, 0 failed, 0 pending, 4 inactive purged"
