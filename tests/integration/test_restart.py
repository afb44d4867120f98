"""Running jobs outlive their broker: an instance with a statedir, stopped cleanly
or killed with SIGKILL, comes back on the same statedir and its running jobs
finish normally, with every line of their output, including what they wrote
while no broker was there. Also: what a restart does when the shell host is
gone, hangs or answers garbage, and a statedir another broker holds or a newer
strato wrote.

Nothing here sleeps to wait: the jobs' tasks block on FIFOs the test opens."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import msgspec
import pytest
from conftest import end_shell_hosts_under, exits

import strato
from strato import job, resource

SIM = """
[exec]
backend = "sim"
[[resource.config]]
hosts = "node[0-1]"
cores = "0-3"
"""


@pytest.fixture(autouse=True)
def no_host_left_behind(tmp_path):
    """However a test ends, no shell host it left holding jobs outlives it."""
    yield
    end_shell_hosts_under(tmp_path)


class Gate:
    """A task that prints a line, waits for the test, prints another and exits 7.

    The task writes its pid to ``pid``, blocks reading FIFO ``go``, prints what it
    read, then tells the test through FIFO ``ack`` that the line is written."""

    def __init__(self, tmp: Path, name: str = "gate") -> None:
        self.dir = tmp / name
        self.dir.mkdir()
        self.go, self.ack, self.pidfile = self.dir / "go", self.dir / "ack", self.dir / "pid"
        os.mkfifo(self.go)
        os.mkfifo(self.ack)
        self.script = self.dir / "task.sh"
        self.script.write_text(textwrap.dedent(f"""\
            #!/bin/sh
            echo $$ > {self.pidfile}
            echo before
            read word < {self.go}
            echo "after $word"
            echo written > {self.ack}
            exit 7
            """))
        self.script.chmod(0o755)

    def pid(self) -> int:
        """The task's pid. The job's start event means its task was spawned, not that
        the script has run its first line yet: wait for that line's file."""
        deadline = time.monotonic() + 60
        while not (self.pidfile.exists() and self.pidfile.read_text().endswith("\n")):
            assert time.monotonic() < deadline, "the gate task never wrote its pid"
            time.sleep(0.01)
        return int(self.pidfile.read_text())

    def release(self, word: str) -> None:
        """Let the task go on, and return once it has printed its second line."""
        with open(self.go, "w") as f:
            f.write(word + "\n")
        with open(self.ack) as f:
            assert f.read() == "written\n"


def kill_broker(inst) -> None:
    """SIGKILL the broker (the `strato start` process) and reap it."""
    inst.proc.kill()
    inst.proc.wait()
    inst.stop()


def host_record(state: Path) -> dict:
    return json.loads((state / f"shell-host.0.{os.getuid()}.json").read_text())


def submit_gate(inst, gate: Gate, *args: str) -> str:
    jobid = inst.strato("submit", *args, str(gate.script), check=True).stdout.strip()
    inst.strato("job", "wait-event", "-t", "30", jobid, "start", check=True)
    return jobid


def allocated_cores(inst) -> int:
    with inst.handle() as h:
        return resource.status(h)["allocated"]["ncores"]


def check_finished_normally(inst, jobid: str, word: str) -> None:
    with inst.handle() as h:
        result = job.wait(h, jobid)
    assert result.returncode == 7 and result.exception is None
    out = inst.strato("job", "attach", jobid)
    assert out.stdout == f"before\nafter {word}\n"
    log = inst.strato("job", "eventlog", jobid, check=True).stdout
    names = [line.split()[1] for line in log.splitlines()]
    assert names.count("start") == 1 and names.count("finish") == 1
    assert names[-4:] == ["finish", "release", "free", "clean"]
    assert allocated_cores(inst) == 0


