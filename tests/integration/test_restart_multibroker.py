"""Running jobs of a multi-broker instance (``strato start --test-size=4
--statedir=DIR``) outlive every one of its brokers: stopped cleanly or all
SIGKILLed, the instance comes back on its statedir and a job with tasks on all
four ranks finishes normally, with the output every rank wrote meanwhile; a job
whose time limit passed meanwhile ends with a ``timeout`` exception; a broker of
rank > 0 lost while the instance runs takes its tasks with it.

Nothing here sleeps to wait: the tasks block on FIFOs the test opens, and the
test waits on processes (pidfd) and on the instance's own answers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
from conftest import STRATO, end_shell_hosts_under, exits

import strato
from strato import job, kvs, resource
from strato.core import ids

SIZE = 4


@pytest.fixture(autouse=True)
def no_host_left_behind(tmp_path):
    """However a test ends, no shell host it left holding jobs outlives it."""
    yield
    end_shell_hosts_under(tmp_path)


class Gates:
    """One task per rank: each writes its pid, prints a line, waits for the test on
    its own FIFO, prints another line and exits 7."""

    def __init__(self, tmp: Path) -> None:
        self.dir = tmp / "gates"
        self.dir.mkdir()
        for rank in range(SIZE):
            os.mkfifo(self.dir / f"go.{rank}")
            os.mkfifo(self.dir / f"ack.{rank}")
        self.script = self.dir / "task.sh"
        d = self.dir
        self.script.write_text(textwrap.dedent(f"""\
            #!/bin/sh
            r=$STRATO_TASK_RANK
            echo before $r
            echo $$ > {d}/pid.$r.tmp && mv {d}/pid.$r.tmp {d}/pid.$r
            read word < {d}/go.$r
            echo "after $word $r"
            echo written > {d}/ack.$r
            exit 7
            """))
        self.script.chmod(0o755)

    def pids(self) -> list[int]:
        """Each task's pid, once every task has printed its first line."""
        deadline = time.monotonic() + 60
        files = [self.dir / f"pid.{r}" for r in range(SIZE)]
        while not all(f.exists() for f in files):
            assert time.monotonic() < deadline, "the tasks never wrote their pids"
            time.sleep(0.01)
        return [int(f.read_text()) for f in files]

    def release(self, word: str) -> None:
        """Let every task go on; return once each has printed its second line."""
        for rank in range(SIZE):
            with open(self.dir / f"go.{rank}", "w") as f:
                f.write(word + "\n")
        for rank in range(SIZE):
            with open(self.dir / f"ack.{rank}") as f:
                assert f.read() == "written\n"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def brokers(inst, size: int = SIZE) -> list[int]:
    """The pid of every broker of a --test-size instance, by rank (each answers on
    its own socket in the rundir)."""
    pids = []
    for rank in range(size):
        uri = f"local://{inst.rundir}/local" if rank == 0 else \
            f"local://{inst.rundir}/{rank}/local"
        with strato.Handle(uri) as h:
            pids.append(h.rpc("attr.get", {"name": "broker.pid"})["value"])
    assert pids[0] == inst.proc.pid
    return pids


def hosts(state: Path, size: int = SIZE) -> list[int]:
    """The pid of each rank's shell host, as the statedir records it."""
    return [json.loads((state / f"shell-host.{r}.{os.getuid()}.json").read_text())["pid"]
            for r in range(size)]


def start(make_instance, state: Path, sub: str):
    return make_instance(statedir=state, sub=sub, args=(f"--test-size={SIZE}",))


def submit_gates(inst, gates: Gates, *args: str) -> str:
    jobid = inst.strato("submit", f"-N{SIZE}", f"-n{SIZE}", *args, str(gates.script),
                        check=True).stdout.strip()
    inst.strato("job", "wait-event", "-t", "60", jobid, "start", check=True)
    return jobid


def allocated_cores(inst) -> int:
    with inst.handle() as h:
        return resource.status(h)["allocated"]["ncores"]


