"""End to end: jobs submitted, run, watched and cancelled through the CLI."""

from __future__ import annotations

import json
import os
import time

import pytest


def events(inst, jobid: str) -> list[str]:
    res = inst.strato("job", "eventlog", jobid, check=True)
    return [line.split()[1] for line in res.stdout.splitlines()]


def test_run_streams_output_and_exits_with_job_code(instance):
    res = instance.strato("run", "-n2", "sh", "-c",
                          "echo out $STRATO_TASK_RANK; echo err >&2; exit 3")
    assert res.returncode == 3
    assert sorted(res.stdout.split("\n")[:2]) == ["out 0", "out 1"]
    assert "err" in res.stderr
    assert "exit code 3" in res.stderr


def test_run_true_succeeds(instance):
    res = instance.strato("run", "true")
    assert res.returncode == 0, res.stderr
    assert res.stdout == ""


def test_submit_wait_and_eventlog(instance):
    res = instance.strato("submit", "--cc=1-5", "--wait", "true", check=True)
    ids = res.stdout.split()
    assert len(ids) == 5 and all(i.startswith("ƒ") for i in ids)
    assert events(instance, ids[0]) == ["submit", "validate", "depend", "priority", "alloc",
                                        "start", "finish", "release", "free", "clean"]
    failing = instance.strato("submit", "--wait", "false")
    assert failing.returncode == 1


def test_task_environment(instance):
    res = instance.strato("run", "-n2", "--env=FOO=bar", "sh", "-c",
                          'echo "$STRATO_TASK_RANK $STRATO_TASK_LOCAL_ID $STRATO_JOB_SIZE '
                          '$STRATO_JOB_NNODES $FOO $STRATO_URI $STRATO_JOB_ID"', check=True)
    lines = sorted(res.stdout.splitlines())
    assert [ln.split()[:5] for ln in lines] == [["0", "0", "2", "1", "bar"],
                                                 ["1", "1", "2", "1", "bar"]]
    assert lines[0].split()[5] == instance.uri
    assert lines[0].split()[6].startswith("ƒ")


def test_output_files_with_templates(instance, tmp_path):
    res = instance.strato("submit", "--output=job-{{id}}.out", "--error=job-{{id}}.err",
                          "--cwd", str(tmp_path), "sh", "-c", "echo hi; echo oops >&2",
                          check=True)
    jobid = res.stdout.strip()
    instance.strato("job", "wait", jobid, check=True)
    assert (tmp_path / f"job-{jobid}.out").read_text() == "hi\n"
    assert (tmp_path / f"job-{jobid}.err").read_text() == "oops\n"


def test_cwd_is_honoured(instance, tmp_path):
    res = instance.strato("run", "--cwd", str(tmp_path), "pwd", check=True)
    assert res.stdout.strip() == str(tmp_path)


def test_time_limit_is_enforced(instance):
    # sleep 30 left alone would complete: TIMEOUT and the exception prove the limit
    res = instance.strato("run", "-t", "0.5s", "sleep", "30")
    assert res.returncode != 0
    assert "timeout" in res.stderr
    jobs = json.loads(instance.strato("jobs", "-a", "--json", check=True).stdout)["jobs"]
    assert jobs[0]["result"] == "TIMEOUT"


def test_cancel_kills_the_whole_process_group(instance, tmp_path):
    pidfile = tmp_path / "pids"
    res = instance.strato("submit", "sh", "-c",
                          f"sleep 300 & echo $! > {pidfile}; sleep 300", check=True)
    jobid = res.stdout.strip()
    instance.strato("job", "wait-event", "-t", "20", jobid, "start", check=True)
    deadline = time.monotonic() + 20
    while not (pidfile.exists() and pidfile.read_text().strip()):
        assert time.monotonic() < deadline, "job never wrote its pid"
        time.sleep(0.05)
    child = int(pidfile.read_text())
    instance.strato("cancel", jobid, check=True)
    res = instance.strato("job", "wait", jobid)
    assert res.returncode == 1 and "canceled" in res.stderr
    with pytest.raises(ProcessLookupError):
        for _ in range(200):  # the background child is killed with its group
            os.kill(child, 0)
            time.sleep(0.05)
    ev = events(instance, jobid)
    assert "exception" in ev and ev[-1] == "clean"


