"""Controlling running jobs from the CLI, with real task processes: exceptions
(non-fatal and fatal), kill escalation, signals, status, info, resource R and the
queue's idle/enable/disable, each checked by value."""

from __future__ import annotations

import json
import os
import subprocess
import time

from conftest import STRATO

CONFIG = """
[exec]
kill-timeout = "0.5s"
[[resource.config]]
hosts = "node[0-1]"
cores = "0-1"
gpus = "0"
"""


def eventlog(inst, jobid: str) -> list[tuple[float, str, str]]:
    out = inst.strato("job", "eventlog", jobid, check=True).stdout.splitlines()
    return [(float(t), name, rest[0] if rest else "")
            for t, name, *rest in (line.split(" ", 2) for line in out)]


def started(inst, *argv: str) -> str:
    jobid = inst.strato("submit", *argv, check=True).stdout.strip()
    inst.strato("job", "wait-event", "-t", "30", jobid, "start", check=True)
    return jobid


def wait_for_file(path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def test_non_fatal_exception_leaves_the_job_running_a_fatal_one_ends_it(make_instance):
    inst = make_instance(config=CONFIG)
    jobid = started(inst, "sleep", "300")
    res = inst.strato("job", "raise", "-s", "1", "-t", "watchdog", "-m", "slow node", jobid)
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")
    assert inst.strato("jobs", "-n", "-o", "{id} {state}", check=True).stdout.split() \
        == [jobid, "RUN"]
    res = inst.strato("job", "raise", "-t", "admin", "-m", "go away", jobid)
    assert res.returncode == 0
    res = inst.strato("job", "wait", jobid)
    assert (res.returncode, res.stderr.strip()) == (1, f"strato-job: {jobid}: failed: go away")
    row = inst.strato("jobs", "-a", "-n", "-o", "{result}|{exception.type}|"
                      "{exception.severity}|{exception.note}|{returncode}", check=True).stdout
    assert row.strip() == "FAILED|admin|0|go away|-15"
    names = [(name, ctx) for _, name, ctx in eventlog(inst, jobid)
             if name in ("exception", "finish")]
    assert names == [
        ("exception", 'type="watchdog" severity=1 note="slow node" userid=' + str(os.getuid())),
        ("exception", 'type="admin" severity=0 note="go away" userid=' + str(os.getuid())),
        ("finish", "status=15")]  # the fatal one sent SIGTERM, which was enough


def test_kill_escalates_to_sigkill_after_kill_timeout(make_instance, tmp_path):
    """A task that ignores SIGTERM gets it, then SIGKILL once exec.kill-timeout (0.5 s)
    has passed since the cancel, not before."""
    inst = make_instance(config=CONFIG)
    term, ready = tmp_path / "got-term", tmp_path / "ready"
    jobid = inst.strato("submit", "sh", "-c", f"trap 'echo TERM >> {term}' TERM; "
                        f"touch {ready}; while :; do sleep 0.1; done", check=True).stdout.strip()
    wait_for_file(ready)  # its trap is set
    inst.strato("cancel", jobid, check=True)
    res = inst.strato("job", "wait", jobid)
    assert (res.returncode, res.stderr.strip()) == \
        (1, f"strato-job: {jobid}: canceled: cancel exception")
    assert term.read_text() == "TERM\n"
    log = {name: (t, ctx) for t, name, ctx in eventlog(inst, jobid)}
    assert log["finish"][1] == "status=9"
    assert log["finish"][0] - log["exception"][0] >= 0.5


def test_job_kill_status_and_info(make_instance):
    inst = make_instance(config=CONFIG)
    sleeper = started(inst, "sleep", "300")
    inst.strato("job", "kill", sleeper, check=True)  # SIGTERM by default
    res = inst.strato("job", "wait-event", "-t", "30", sleeper, "finish", check=True)
    assert res.stdout.split()[1:] == ["finish", "status=15"]
    three = inst.strato("submit", "sh", "-c", "exit 3", check=True).stdout.strip()
    ok = inst.strato("submit", "true", check=True).stdout.strip()
    assert inst.strato("job", "status", three, ok).returncode == 3
    assert inst.strato("job", "status", ok).returncode == 0
    out = inst.strato("job", "info", three, "eventlog", check=True).stdout
    info = [json.loads(line) for line in out.splitlines()]  # one entry a line
    assert [e["name"] for e in info][-1] == "clean"
    assert [e["context"] for e in info if e["name"] == "finish"] == [{"status": 768}]
    R = json.loads(inst.strato("job", "info", ok, "R", check=True).stdout)
    assert R["execution"]["nodelist"] in (["node0"], ["node1"])


def test_resource_R_is_the_configured_nodes(make_instance):
    inst = make_instance(config=CONFIG)
    R = json.loads(inst.strato("resource", "R", check=True).stdout)
    assert R == {"version": 1, "execution": {
        "R_lite": [{"rank": "0-1", "children": {"core": "0-1", "gpu": "0"}}],
        "nodelist": ["node[0-1]"], "starttime": 0.0, "expiration": 0.0}}


def test_queue_idle_returns_only_once_nothing_runs(make_instance, tmp_path):
    """`queue idle` is still waiting while a job runs: the time it printed when it
    returned is after the job ended (it could not be, had it not waited)."""
    inst = make_instance(config=CONFIG)
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    started(inst, "sh", "-c", f"read x < {gate}")
    idle = subprocess.Popen(["sh", "-c", '"$@" && date +%s.%N', "sh", *STRATO, "queue", "idle"],
                            env=inst.env, stdout=subprocess.PIPE, text=True)
    with open(gate, "w") as f:  # let the job end
        f.write("go\n")
    out, _ = idle.communicate(timeout=60)
    assert idle.returncode == 0
    rec = json.loads(inst.strato("jobs", "-a", "--json", check=True).stdout)["jobs"][0]
    assert float(out.strip()) >= rec["t_cleanup"] > 0


def test_queue_disable_with_reason_and_enable(make_instance):
    inst = make_instance(config=CONFIG)
    inst.strato("queue", "disable", "system upgrade", check=True)
    assert "disabled: system upgrade" in inst.strato("queue", "status", check=True).stdout
    res = inst.strato("submit", "true")
    assert res.returncode == 1
    assert res.stderr.strip().startswith("strato-submit: ") and "system upgrade" in res.stderr
    running = inst.strato("jobs", "-a", "--json", check=True).stdout
    assert json.loads(running)["jobs"] == []
    inst.strato("queue", "enable", check=True)
    assert "disabled" not in inst.strato("queue", "status", check=True).stdout
    inst.strato("submit", "--wait", "true", check=True)