def stop_instance(inst, how: str, size: int = SIZE) -> None:
    """Stop the instance cleanly, or SIGKILL all of its brokers as at once: each is
    stopped (SIGSTOP) before any is killed, so that none lives to see another go
    (rank 0 would end the jobs of a rank it saw lost, and stop its shell host)."""
    if how == "shutdown":
        inst.strato("shutdown", check=True)
        inst.stop()
        return
    pids = brokers(inst, size)
    for sig in (signal.SIGSTOP, signal.SIGKILL):
        for pid in reversed(pids):  # every broker, the forked ones first
            os.kill(pid, sig)
    inst.proc.wait()
    for pid in pids:
        assert exits(pid)
    inst.stop()


@pytest.mark.parametrize("how", ["shutdown", "sigkill"])
def test_a_job_on_every_rank_outlives_the_whole_instance(make_instance, tmp_path, how):
    """Each rank's task keeps running while no broker is there, writes a line then,
    and exits; the restarted instance records it all: exit code 7, every line of
    every rank, one start and one finish, its cores booked again and then freed."""
    state = tmp_path / "state"
    gates = Gates(tmp_path)
    first = start(make_instance, state, "a")
    jobid = submit_gates(first, gates)
    tasks = gates.pids()
    held = first.strato("submit", "--urgency=hold", "true", check=True).stdout.strip()
    stop_instance(first, how)
    survivors = hosts(state)
    assert all(alive(p) for p in survivors + tasks)  # every rank's host holds its task
    gates.release("meanwhile")  # output written with no broker anywhere

    second = start(make_instance, state, "b")
    with second.handle() as h:
        result = job.wait(h, jobid)
    assert result.returncode == 7 and result.exception is None
    out = second.strato("job", "attach", jobid).stdout.splitlines()
    assert sorted(out) == sorted([f"before {r}" for r in range(SIZE)]
                                 + [f"after meanwhile {r}" for r in range(SIZE)])
    log = second.strato("job", "eventlog", jobid, check=True).stdout
    names = [line.split()[1] for line in log.splitlines()]
    assert names.count("start") == 1 and names.count("finish") == 1
    assert names[-4:] == ["finish", "release", "free", "clean"]
    assert allocated_cores(second) == 0
    out = second.strato("jobs", "-n", "-o", "{id.f58} {state}", check=True).stdout
    assert out.split() == [held, "SCHED"]
    res = second.strato("run", f"-N{SIZE}", "sh", "-c", "echo $STRATO_TASK_RANK", check=True)
    assert sorted(res.stdout.split()) == [str(r) for r in range(SIZE)]
    # the hosts re-adopted were kept (not replaced), and forgot what was recorded
    assert hosts(state) == survivors
    assert not list(state.glob("shell-host.*.spool"))


def test_a_job_running_across_the_restart_ends_after_it(make_instance, tmp_path):
    """The tasks exit only after the restart: their ends reach the new brokers live,
    and a second SIGKILL of everything and restart changes nothing."""
    state = tmp_path / "state"
    gates = Gates(tmp_path)
    first = start(make_instance, state, "a")
    jobid = submit_gates(first, gates)
    gates.pids()
    stop_instance(first, "sigkill")
    second = start(make_instance, state, "b")
    assert second.strato("jobs", "-n", "-o", "{state}", check=True).stdout.split() == ["RUN"]
    assert allocated_cores(second) == SIZE  # the scheduler knows its allocation
    stop_instance(second, "sigkill")
    third = start(make_instance, state, "c")
    gates.release("later")
    with third.handle() as h:
        result = job.wait(h, jobid)
    assert result.returncode == 7 and result.exception is None
    out = third.strato("job", "attach", jobid).stdout.splitlines()
    assert sorted(out) == sorted([f"before {r}" for r in range(SIZE)]
                                 + [f"after later {r}" for r in range(SIZE)])
    assert allocated_cores(third) == 0