@pytest.mark.parametrize("stop", ["shutdown", "sigkill"])
def test_running_job_outlives_its_broker(make_instance, tmp_path, stop):
    """The job's task keeps running while no broker is there, writes a line then,
    and exits; the restarted broker records it all: exit code 7, both lines."""
    state = tmp_path / "state"
    gate = Gate(tmp_path)
    first = make_instance(statedir=state, sub="a")
    jobid = submit_gate(first, gate)
    held = first.strato("submit", "--urgency=hold", "true", check=True).stdout.strip()
    if stop == "shutdown":
        first.strato("shutdown", check=True)
        first.stop()  # the initial program ended by SIGTERM
    else:
        kill_broker(first)
    host = host_record(state)["pid"]
    os.kill(host, 0)  # still there, holding the job
    gate.release("meanwhile")  # output written with no broker

    second = make_instance(statedir=state, sub="b")
    check_finished_normally(second, jobid, "meanwhile")
    out = second.strato("jobs", "-n", "-o", "{id.f58} {state}", check=True).stdout
    assert out.split() == [held, "SCHED"]  # the pending job is still pending
    assert second.strato("run", "echo", "next", check=True).stdout == "next\n"


def test_job_running_across_a_restart_finishes_after_it(make_instance, tmp_path):
    """The task exits after the restart: its end reaches the new broker live."""
    state = tmp_path / "state"
    gate = Gate(tmp_path)
    first = make_instance(statedir=state, sub="a")
    jobid = submit_gate(first, gate)
    kill_broker(first)
    second = make_instance(statedir=state, sub="b")
    assert second.strato("jobs", "-n", "-o", "{state}", check=True).stdout.split() == ["RUN"]
    assert allocated_cores(second) == 1  # the scheduler knows its allocation
    gate.release("later")
    check_finished_normally(second, jobid, "later")


def test_two_restarts_and_output_past_the_memory_bound(make_instance, tmp_path):
    """Much output while the broker is away (more than the host keeps in memory with
    a small bound, so it spills to its file) arrives whole, across two restarts."""
    state = tmp_path / "state"
    gate = Gate(tmp_path)
    big = tmp_path / "big.sh"
    # 40000 lines of 100 bytes: 4 MB, past a 1 MB in-memory bound
    big.write_text(f"#!/bin/sh\nread w < {gate.go}\n"
                   f"{sys.executable} -c 'import sys\nfor i in range(40000): "
                   "sys.stdout.write(f\"{i:099d}\\n\")'\n"
                   f"echo written > {gate.ack}\n")
    big.chmod(0o755)
    small = ("-S", f"exec.orphan-memory={1 << 20}")
    first = make_instance(statedir=state, sub="a", args=small)
    jobid = first.strato("submit", str(big), check=True).stdout.strip()
    first.strato("job", "wait-event", "-t", "30", jobid, "start", check=True)
    kill_broker(first)
    second = make_instance(statedir=state, sub="b", args=small)
    kill_broker(second)
    gate.release("go")
    assert (state / f"shell-host.0.{os.getuid()}.spool").exists()
    third = make_instance(statedir=state, sub="c", args=small)
    with third.handle() as h:
        assert job.wait(h, jobid).returncode == 0
    out = third.strato("job", "attach", jobid, check=True).stdout.splitlines()
    assert out == [f"{i:099d}" for i in range(40000)]
    assert not (state / f"shell-host.0.{os.getuid()}.spool").exists()


def test_time_limit_that_passed_while_the_broker_was_away(make_instance, tmp_path):
    """The host ends a job whose limit passes while no broker is there; the restart
    records the job as ended by a timeout."""
    state = tmp_path / "state"
    gate = Gate(tmp_path)
    first = make_instance(statedir=state, sub="a")
    jobid = submit_gate(first, gate, "-t", "3s")
    task = gate.pid()
    kill_broker(first)
    assert exits(task)  # the host ends the task when its time is up
    second = make_instance(statedir=state, sub="b")
    with second.handle() as h:
        result = job.wait(h, jobid)
    assert result.result == "TIMEOUT" and result.exception["type"] == "timeout"
    assert second.strato("job", "attach", jobid).stdout.startswith("before\n")
    assert allocated_cores(second) == 0


def test_without_a_statedir_a_stop_ends_running_jobs(make_instance, tmp_path):
    gate = Gate(tmp_path)
    inst = make_instance()
    submit_gate(inst, gate)
    task = gate.pid()
    assert inst.stop() == 0
    assert exits(task, 0)


def test_orphan_timeout_zero_ends_running_jobs_at_stop(make_instance, tmp_path):
    state = tmp_path / "state"
    gate = Gate(tmp_path)
    first = make_instance(statedir=state, sub="a", args=("-S", "exec.orphan-timeout=0"))
    jobid = submit_gate(first, gate)
    task = gate.pid()
    assert first.stop() == 0
    assert exits(task, 0)
    second = make_instance(statedir=state, sub="b")
    with second.handle() as h:
        assert job.wait(h, jobid).result == "CANCELED"


