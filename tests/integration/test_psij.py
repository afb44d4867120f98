"""PSI/J's ``strato`` executor: a PSI/J job's life cycle in a real instance, found
through PSI/J's own executor discovery."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import timedelta

import pytest
from conftest import REPO

psij = pytest.importorskip("psij", reason="psij-python is not installed "
                                          "(pip install 'strato[psij]')")
from psij import (  # noqa: E402
    InvalidJobException,
    Job,
    JobAttributes,
    JobExecutor,
    JobSpec,
    JobState,
    ResourceSpecV1,
    SubmitException,
)

# Four virtual nodes of four cores (tasks run on this machine), and a queue.
CONFIG = """
[[resource.config]]
hosts = "node[0-3]"
cores = "0-3"
[queues.batch]
[policy.jobspec.defaults.system]
queue = "batch"
"""


@pytest.fixture
def inst(make_instance):
    return make_instance(config=CONFIG)


@pytest.fixture
def ex(inst):
    return JobExecutor.get_instance("strato", url=inst.uri)


class Recorder:
    """The states a job's status callback saw, in order."""

    def __init__(self) -> None:
        self.states: list[JobState] = []
        self.statuses = []
        self.lock = threading.Lock()

    def __call__(self, job, status) -> None:
        with self.lock:
            self.states.append(status.state)
            self.statuses.append(status)


def record(inst, native_id: str) -> dict:
    """The instance's record of a job (with its jobspec)."""
    from strato import job as jobapi

    with inst.handle() as h:
        return jobapi.info(h, native_id)


def run(ex, spec: JobSpec, timeout: float = 60) -> tuple[Job, Recorder]:
    job = Job(spec)
    rec = Recorder()
    job.set_job_status_callback(rec)
    ex.submit(job)
    status = job.wait(timeout=timedelta(seconds=timeout))
    assert status is not None and status.final, f"job did not end: {job.status}"
    return job, rec


def test_found_by_psij_discovery(ex):
    from strato.psij_executor import StratoJobExecutor

    assert "strato" in JobExecutor.get_executor_names()
    assert type(ex).__name__ == StratoJobExecutor.__name__
    assert ex.name == "strato"


def test_success_with_output_files_env_directory_stdin(ex, inst, tmp_path):
    (tmp_path / "in.txt").write_text("from stdin\n")
    spec = JobSpec(executable="/bin/sh",
                   arguments=["-c", 'echo "$GREETING $(pwd)"; cat; echo oops >&2'],
                   directory=tmp_path, environment={"GREETING": "hello"},
                   stdin_path=tmp_path / "in.txt", stdout_path=tmp_path / "out.txt",
                   stderr_path=tmp_path / "err.txt", name="psij-hello")
    job, rec = run(ex, spec)
    assert job.status.state == JobState.COMPLETED and job.status.exit_code == 0
    assert rec.states == [JobState.QUEUED, JobState.ACTIVE, JobState.COMPLETED]
    assert (tmp_path / "out.txt").read_text() == f"hello {tmp_path}\nfrom stdin\n"
    assert (tmp_path / "err.txt").read_text() == "oops\n"
    # the native id is strato's, and strato knows the job by its name
    listed = inst.strato("jobs", "-a", "-n", "-o", "{id.f58} {name} {result}",
                         check=True).stdout
    assert f"{job.native_id} psij-hello COMPLETED" in listed


def test_failure_exit_code(ex):
    job, rec = run(ex, JobSpec(executable="/bin/sh", arguments=["-c", "exit 3"]))
    assert job.status.state == JobState.FAILED
    assert job.status.exit_code == 3
    assert job.status.message == "exit code 3"
    assert rec.states == [JobState.QUEUED, JobState.ACTIVE, JobState.FAILED]