def test_time_limit_that_passed_while_every_broker_was_away(make_instance, tmp_path):
    """Each host ends its task when the job's time is up with no broker there; the
    restart records the job as ended by a timeout, with the output before."""
    state = tmp_path / "state"
    gates = Gates(tmp_path)
    first = start(make_instance, state, "a")
    jobid = submit_gates(first, gates, "-t", "3s")
    tasks = gates.pids()
    stop_instance(first, "sigkill")
    for task in tasks:
        assert exits(task)  # its host ended it when the time was up
    second = start(make_instance, state, "b")
    with second.handle() as h:
        result = job.wait(h, jobid)
    assert result.result == "TIMEOUT" and result.exception["type"] == "timeout"
    out = second.strato("job", "attach", jobid).stdout.splitlines()
    assert sorted(out) == [f"before {r}" for r in range(SIZE)]
    log = second.strato("job", "eventlog", jobid, check=True).stdout
    assert sum(" exception " in line for line in log.splitlines()) == 1
    assert allocated_cores(second) == 0


@pytest.mark.parametrize("statedir", [False, True])
def test_a_lost_broker_takes_its_tasks_and_nothing_else(make_instance, tmp_path, statedir):
    """A broker of rank > 0 is SIGKILLed mid-job: the job ends with a node failure,
    every one of its tasks is killed, the lost rank's included (with a statedir its
    shell host outlives its broker, so rank 0 stops it through the statedir), its
    resources are free but the lost node's, and another job runs."""
    state = tmp_path / "state"
    inst = make_instance(statedir=state if statedir else None, args=(f"--test-size={SIZE}",))
    other = inst.strato("submit", "--urgency=hold", "true", check=True).stdout.strip()
    marker = tmp_path / "started"
    jobid = inst.strato("submit", f"-N{SIZE}", f"-n{SIZE}", "sh", "-c",
                        f"echo $$ >> {marker}; exec sleep 300", check=True).stdout.strip()
    deadline = time.monotonic() + 60
    while not (marker.exists() and len(marker.read_text().split()) == SIZE):
        assert time.monotonic() < deadline, "the tasks never started"
        time.sleep(0.05)
    tasks = [int(p) for p in marker.read_text().split()]
    lost = brokers(inst)[3]
    os.kill(lost, signal.SIGKILL)
    inst.strato("job", "wait-event", "-t", "60", jobid, "clean", check=True)
    log = inst.strato("job", "eventlog", jobid, check=True).stdout
    assert 'exception type="node failure" severity=0 note="lost broker rank 3 running ' \
           'the job"' in log
    for task in tasks:
        assert exits(task), "a task of the ended job is still running"
    if statedir:  # the lost rank's host went with its tasks, and said so in the log
        assert not (state / f"shell-host.3.{os.getuid()}.json").exists()
    rows = json.loads(inst.strato("resource", "list", "--json", check=True).stdout)
    assert (rows["free"]["ranks"], rows["down"]["ranks"]) == ([0, 1, 2], [3])
    res = inst.strato("run", "-N3", "echo", "ok", check=True)
    assert res.stdout == "ok\nok\nok\n"
    out = inst.strato("jobs", "-n", "-o", "{id.f58} {state}", check=True).stdout
    assert out.split() == [other, "SCHED"]  # nothing else changed


def written(paths: list[Path]) -> list[str]:
    """The text of each file, once every one exists (the tasks write them whole)."""
    deadline = time.monotonic() + 60
    while not all(p.exists() for p in paths):
        assert time.monotonic() < deadline, f"never written: {paths}"
        time.sleep(0.01)
    return [p.read_text() for p in paths]