@pytest.mark.parametrize("reboot", [True, False])
def test_shell_host_gone_at_restart(make_instance, tmp_path, reboot):
    """The shell host is gone at the restart (the machine rebooted: host and task
    killed; or only the host was killed and its task ran on): the job ends with a
    node-failure exception, what is left of its task is killed, and its resources
    are free again."""
    state = tmp_path / "state"
    gate = Gate(tmp_path)
    first = make_instance(statedir=state, sub="a")
    jobid = submit_gate(first, gate)
    task = gate.pid()
    kill_broker(first)
    os.kill(host_record(state)["pid"], signal.SIGKILL)
    if reboot:
        os.killpg(task, signal.SIGKILL)
    else:
        os.kill(task, 0)  # orphaned, still running
    second = make_instance(statedir=state, sub="b")
    with second.handle() as h:
        result = job.wait(h, jobid)
    assert result.exception["type"] == "node-failure"
    assert "lost the job's shell host on rank 0 across the restart" in result.exception["note"]
    assert "is gone" in result.exception["note"]
    assert exits(task)
    assert allocated_cores(second) == 0
    assert second.strato("run", "echo", "next", check=True).stdout == "next\n"


def test_sim_jobs_are_simulated_again_after_a_restart(make_instance, tmp_path):
    """A simulated running job keeps its allocation across a restart (nothing is
    double-booked) and one whose time limit passed ends with a timeout."""
    state = tmp_path / "state"
    first = make_instance(config=SIM, statedir=state, sub="a")
    long = first.strato("submit", "-N1", "--setattr=system.exec.test.run_duration=300",
                        "true", check=True).stdout.strip()
    short = first.strato("submit", "-n1", "-t", "0.2s",
                         "--setattr=system.exec.test.run_duration=300", "true",
                         check=True).stdout.strip()
    first.strato("job", "wait-event", "-t", "30", long, "start", check=True)
    kill_broker(first)
    second = make_instance(config=SIM, statedir=state, sub="b")
    with second.handle() as h:
        assert job.wait(h, short).result == "TIMEOUT"
        assert job.info(h, long)["state"] == "RUN"
        assert resource.status(h)["allocated"]["ncores"] == 4
        other = job.submit(h, strato.JobspecV1.from_command(["true"], num_nodes=2,
                                                             num_tasks=2))
        job.wait_all(h, [])
        assert job.info(h, other)["state"] == "SCHED"  # node0 is still the long job's
        job.cancel(h, long)
        assert job.wait(h, long).result == "CANCELED"
        assert job.wait(h, other).result == "COMPLETED"


def test_pending_jobs_keep_order_priorities_dependencies_and_holds(make_instance, tmp_path):
    """Across a SIGKILL and restart the queue is as it was: a held job stays held, a
    dependent job waits for its dependency, and the rest start by priority, then
    submission order, once the running job that blocks them ends."""
    config = ('[exec]\nbackend = "sim"\nsim-duration = "0.01s"\n'
              '[[resource.config]]\nhosts = "solo"\ncores = "0"\n')
    state = tmp_path / "state"
    first = make_instance(config=config, statedir=state, sub="a")

    def submit(*args: str) -> str:
        return first.strato("submit", *args, "true", check=True).stdout.strip()

    blocker = submit("--setattr=system.exec.test.run_duration=3600")
    first.strato("job", "wait-event", "-t", "30", blocker, "start", check=True)
    a, b, c = submit(), submit(), submit("--urgency=20")
    d = submit(f"--dependency=afterok:{a}")
    held = submit("--urgency=hold")
    kill_broker(first)

    second = make_instance(config=config, statedir=state, sub="b")
    out = second.strato("jobs", "-n", "-o", "{id.f58} {state} {priority}", check=True).stdout
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()}
    assert rows == {blocker: ["RUN", "16"], a: ["SCHED", "16"], b: ["SCHED", "16"],
                    c: ["SCHED", "20"], d: ["DEPEND", "0"], held: ["SCHED", "0"]}
    with second.handle() as h:
        job.cancel(h, blocker)
        results = job.wait_all(h, [a, b, c, d])
        assert all(r.result == "COMPLETED" for r in results)
        started = sorted((job.info(h, j)["t_run"], j) for j in (a, b, c, d))
        assert [j for _, j in started] == [c, a, b, d]
        assert job.info(h, held)["state"] == "SCHED"
        job.urgency(h, held, 16)
        assert job.wait(h, held).result == "COMPLETED"