def test_cancel_a_running_job(ex, inst):
    job = Job(JobSpec(executable="/bin/sleep", arguments=["60"]))
    rec = Recorder()
    job.set_job_status_callback(rec)
    ex.submit(job)
    assert job.wait(timedelta(seconds=30), target_states=[JobState.ACTIVE]) is not None
    job.cancel()
    status = job.wait(timedelta(seconds=30))
    assert status.state == JobState.CANCELED
    assert rec.states == [JobState.QUEUED, JobState.ACTIVE, JobState.CANCELED]
    assert record(inst, job.native_id)["result"] == "CANCELED"


def test_time_limit(ex):
    spec = JobSpec(executable="/bin/sleep", arguments=["60"],
                   attributes=JobAttributes(duration=timedelta(seconds=1)))
    job, rec = run(ex, spec)
    assert job.status.state == JobState.FAILED
    assert job.status.message == "timeout: resource allocation expired"
    assert rec.states == [JobState.QUEUED, JobState.ACTIVE, JobState.FAILED]


def test_multi_process_spread_over_nodes(ex, inst, tmp_path):
    spec = JobSpec(executable="/bin/sh", arguments=["-c", "echo $STRATO_TASK_RANK"],
                   stdout_path=tmp_path / "ranks.txt",
                   resources=ResourceSpecV1(process_count=4, processes_per_node=2,
                                            cpu_cores_per_process=2))
    job, _ = run(ex, spec)
    assert job.status.state == JobState.COMPLETED
    assert sorted((tmp_path / "ranks.txt").read_text().split()) == ["0", "1", "2", "3"]
    rec = record(inst, job.native_id)
    assert (rec["ntasks"], rec["nnodes"], rec["ncores"]) == (4, 2, 8)


def test_pre_and_post_launch_run_once_around_the_tasks(ex, tmp_path):
    (tmp_path / "pre.sh").write_text('export STAGE=prepared; echo pre >> "$LOG"\n')
    (tmp_path / "post.sh").write_text('echo "post $STAGE" >> "$LOG"\n')
    log = tmp_path / "log.txt"
    spec = JobSpec(executable="/bin/sh",
                   arguments=["-c", 'echo "task $STRATO_TASK_RANK $STAGE" >> "$LOG"; exit 5'],
                   environment={"LOG": str(log)}, pre_launch=tmp_path / "pre.sh",
                   post_launch=tmp_path / "post.sh",
                   resources=ResourceSpecV1(process_count=2))
    job, rec = run(ex, spec)
    assert (job.status.state, job.status.exit_code) == (JobState.FAILED, 5)
    lines = log.read_text().splitlines()
    assert lines[0] == "pre" and lines[-1] == "post prepared"
    assert sorted(lines[1:-1]) == ["task 0 prepared", "task 1 prepared"]


def test_many_jobs_with_an_executor_callback(ex):
    seen: dict[str, list[JobState]] = {}
    lock = threading.Lock()

    def cb(job, status):
        with lock:
            seen.setdefault(job.id, []).append(status.state)

    ex.set_job_status_callback(cb)
    jobs = [Job(JobSpec(executable="/bin/sh", arguments=["-c", f"exit {i % 2}"]))
            for i in range(10)]
    for job in jobs:
        ex.submit(job)
    for job in jobs:
        job.wait(timedelta(seconds=60))
    ends = [seen[job.id][-1] for job in jobs]
    assert ends == [JobState.COMPLETED, JobState.FAILED] * 5
    assert all(seen[job.id][:2] == [JobState.QUEUED, JobState.ACTIVE] for job in jobs)


def test_queue_account_and_custom_attributes_reach_the_jobspec(ex, inst):
    attrs = JobAttributes(queue_name="batch", account="physics",
                          custom_attributes={"strato.user.project": "x1",
                                             "slurm.qos": "ignored"})
    job, _ = run(ex, JobSpec(executable="/bin/true", attributes=attrs))
    assert job.status.state == JobState.COMPLETED
    system = record(inst, job.native_id)["jobspec"]["attributes"]
    assert system["system"]["queue"] == "batch"
    assert system["system"]["bank"] == "physics"
    assert system["user"] == {"project": "x1"}