def test_signal_is_recorded(instance):
    jobid = instance.strato("submit", "sleep", "300", check=True).stdout.strip()
    instance.strato("job", "wait-event", "-t", "20", jobid, "start", check=True)
    instance.strato("job", "kill", "-s", "USR1", jobid, check=True)
    res = instance.strato("job", "wait-event", "-t", "20", jobid, "finish", check=True)
    assert "status=10" in res.stdout  # wait status of a task killed by SIGUSR1


def test_urgency_hold_and_release(instance):
    jobid = instance.strato("submit", "--urgency=hold", "true", check=True).stdout.strip()
    out = instance.strato("jobs", "-n", "-o", "{id.f58} {state} {urgency}", check=True).stdout
    assert f"{jobid} SCHED 0" in out
    instance.strato("job", "urgency", jobid, "default", check=True)
    instance.strato("job", "wait", jobid, check=True)
    assert "urgency" in events(instance, jobid)


def test_jobs_listing_and_filters(instance):
    ok = instance.strato("submit", "--wait", "--job-name=good", "true", check=True)
    instance.strato("submit", "--wait", "false")
    res = instance.strato("jobs", "-a", check=True)
    header = res.stdout.splitlines()[0]
    assert header.split() == ["JOBID", "USER", "NAME", "ST", "NTASKS", "NNODES", "TIME", "INFO"]
    assert ok.stdout.strip() in res.stdout
    failed = instance.strato("jobs", "-n", "--filter=failed", "-o", "{name}", check=True)
    assert failed.stdout.split() == ["false"]
    named = instance.strato("jobs", "-a", "-n", "--name=good", "-o", "{result}", check=True)
    assert named.stdout.split() == ["COMPLETED"]
    assert instance.strato("jobs", check=True).stdout.count("\n") == 1  # header only


def test_job_info_and_attach(instance):
    jobid = instance.strato("submit", "echo", "hello", check=True).stdout.strip()
    res = instance.strato("job", "attach", jobid)
    assert res.returncode == 0 and res.stdout == "hello\n"
    js = json.loads(instance.strato("job", "info", jobid, "jobspec", check=True).stdout)
    assert js["tasks"][0]["command"] == ["echo", "hello"]
    R = json.loads(instance.strato("job", "info", jobid, "R", check=True).stdout)
    assert R["version"] == 1 and R["execution"]["R_lite"]
    status = instance.strato("job", "status", jobid)
    assert status.returncode == 0


def test_queue_stop_start_drain_idle(instance):
    instance.strato("queue", "stop", "maintenance", check=True)
    st = instance.strato("queue", "status", check=True).stdout
    assert "Scheduling is stopped: maintenance" in st
    jobid = instance.strato("submit", "true", check=True).stdout.strip()
    out = instance.strato("jobs", "-n", "-o", "{id.f58} {state}", check=True).stdout
    assert f"{jobid} SCHED" in out
    instance.strato("queue", "start", check=True)
    instance.strato("queue", "drain", check=True, timeout=30)
    assert instance.strato("jobs", check=True).stdout.count("\n") == 1
    instance.strato("queue", "idle", check=True, timeout=30)
    instance.strato("queue", "disable", "closed", check=True)
    res = instance.strato("submit", "true")
    assert res.returncode == 1 and "disabled" in res.stderr
    instance.strato("queue", "enable", check=True)
    instance.strato("submit", "true", check=True)


def test_small_commands(instance):
    assert instance.strato("uri", check=True).stdout.strip() == instance.uri
    assert "time=" in instance.strato("ping", "-c", "2", check=True).stdout
    assert "size 1" in instance.strato("uptime", check=True).stdout
    plugins = instance.strato("plugins", "list", check=True).stdout
    for name in ("sched-simple", "exec-local", "exec-sim", "ingest-basic",
                 "job-priority-default"):
        assert name in plugins
    assert "ingest-basic: ingest_validate" in plugins
    assert instance.strato("--help", check=True).stdout.startswith("Usage: strato")


def test_kvs_commands(instance):
    instance.strato("kvs", "put", "a.b=1", 'a.c="x"', "a.d=[1,2]", check=True)
    assert instance.strato("kvs", "get", "a.b", "a.c", check=True).stdout == "1\nx\n"
    assert instance.strato("kvs", "ls", "a", check=True).stdout.split() == ["b", "c", "d"]
    assert "a.d = [1, 2]" in instance.strato("kvs", "dir", "a", check=True).stdout
    instance.strato("kvs", "put", "-A", "a.d=3", check=True)
    assert instance.strato("kvs", "get", "a.d", check=True).stdout.strip() == "[1, 2, 3]"
    instance.strato("kvs", "unlink", "a.b", check=True)
    res = instance.strato("kvs", "get", "a.b")
    assert res.returncode == 1 and "no such key" in res.stderr