# -- faults -----------------------------------------------------------------------------------
def test_killed_shell_host_of_a_statedir_instance(make_instance, tmp_path):
    """Killing the shell host mid-job ends its jobs with an exec exception, frees
    their resources and leaves the rest (a pending job, new jobs) as it was."""
    state = tmp_path / "state"
    gate = Gate(tmp_path)
    inst = make_instance(statedir=state)
    jobid = submit_gate(inst, gate)
    held = inst.strato("submit", "--urgency=hold", "true", check=True).stdout.strip()
    os.kill(host_record(state)["pid"], signal.SIGKILL)
    with inst.handle() as h:
        result = job.wait(h, jobid)
    assert result.exception["type"] == "exec"
    assert "the shell host exited (killed by signal 9)" in result.exception["note"]
    assert exits(gate.pid())  # its task went with it
    assert allocated_cores(inst) == 0
    out = inst.strato("jobs", "-n", "-o", "{id.f58} {state}", check=True).stdout
    assert out.split() == [held, "SCHED"]
    assert inst.strato("run", "echo", "next", check=True).stdout == "next\n"


def test_killed_task_process_group(make_instance, tmp_path):
    """Killing a task's process group ends that job (signal in its status), frees its
    resources, and another running job carries on to its normal end."""
    a, b = Gate(tmp_path, "a"), Gate(tmp_path, "b")
    inst = make_instance()
    ja = submit_gate(inst, a)
    jb = submit_gate(inst, b)
    os.killpg(int(a.pidfile.read_text()), signal.SIGKILL)
    with inst.handle() as h:
        result = job.wait(h, ja)
        assert result.returncode == 128 + signal.SIGKILL and result.result == "FAILED"
        assert job.info(h, jb)["state"] == "RUN"
    b.release("fine")
    check_finished_normally(inst, jb, "fine")