def test_an_exception_type_recorded_before_the_restart_is_not_posted_again(
        make_instance, tmp_path):
    """Rank 1's task of a job on two ranks aborts through PMI (an ``exec``
    exception) and every broker is SIGKILLed; after the restart rank 0's task
    aborts the same way. The job's eventlog holds one ``exec`` exception, rank 1's,
    as it does without a restart (one exception of each type per job). The tasks
    ignore the SIGTERM the exception sends and exit when told."""
    state, d = tmp_path / "state", tmp_path / "gates"
    d.mkdir()
    for rank in range(2):
        os.mkfifo(d / f"go.{rank}")
        os.mkfifo(d / f"ack.{rank}")
    script = d / "task.sh"
    script.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        trap '' TERM
        r=$STRATO_TASK_RANK
        while read word < {d}/go.$r; do
            [ "$word" = exit ] && exit 0
            printf 'cmd=abort exitcode=3 error_msg=rank-%s\\ncmd=get_maxes\\n' $r >&3
            read answer <&3
            echo "$answer" > {d}/ack.$r
        done
        """))
    script.chmod(0o755)

    def abort(rank: int) -> None:
        """Rank `rank`'s task aborts; return once its shell has taken the abort (it
        answers the request sent after it)."""
        with open(d / f"go.{rank}", "w") as f:
            f.write("abort\n")
        with open(d / f"ack.{rank}") as f:
            assert f.read().startswith("cmd=maxes rc=0")

    config = '[exec]\nkill-timeout = "1h"\n'
    first = make_instance(config=config, statedir=state, sub="a", args=("--test-size=2",))
    jobid = first.strato("submit", "-N2", "-n2", str(script), check=True).stdout.strip()
    first.strato("job", "wait-event", "-t", "60", jobid, "start", check=True)
    abort(1)
    first.strato("job", "wait-event", "-t", "60", jobid, "exception", check=True)
    stop_instance(first, "sigkill", 2)
    second = make_instance(config=config, statedir=state, sub="b", args=("--test-size=2",))
    abort(0)
    for rank in range(2):
        with open(d / f"go.{rank}", "w") as f:
            f.write("exit\n")
    with second.handle() as h:
        result = job.wait(h, jobid)
    assert result.exception["type"] == "exec"
    log = second.strato("job", "eventlog", jobid, check=True).stdout.splitlines()
    exceptions = [line for line in log if line.split()[1] == "exception"]
    assert len(exceptions) == 1 and "task 1: PMI abort (exit code 3): rank-1" \
        in exceptions[0], exceptions
    assert allocated_cores(second) == 0


def test_a_rank_whose_shell_host_is_gone_at_the_restart_kills_its_leftover_tasks(
        make_instance, tmp_path):
    """Every broker, then rank 1's shell host, are SIGKILLed mid-job; rank 1's task
    (in a process group of its own) outlives them. The restarted rank 1 finds its
    host gone: rank 0 hands it the task groups the job's exec eventlog records for
    its part (rank 1 keeps no KVS), it kills what is left of them, and the job ends
    with a ``node-failure`` exception naming rank 1, its cores free; a job on both
    ranks runs."""
    state, d = tmp_path / "state", tmp_path / "pids"
    d.mkdir()
    first = make_instance(statedir=state, sub="a", args=("--test-size=2",))
    jobid = first.strato("submit", "-N2", "-n2", "sh", "-c",
                         f"echo $$ > {d}/tmp.$STRATO_TASK_RANK && "
                         f"mv {d}/tmp.$STRATO_TASK_RANK {d}/pid.$STRATO_TASK_RANK && "
                         "exec sleep 300", check=True).stdout.strip()
    tasks = [int(t) for t in written([d / "pid.0", d / "pid.1"])]
    host = hosts(state, 2)[1]
    stop_instance(first, "sigkill", 2)
    os.kill(host, signal.SIGKILL)
    assert exits(host)
    assert alive(tasks[1])  # no broker and no shell host holds it any more
    second = make_instance(statedir=state, sub="b", args=("--test-size=2",))
    with second.handle() as h:
        result = job.wait(h, jobid)
    assert result.exception["type"] == "node-failure"
    assert "lost the job's shell host on rank 1 across the restart" \
        in result.exception["note"]
    for task in tasks:
        assert exits(task), "a task of the ended job is still running"
    assert allocated_cores(second) == 0
    assert second.strato("run", "-N2", "echo", "ok", check=True).stdout == "ok\nok\n"


def test_a_part_that_ended_before_the_restart_stays_ended(make_instance, tmp_path):
    """Rank 1's task of a job on two ranks exits 5 at once while rank 0's waits;
    rank 0 records that rank 1's part ended and tells rank 1, whose shell host then
    forgets the job (and, holding nothing, exits with its broker). Every broker is
    SIGKILLed. After the restart rank 1's part is not taken up again (no host knows
    it): the job goes on, rank 0's task finishes, and the job ends with rank 1's
    exit code and no exception."""
    state, go = tmp_path / "state", tmp_path / "go"
    os.mkfifo(go)
    first = make_instance(statedir=state, sub="a", args=("--test-size=2",))
    jobid = first.strato("submit", "-N2", "-n2", "sh", "-c",
                         f"[ $STRATO_TASK_RANK = 1 ] && exit 5; read word < {go}",
                         check=True).stdout.strip()
    first.strato("job", "wait-event", "-t", "60", jobid, "start", check=True)
    gate = open(go, "w")  # (once rank 0's task waits on it)
    with first.handle() as h:
        key = ids.encode(job.info(h, jobid)["id"], "kvs") + ".exec.eventlog"
        deadline = time.monotonic() + 60
        while not any(e["name"] == "shell.rank-complete" for e in kvs.get(h, key)):
            assert time.monotonic() < deadline, "rank 1's end was never recorded"
            time.sleep(0.01)
        # That answer left once the record was saved, after rank 0 told rank 1 so
        # (exec.rank-ack); rank 1 answers this once it has passed that to its host.
        h.rpc("attr.get", {"name": "broker.pid"}, nodeid=1)
    host = hosts(state, 2)[1]
    stop_instance(first, "sigkill", 2)
    assert exits(host)  # it no longer held the job
    second = make_instance(statedir=state, sub="b", args=("--test-size=2",))
    try:
        with gate:
            gate.write("go\n")
    except BrokenPipeError:
        pytest.fail("rank 0's task was killed at the restart")
    with second.handle() as h:
        result = job.wait(h, jobid)
    assert result.exception is None and result.returncode == 5
    assert allocated_cores(second) == 0


MPIEXEC = shutil.which("mpiexec.mpich")


@pytest.mark.skipif(MPIEXEC is None, reason="MPICH's mpiexec (Hydra) is not installed "
                    "(make test installs Debian's mpich with apt where it can)")
def test_a_pmi_started_instance_keeps_its_running_job(tmp_path):
    """Four brokers started by another launcher's PMI (Hydra), each given the
    statedir: the instance stops with a job running on all four, its launcher
    returns (nothing of it is held open by the shell hosts that stay), and the
    instance started again the same way sees the job finish with the output its
    tasks wrote meanwhile."""
    state = tmp_path / "state"
    gates = Gates(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "STRATO_"))}

    def launch(program: str) -> subprocess.CompletedProcess:
        res = subprocess.run([MPIEXEC, "-n", str(SIZE), *STRATO, "start", "--statedir",
                              str(state), "sh", "-c", program], capture_output=True,
                             text=True, timeout=120, env=env, cwd=tmp_path)
        assert res.returncode == 0, res.stderr
        return res

    launch(f"strato submit -N{SIZE} -n{SIZE} {gates.script} > id &&"
           " strato job wait-event -t 60 $(cat id) start")
    tasks = gates.pids()
    assert all(alive(p) for p in hosts(state) + tasks)
    gates.release("meanwhile")
    res = launch("strato job attach $(cat id); echo rc=$?")
    lines = res.stdout.splitlines()
    assert lines[-1] == "rc=7"
    assert sorted(lines[:-1]) == sorted([f"before {r}" for r in range(SIZE)]
                                        + [f"after meanwhile {r}" for r in range(SIZE)])


def test_a_statedir_held_by_a_running_instance_is_refused_before_any_broker_starts(
        make_instance, tmp_path):
    """A second `--test-size` instance on a statedir in use fails with one line before
    it starts any broker, so none of its brokers re-adopts (and steals) a shell host
    of the running instance, whose job goes on and finishes normally."""
    state = tmp_path / "state"
    gates = Gates(tmp_path)
    first = start(make_instance, state, "a")
    jobid = submit_gates(first, gates)
    gates.pids()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATO_")}
    res = subprocess.run([*STRATO, "start", f"--test-size={SIZE}", "--statedir", str(state),
                          "true"], capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 1
    assert res.stderr.splitlines() == [
        f"strato-start: statedir {state} is in use by another broker (pid {first.proc.pid})"]
    gates.release("still")
    with first.handle() as h:
        result = job.wait(h, jobid)
    assert result.returncode == 7 and result.exception is None
    out = first.strato("job", "attach", jobid).stdout.splitlines()
    assert sorted(out) == sorted([f"before {r}" for r in range(SIZE)]
                                 + [f"after still {r}" for r in range(SIZE)])
