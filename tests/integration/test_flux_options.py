"""Flux's submission options do in strato what they do in Flux, with real jobs:
per-resource task counts, task maps, the warning signal, files in the job's
temporary directory, per-task environment templates, minutes for a bare -t,
--wait-event and --log, and ``strato jobs JOBID...``."""

from __future__ import annotations

import json

from strato.core.ids import parse

CONFIG = """
[[resource.config]]
hosts = "node[0-3]"
cores = "0-3"
"""

RANKS = "echo $STRATO_TASK_RANK $STRATO_TASK_LOCAL_ID $STRATO_JOB_SIZE"


def test_per_resource_options_count_tasks_per_node_and_core(make_instance):
    inst = make_instance(config=CONFIG)
    res = inst.strato("run", "-N2", "--tasks-per-node=3", "sh", "-c", RANKS, check=True)
    assert sorted(res.stdout.splitlines()) == [
        "0 0 6", "1 1 6", "2 2 6", "3 0 6", "4 1 6", "5 2 6"]
    # --cores=2 asks for two one-core slots; two tasks on each core: four in all
    res = inst.strato("run", "--cores=2", "--tasks-per-core=2", "sh", "-c", RANKS, check=True)
    assert sorted(line.split()[2] for line in res.stdout.splitlines()) == ["4"] * 4
    # -N2 alone is whole nodes (4 cores each here), one task per node
    res = inst.strato("run", "-N2", "--tasks-per-core=1", "sh", "-c", RANKS, check=True)
    assert len(res.stdout.splitlines()) == 8


def test_taskmap_cyclic_and_manual_number_tasks_over_nodes(make_instance):
    inst = make_instance(config=CONFIG)
    res = inst.strato("run", "-N2", "-n4", "--taskmap=cyclic", "sh", "-c",
                      "echo $STRATO_TASK_RANK $STRATO_TASK_LOCAL_ID", check=True)
    # ranks alternate between the nodes: 0 and 2 on the first, 1 and 3 on the second
    assert sorted(res.stdout.splitlines()) == ["0 0", "1 0", "2 1", "3 1"]
    res = inst.strato("run", "-N2", "-n4", "--taskmap=manual:[[1,1,2,1],[0,1,2,1]]", "sh",
                      "-c", "echo $STRATO_TASK_RANK $STRATO_TASK_LOCAL_ID", check=True)
    assert sorted(res.stdout.splitlines()) == ["0 0", "1 1", "2 0", "3 1"]
    res = inst.strato("run", "-N2", "-n4", "--taskmap=manual:[[0,1,4,1]]", "true")
    assert res.returncode != 0 and "does not match the tasks per node" in res.stderr


def test_signal_warns_before_the_time_limit(make_instance):
    inst = make_instance(config=CONFIG)
    script = "trap 'echo warned; exit 0' USR1; sleep 30 & wait"
    res = inst.strato("run", "-t", "5s", "--signal=USR1@4.5s", "sh", "-c", script, check=True)
    assert res.stdout == "warned\n"


def test_add_file_and_env_templates_reach_the_tasks(make_instance, tmp_path):
    inst = make_instance(config=CONFIG)
    (tmp_path / "data.txt").write_text("from a file\n")
    res = inst.strato("run", "-n2", f"--add-file={tmp_path}/data.txt",
                      "--add-file=run.sh:0755=#!/bin/sh\\necho inline $MYRANK\\n",
                      "--env=MYRANK=r{{rank}}", "sh", "-c",
                      'cat "$STRATO_JOB_TMPDIR/data.txt"; "$STRATO_JOB_TMPDIR/run.sh"',
                      check=True)
    assert sorted(res.stdout.splitlines()) == [
        "from a file", "from a file", "inline r0", "inline r1"]


def test_bare_time_limit_is_minutes(make_instance):
    inst = make_instance(config=CONFIG)
    jobid = inst.strato("submit", "-t", "0.05", "sleep", "30", check=True).stdout.strip()
    rec = json.loads(inst.strato("jobs", jobid, "--json", check=True).stdout)
    assert rec["duration"] == 3.0
    res = inst.strato("job", "wait-event", "-t", "30", jobid, "clean", check=True)
    assert res.returncode == 0
    result = json.loads(inst.strato("jobs", jobid, "--json", check=True).stdout)["result"]
    assert result == "TIMEOUT"


def test_wait_event_and_log(make_instance, tmp_path):
    inst = make_instance(config=CONFIG)
    log = tmp_path / "ids.log"
    res = inst.strato("submit", "--wait-event=start", f"--log={log}", "sleep", "30",
                      check=True)
    assert res.stdout == ""
    jobid = log.read_text().strip()
    assert json.loads(inst.strato("jobs", jobid, "--json", check=True).stdout)["state"] == "RUN"
    inst.strato("cancel", jobid, check=True)
    res = inst.strato("run", "--wait-event=start", "-v", "sleep", "30", check=True)
    started = res.stderr.split("jobid: ")[1].strip()
    assert json.loads(inst.strato("jobs", started, "--json", check=True).stdout)["state"] \
        in ("RUN", "CLEANUP")
    inst.strato("cancel", started, check=True)


def test_jobs_takes_job_ids_in_any_form(make_instance):
    inst = make_instance(config=CONFIG)
    a = inst.strato("submit", "true", check=True).stdout.strip()
    b = inst.strato("submit", "--urgency=hold", "true", check=True).stdout.strip()
    inst.strato("job", "wait-event", "-t", "30", a, "clean", check=True)
    dec = str(parse(a))  # the same job, named in decimal
    res = inst.strato("jobs", "-n", "-o", "{id.f58} {state}", b, dec, check=True)
    assert res.stdout.splitlines() == [f"{b} SCHED", f"{a} INACTIVE"]
    res = inst.strato("jobs", "-n", "-o", "{id.f58}", a, "ƒ2Xm")
    assert (res.returncode, res.stdout, res.stderr) == (
        0, f"{a}\n", "strato-jobs: job ƒ2Xm unknown\n")
    res = inst.strato("jobs", "ƒ2Xm")
    assert res.returncode == 1


def test_bulksubmit_reads_files_links_lists_and_splits_at_sep(tmp_path):
    import subprocess

    from conftest import STRATO

    (tmp_path / "in.lst").write_text("p,q")

    def dry(*args: str, stdin: str = "") -> list[str]:
        res = subprocess.run([*STRATO, "bulksubmit", "--dry-run", *args], input=stdin,
                             capture_output=True, text=True, cwd=tmp_path, check=True)
        return [ln.removeprefix("bulksubmit: submit ") for ln in res.stdout.splitlines()]

    assert dry("echo", "{0}", "{1}", ":::", "a", "b", ":::+", "x") == ["echo a x", "echo b x"]
    assert dry("--sep=,", "echo", "{}", "::::", "in.lst") == ["echo p", "echo q"]
    assert dry("--sep=none", "echo", "{}", stdin="1 2\n3") == ["echo 1", "echo 2", "echo 3"]
