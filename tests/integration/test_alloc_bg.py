"""``strato alloc --bg`` (as Flux's ``flux alloc --bg``): the command returns once the
child instance is ready, printing its job id; the instance then lives on its own
until it is shut down, canceled or its COMMAND ends. Real child instances under a
parent of 8 virtual nodes whose own jobs are simulated; every wait is on an event
(the command's return, a job's end), never a sleep."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
from conftest import STRATO, Instance

import strato
from strato import job

SIM_PARENT = """
[exec]
backend = "sim"
[[resource.config]]
hosts = "node[0-7]"
cores = "0-3"
"""


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    inst = Instance(tmp_path_factory.mktemp("bg"), SIM_PARENT)
    yield inst
    inst.stop()


def bg(parent: Instance, *args: str) -> str:
    res = parent.strato("alloc", "--bg", *args, check=True)
    assert res.stderr == "" or "-v" in args, res.stderr
    return res.stdout.strip()


def test_bg_returns_a_ready_instance_that_lives_until_shutdown(parent):
    jobid = bg(parent, "-N2", "--conf", "exec.backend=sim")
    assert re.fullmatch(r"ƒ\w+", jobid)
    with parent.handle() as h:
        rec = job.info(h, jobid)
        assert rec["state"] == "RUN" and rec["memo"]["uri"]
        uri = rec["memo"]["uri"]
    # ready means it answers and has the job's two nodes to give
    with strato.Handle(uri) as child:
        assert strato.resource.info(child)["nodes"] == 2
    # work goes in through the instance's URI (strato proxy JOBID ...)
    parent.strato("proxy", jobid, "strato", "submit", "--wait", "-N2", "hostname", check=True)
    with strato.Handle(uri) as child:
        assert [r["nnodes"] for r in job.list_jobs(child, states=job.STATES["INACTIVE"])] == [2]
    # nothing ends it but a shutdown: then the job completes, exit 0
    parent.strato("shutdown", jobid, check=True)
    assert parent.strato("job", "wait", jobid).returncode == 0


def test_bg_instance_ends_when_canceled(parent):
    jobid = bg(parent, "-N1")
    parent.strato("cancel", jobid, check=True)
    res = parent.strato("job", "wait", jobid)
    assert res.returncode == 1 and "canceled" in res.stderr


def test_bg_with_a_command_returns_at_once_and_the_job_ends_with_it(parent, tmp_path):
    gate = tmp_path / "gate"
    jobid = bg(parent, "-N1", "sh", "-c", f"while [ ! -e {gate} ]; do sleep 0.1; done; exit 3")
    with parent.handle() as h:
        assert job.info(h, jobid)["state"] == "RUN"  # returned while COMMAND still runs
    gate.touch()
    res = parent.strato("job", "wait", jobid)
    assert res.returncode == 1 and "exit code 3" in res.stderr


def test_bg_verbose_says_how_the_start_goes(parent):
    res = parent.strato("alloc", "--bg", "-v", "-N1", check=True)
    jobid = res.stdout.strip()
    steps = [ln.split(": ", 2)[2] for ln in res.stderr.splitlines()]
    assert steps == ["waiting for resources", "resources allocated", "waiting for instance",
                     "ready"], res.stderr
    assert all(ln.startswith(jobid + ":") for ln in res.stderr.splitlines())
    parent.strato("shutdown", jobid, check=True)
    parent.strato("job", "wait", jobid, check=True)


def test_bg_instance_that_cannot_start_is_one_line_and_exit_1(parent):
    res = parent.strato("alloc", "--bg", "-N1", "--broker-opts=-S exec.backend=nosuch")
    assert res.returncode == 1 and res.stdout == ""
    lines = res.stderr.splitlines()
    assert len(lines) == 1, lines
    assert re.fullmatch(r"strato-alloc: ƒ\w+: the instance ended before it was ready: "
                        r"exec: .*unknown exec backend 'nosuch'.*", lines[0]), lines


def test_bg_dry_run_starts_no_program():
    res = subprocess.run([*STRATO, "alloc", "--bg", "-N1", "--dry-run"], capture_output=True,
                         text=True, check=True)
    command = json.loads(res.stdout)["tasks"][0]["command"]
    assert command[-2:] == ["start", "--no-program"]


def test_bg_cancels_an_instance_that_does_not_answer_at_its_uri(parent, tmp_path):
    """The job posts a URI at which nothing answers (as a child that died right after
    posting it): --bg fails with one line naming the URI, and cancels the job rather
    than leave it holding its allocation until its time limit."""
    from strato.cli.cmd_batch import _background
    from strato.core.errors import StratoError

    with parent.handle() as h:
        js = strato.JobspecV1.from_command(["sleep", "300"])
        js.setattr("system.exec.test.run_duration", "300s")  # the parent simulates jobs
        jobid = job.submit(h, js)
        uri = f"local://{tmp_path}/gone/local"
        h.rpc("job-manager.memo", {"id": jobid, "memo": {"uri": uri}})
        with pytest.raises(StratoError, match=f"the instance at {uri} does not answer"):
            _background(h, jobid, 0)
        assert job.wait(h, jobid).result == "CANCELED"