# -- bad input --------------------------------------------------------------------------------
def _start(state: Path, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("STRATO_URI", None)
    return subprocess.run([sys.executable, "-m", "strato.cli.main", "start", "--statedir",
                           str(state), *args, "true"], env=env, capture_output=True,
                          text=True, timeout=60, cwd=tmp)


def test_statedir_held_by_another_broker(make_instance, tmp_path):
    state = tmp_path / "state"
    first = make_instance(statedir=state, sub="a")
    jobid = first.strato("submit", "--wait", "echo", "kept", check=True).stdout.strip()
    res = _start(state, tmp_path)
    assert res.returncode == 1
    assert res.stderr.strip() == (f"strato-start: statedir {state} is in use by another"
                                  f" broker (pid {first.proc.pid})")
    assert first.strato("job", "attach", jobid, check=True).stdout == "kept\n"


def test_statedir_from_a_newer_strato_is_refused_untouched(make_instance, tmp_path):
    state = tmp_path / "state"
    first = make_instance(statedir=state, sub="a")
    jobid = first.strato("submit", "--wait", "echo", "kept", check=True).stdout.strip()
    assert first.stop() == 0
    db = sqlite3.connect(state / "content.sqlite")
    db.execute("PRAGMA user_version = 99")
    db.close()
    before = {p.name: p.read_bytes() for p in state.iterdir() if p.is_file()}
    res = _start(state, tmp_path)
    assert res.returncode == 1
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith("strato-start: cannot use state database") and "format 99" in line
    after = {p.name: p.read_bytes() for p in state.iterdir() if p.is_file()}
    assert after.keys() >= before.keys()
    assert after["content.sqlite"] == before["content.sqlite"]
    db = sqlite3.connect(state / "content.sqlite")
    db.execute("PRAGMA user_version = 1")
    db.close()
    second = make_instance(statedir=state, sub="b")
    assert second.strato("job", "attach", jobid, check=True).stdout == "kept\n"


_FAKE_HOST = """
import json, os, socket, sys
path, record, mode = sys.argv[1:4]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
s.listen(4)
with open(record, "w") as f:
    json.dump({"pid": os.getpid(), "socket": path, "version": 1}, f)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    if mode == "garbage":
        c.sendall(b"\\x05\\x00\\x00\\x00hello")
    else:
        c.recv(1)  # hang: never answer
"""


@pytest.mark.parametrize("mode", ["garbage", "hang"])
def test_shell_host_answering_garbage_or_hanging(make_instance, tmp_path, mode):
    """A restart finds in the statedir a 'shell host' that answers garbage or
    nothing: after adopt-timeout it is treated as lost (one log line), the job it
    should hold ends with node-failure, and the instance works."""
    state = tmp_path / "state"
    gate = Gate(tmp_path)
    first = make_instance(statedir=state, sub="a")
    jobid = submit_gate(first, gate)
    task = gate.pid()
    kill_broker(first)
    os.kill(host_record(state)["pid"], signal.SIGKILL)  # its task runs on, orphaned
    sock = Path(f"/tmp/strato-fake-{os.getpid()}-{mode}.sock")
    sock.unlink(missing_ok=True)
    record = state / f"shell-host.0.{os.getuid()}.json"
    fake = subprocess.Popen([sys.executable, "-c", _FAKE_HOST, str(sock), str(record), mode],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert fake.stdout.readline() == "ready\n"
        second = make_instance(statedir=state, sub="b", args=("-S", "exec.adopt-timeout=1s"))
        with second.handle() as h:
            result = job.wait(h, jobid)
        assert result.exception["type"] == "node-failure"
        why = "garbage" if mode == "garbage" else "did not answer within 1s"
        assert why in result.exception["note"]
        assert exits(task)  # what was left of it is gone too
        assert allocated_cores(second) == 0
        assert second.strato("run", "echo", "next", check=True).stdout == "next\n"
        second.proc.stdin.close()
        second.proc.wait(timeout=60)
        err = second.proc.stderr.read()
        (line,) = [ln for ln in err.splitlines() if "re-adopt" in ln]
        assert line.startswith("cannot re-adopt the shell host of rank 0:") and why in line
    finally:
        fake.kill()
        fake.wait()
        sock.unlink(missing_ok=True)


def test_a_stranger_cannot_adopt_the_shell_host(make_instance, tmp_path):
    """A process that connects to a surviving host's socket without the instance's
    secret gets nothing and changes nothing."""
    state = tmp_path / "state"
    gate = Gate(tmp_path)
    first = make_instance(statedir=state, sub="a")
    jobid = submit_gate(first, gate)
    kill_broker(first)
    from strato.core import hostlink

    path = host_record(state)["socket"]
    with pytest.raises(hostlink.HandshakeError, match="refused us"):
        hostlink.adopt(path, b"not the secret at all!!", 0, 10)
    with socket.socket(socket.AF_UNIX) as s:  # garbage, then gone
        s.connect(path)
        s.sendall(b"\xff" * 64)
    gate.release("anyway")
    second = make_instance(statedir=state, sub="b")
    check_finished_normally(second, jobid, "anyway")


def test_a_statedir_of_format_1_loads_and_its_inactive_jobs_are_sealed(make_instance,
                                                                      tmp_path):
    """A statedir written before inactive jobs were sealed (format 1, from
    tests/data) loads as it is: its jobs, their output and the held job are all
    there. Its inactive jobs are sealed on the way (format 2), so the next restart
    reads only their records, and shows the same."""
    state = tmp_path / "state"
    state.mkdir()
    db = sqlite3.connect(state / "content.sqlite")
    db.executescript((Path(__file__).parents[1] / "data" / "statedir-v1.sql").read_text())
    # the jobs were submitted from a directory of the machine that wrote the statedir:
    # the held one, run at the end, runs here instead
    for key, value in db.execute("SELECT key, value FROM kvs WHERE key LIKE '%.jobspec'"
                                 ).fetchall():
        jobspec = msgspec.msgpack.decode(value)
        jobspec["attributes"]["system"]["cwd"] = str(tmp_path)
        db.execute("UPDATE kvs SET value = ? WHERE key = ?",
                   (msgspec.msgpack.encode(jobspec), key))
    db.commit()
    db.execute("PRAGMA user_version = 1")
    db.close()
    done, failed, held = "ƒ5XQot3", "ƒAqnEVm", "ƒDbttw1"

    def check(inst) -> None:
        assert inst.strato("job", "attach", done, check=True).stdout == "hello from v1\n"
        assert inst.strato("job", "status", failed).returncode == 3
        log = inst.strato("job", "eventlog", done, check=True).stdout
        assert [line.split()[1] for line in log.splitlines()][-2:] == ["free", "clean"]
        listed = inst.strato("jobs", "-a", "-n", "-o", "{id.f58} {state} {name} {nodelist}",
                             check=True).stdout.split("\n")
        assert f"{held} SCHED held " in listed and f"{done} INACTIVE sh vm" in listed

    first = make_instance(statedir=state, sub="a")
    check(first)
    assert first.stop() == 0
    db = sqlite3.connect(state / "content.sqlite")
    assert db.execute("PRAGMA user_version").fetchone()[0] == 2
    sealed = {r[0] for r in db.execute("SELECT key FROM sealed")}
    assert len(sealed) == 2 and not db.execute("SELECT COUNT(*) FROM log WHERE key IN"
                                               " (SELECT key || '.eventlog' FROM sealed)"
                                               ).fetchone()[0]
    db.close()
    second = make_instance(statedir=state, sub="b")
    check(second)
    second.strato("job", "urgency", held, "16", check=True)
    assert second.strato("job", "status", held).returncode == 0


def test_a_corrupt_sealed_row_fails_that_job_only(make_instance, tmp_path):
    """In a real statedir, the one row that holds an ended job's KVS directory is
    damaged, and another ended job's record: after a restart, reading the first job
    is one line naming it and the statedir (logged once by the broker), the second
    is left out with one log line, and every other job, and new ones, work; the
    statedir's other rows are left as they were, and a purge removes the damaged job."""
    from strato.core import ids

    state = tmp_path / "state"
    first = make_instance(statedir=state, sub="a")
    one, two, three = (first.strato("submit", "--wait", "echo", word, check=True)
                       .stdout.strip() for word in ("one", "two", "three"))
    assert first.stop() == 0
    db = sqlite3.connect(state / "content.sqlite")
    db.execute("UPDATE cold SET content = X'c1c1' WHERE key = ?",
               (ids.encode(ids.parse(one), "kvs"),))
    db.execute("UPDATE sealed SET record = X'c1c1' WHERE key = ?",
               (ids.encode(ids.parse(three), "kvs"),))
    db.commit()
    rows = db.execute("SELECT * FROM cold").fetchall()
    db.close()
    second = make_instance(statedir=state, sub="b")
    corrupt = (f"job {one}: its KVS directory in statedir {state} is corrupt (MessagePack "
               "data is malformed: invalid opcode '\\xc1' (byte 0))")
    for args in (["job", "attach", one], ["job", "eventlog", one],
                 ["job", "info", one, "jobspec"]):
        res = second.strato(*args)
        assert (res.returncode, res.stdout, res.stderr) == (1, "", f"strato-job: {corrupt}\n")
    assert second.strato("job", "attach", two, check=True).stdout == "two\n"
    res = second.strato("job", "info", three, "jobspec")
    assert (res.returncode, res.stderr) == (1, f"strato-job: unknown job id {three}\n")
    listed = second.strato("jobs", "-a", "-n", "-o", "{id.f58} {state}", check=True)
    assert sorted(listed.stdout.split("\n")[:-1]) == sorted([f"{one} INACTIVE",
                                                             f"{two} INACTIVE"])
    assert second.strato("run", "echo", "four", check=True).stdout == "four\n"
    second.strato("job", "purge", "--force", one, check=True)  # the way out for an admin
    assert second.strato("job", "attach", one).stderr == f"strato-job: unknown job id {one}\n"
    second.proc.stdin.close()
    assert second.proc.wait(timeout=60) == 0
    logged = second.proc.stderr.read().splitlines()
    assert logged == [f"job {three}: its record in statedir {state} is corrupt; it is left out",
                      corrupt]
    second.stop()
    db = sqlite3.connect(state / "content.sqlite")
    after = {(ns, key): content for ns, key, content in db.execute("SELECT * FROM cold")}
    purged = ("primary", ids.encode(ids.parse(one), "kvs"))
    assert purged not in after
    assert all(after[(ns, key)] == content for ns, key, content in rows
               if (ns, key) != purged)