def test_every_job_id_form_is_accepted(instance):
    jobid = instance.strato("submit", "--urgency=hold", "true", check=True).stdout.strip()
    forms = dict(line.split() for line in
                 instance.strato("job", "id", jobid, check=True).stdout.splitlines())
    assert set(forms) == {"dec", "hex", "dothex", "kvs", "words", "f58"}
    assert forms["f58"] == jobid
    for text in forms.values():
        ev = instance.strato("job", "eventlog", text, check=True).stdout
        assert ev.split("\n")[0].split()[1] == "submit", text


def test_run_streams_output_live(instance, tmp_path):
    gate = tmp_path / "gate"
    import subprocess

    from conftest import STRATO

    proc = subprocess.Popen([*STRATO, "run", "sh", "-c",
                             f"echo first; while [ ! -e {gate} ]; do sleep 0.05; done; "
                             "echo second"],
                            env=instance.env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "first\n"  # arrives while the job still runs
    assert proc.poll() is None
    gate.touch()
    assert proc.stdout.read() == "second\n"
    assert proc.wait(timeout=30) == 0


def test_large_output_is_not_lost(instance):
    code = "import sys; sys.stdout.write('a' * 1_000_000); sys.stderr.write('é' * 100_000)"
    import sys

    res = instance.strato("run", sys.executable, "-c", code)
    assert res.returncode == 0, res.stderr[-300:]
    assert res.stdout == "a" * 1_000_000
    assert res.stderr == "é" * 100_000  # multi-byte characters split across reads survive


def test_cancel_ends_a_job_whose_child_holds_its_output(instance):
    jobid = instance.strato("submit", "sh", "-c", "sleep 300 & exit 0", check=True).stdout
    jobid = jobid.strip()
    instance.strato("job", "wait-event", "-t", "20", jobid, "start", check=True)
    instance.strato("cancel", jobid, check=True)
    res = instance.strato("job", "wait-event", "-t", "20", jobid, "clean")
    assert res.returncode == 0, res.stderr


def test_empty_environment_stays_empty(instance):
    res = instance.strato("run", "--env=-*", "/usr/bin/env", check=True)
    assert all(line.startswith("STRATO_") for line in res.stdout.splitlines())


def test_label_io_labels_lines_not_chunks(instance, tmp_path):
    script = 'printf x; sleep 0.2; printf "y\\n"'
    res = instance.strato("run", "-n2", "-l", "sh", "-c", script, check=True)
    assert sorted(res.stdout.splitlines()) == ["0: xy", "1: xy"]
    instance.strato("run", "-n2", "-l", "--output=lab.txt", "--cwd", str(tmp_path), "sh", "-c",
                    script, check=True)
    assert sorted((tmp_path / "lab.txt").read_text().splitlines()) == ["0: xy", "1: xy"]


def test_filter_combines_states_and_results(instance):
    instance.strato("submit", "--wait", "false")
    running = instance.strato("submit", "sleep", "300", check=True).stdout.strip()
    instance.strato("job", "wait-event", "-t", "20", running, "start", check=True)
    out = instance.strato("jobs", "-n", "--filter=running,failed", "-o", "{name}", check=True)
    assert sorted(out.stdout.split()) == ["false", "sleep"]
    instance.strato("cancel", "--all", check=True)
    res = instance.strato("kvs", "unlink", "no.such.key")
    assert res.returncode == 1 and "no such key" in res.stderr
    instance.strato("kvs", "unlink", "-f", "no.such.key", check=True)


def test_an_ended_jobs_listing_is_kept_unchanged_by_info(instance):
    """job-list makes an inactive job's record once and shares it: asking for the
    job's full info (which adds its jobspec, R and eventlog) must not change what
    later listings show."""
    from strato import job
    from strato.handle import Handle

    jobid = instance.strato("submit", "--wait", "true", check=True).stdout.strip()
    with Handle(instance.uri) as h:
        first = job.list_jobs(h, states=job.STATES["INACTIVE"], userid=None)
        info = h.rpc("job-list.info", {"id": first[0]["id"]})
        again = job.list_jobs(h, states=job.STATES["INACTIVE"], userid=None)
    assert "eventlog" in info and "jobspec" in info
    assert again == first and "jobspec" not in again[0]
    assert instance.strato("jobs", "-a", "-n", "-o", "{id.f58} {status}",
                           check=True).stdout.split() == [jobid, "COMPLETED"]