def test_list_and_attach(ex, inst):
    native = inst.strato("submit", "sleep", "60", check=True).stdout.strip()
    assert native in ex.list()
    job = Job()
    rec = Recorder()
    job.set_job_status_callback(rec)
    ex.attach(job, native)
    assert job.wait(timedelta(seconds=30), target_states=[JobState.ACTIVE]) is not None
    inst.strato("cancel", native, check=True)
    assert job.wait(timedelta(seconds=30)).state == JobState.CANCELED
    assert rec.states == [JobState.QUEUED, JobState.ACTIVE, JobState.CANCELED]


# -- what strato cannot do: one line, at submit -------------------------------------------
@pytest.mark.parametrize(("spec", "message"), [
    (JobSpec(executable="/bin/true", attributes=JobAttributes(queue_name="nope")),
     "queue 'nope' does not exist (have: batch)"),
    (JobSpec(executable="/bin/true", resources=ResourceSpecV1(node_count=8)),
     "unsatisfiable request: 8 slot(s) of 1 core(s) on 8 node(s); the instance has "
     "4 node(s), 16 core(s), 0 gpu(s)"),
    (JobSpec(executable="/bin/true", resources=ResourceSpecV1(cpu_cores_per_process=5)),
     "unsatisfiable request: 1 slot(s) of 5 core(s); the instance has 4 node(s), "
     "16 core(s), 0 gpu(s)"),
    (JobSpec(arguments=["x"]), "the job has no executable"),
    (JobSpec(executable="/bin/true", attributes=JobAttributes(reservation_id="r1")),
     "strato has no reservations (reservation_id 'r1')"),
])
def test_refused_at_submit_with_one_line(ex, spec, message):
    job = Job(spec)
    with pytest.raises(InvalidJobException) as err:
        ex.submit(job)
    assert str(err.value) == message
    assert job.status.state == JobState.NEW and job.native_id is None


def test_no_instance_is_one_line(tmp_path, monkeypatch):
    with pytest.raises(SubmitException) as err:
        JobExecutor.get_instance("strato", url=f"local://{tmp_path}/gone")
    assert str(err.value) == f"no instance at local://{tmp_path}/gone (it is not running)"
    monkeypatch.delenv("STRATO_URI", raising=False)
    with pytest.raises(SubmitException) as err:
        JobExecutor.get_instance("strato")
    assert str(err.value) == ("no strato instance (STRATO_URI is not set); "
                              "start one with 'strato start'")


def test_instance_lost_under_a_running_job(make_instance):
    inst = make_instance(config=CONFIG)
    ex = JobExecutor.get_instance("strato", url=inst.uri)
    job = Job(JobSpec(executable="/bin/sleep", arguments=["60"]))
    ex.submit(job)
    assert job.wait(timedelta(seconds=30), target_states=[JobState.ACTIVE]) is not None
    inst.stop()
    status = job.wait(timedelta(seconds=30))
    assert status.state in (JobState.FAILED, JobState.CANCELED), status
    assert status.message and "\n" not in status.message


@pytest.mark.timeout(240)
def test_found_in_an_installed_wheel(inst, tmp_path):
    """What ``pip install strato[psij]`` gives: the descriptor and the executor in
    site-packages, found by PSI/J from any folder, and a job run through them."""
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--target", str(site), str(REPO)], check=True, capture_output=True)
    assert (site / "psij-descriptors" / "strato_descriptor.py").is_file()
    code = ("import psij, strato\n"
            f"assert strato.__file__.startswith({str(site)!r}), strato.__file__\n"
            "ex = psij.JobExecutor.get_instance('strato')\n"
            "job = psij.Job(psij.JobSpec(executable='/bin/sh', arguments=['-c', 'exit 4']))\n"
            "ex.submit(job)\n"
            "s = job.wait()\n"
            "print(type(ex).__module__, s.state, s.exit_code)\n")
    env = dict(inst.env, PYTHONPATH=str(site))
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "strato.psij_executor FAILED 4\n"
    assert not os.path.exists(site / "core")
