"""strato under Slurm: a real one-host Slurm cluster (Debian's slurm-wlm: slurmctld and one
slurmd on this machine, munge for authentication), set up by tools/slurm-up.sh, and
`srun --mpi=pmi2` starting strato brokers that find each other through Slurm's PMI.
Skipped, saying why, only where that cluster cannot be started (not root and no Slurm
running, no apt to install it, a slurmd that does not come up)."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest
from conftest import REPO, STRATO
from test_docs_examples import extract, transcript

HOST = socket.gethostname()
NODE = HOST.split(".")[0]  # Slurm's name for this node
#: every srun of this module carries this job name, so a hung one can be cancelled
JOB_NAME = f"strato-test-{os.getpid()}"


@pytest.fixture(scope="module")
def slurm() -> None:
    """A Slurm cluster whose node is idle. tools/slurm-up.sh is idempotent and leaves
    the daemons running afterwards (another run, or another worktree's, finds them up
    at once); `tools/slurm-up.sh --stop` stops them."""
    res = subprocess.run([str(REPO / "tools" / "slurm-up.sh")], capture_output=True,
                         text=True, timeout=900)
    if res.returncode != 0:
        why = (res.stderr.strip().splitlines() or ["no message"])[-1]
        pytest.skip(f"Slurm cannot be started here: {why}")
    yield
    subprocess.run(["scancel", f"--name={JOB_NAME}"], capture_output=True, timeout=60)


def srun(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``srun ARGS`` (as this test's job, at most 5 minutes, without "queued and
    waiting" notes), from a clean environment (no STRATO_URI of an enclosing instance)."""
    env = dict(os.environ)
    env.pop("STRATO_URI", None)
    return subprocess.run(["srun", "--quiet", f"--job-name={JOB_NAME}", "--time=5", *args],
                          capture_output=True, text=True, timeout=timeout, env=env,
                          stdin=subprocess.DEVNULL)


def test_srun_pmi2_gives_each_task_a_pmi_fd(slurm):
    """What the PMI bootstrap of `strato start` relies on: with --mpi=pmi2 each task gets
    PMI_FD (an open socket to its slurmstepd), PMI_RANK and PMI_SIZE."""
    res = srun("-n2", "--overcommit", "--mpi=pmi2", "sh", "-c",
               'echo "$PMI_RANK $PMI_SIZE $PMI_FD $(readlink /proc/self/fd/$PMI_FD)"')
    assert res.returncode == 0, res.stderr
    rows = sorted(line.split() for line in res.stdout.splitlines())
    assert [r[:2] for r in rows] == [["0", "2"], ["1", "2"]]
    for _, _, fd, target in rows:
        assert int(fd) > 2 and target.startswith("socket:")



def test_strato_pmi_client_speaks_slurms_pmi(slurm):
    """strato's PMI-1 client (what the broker bootstrap uses) against Slurm's server:
    Slurm orders an answer's fields its own way (rc first), says appnum=-1, and
    answers a get of a missing key with a bare rc=1."""
    res = srun("-n3", "--overcommit", "--mpi=pmi2", *STRATO, "pmi", "exchange")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("0: completed pmi exchange on 3 tasks in ")
    res = srun("-n3", "--overcommit", "--mpi=pmi2", *STRATO, "pmi", "get",
               "PMI_process_mapping")
    assert (res.returncode, res.stdout) == (0, "(vector,(0,1,3))\n"), res.stderr
    res = srun("-n1", "--mpi=pmi2", *STRATO, "pmi", "get", "no-such-key")
    assert res.returncode == 1
    assert res.stderr.splitlines()[0] == "strato-pmi: get no-such-key: no such key"

#: the initial program of the instance srun starts (as a user's script.sh would be)
SCRIPT = """\
#!/bin/sh
test "$(strato getattr size)" = 4 || { echo "size is $(strato getattr size)"; exit 1; }
strato overlay status
strato run -N4 -n4 --label-io sh -c 'echo rank $(strato getattr rank) of $STRATO_JOB_SIZE'
"""


def test_srun_starts_a_4_broker_instance(slurm, tmp_path):
    """`srun -n4 --mpi=pmi2 strato start script.sh`: four brokers, one per Slurm task,
    find each other through Slurm's PMI and form one instance; rank 0 runs the script,
    whose job spans all four brokers, and every broker ends when it does.
    (--overcommit: four tasks on this host's CPUs, as -N4 would be on four hosts.)"""
    script = tmp_path / "script.sh"
    script.write_text(SCRIPT)
    script.chmod(0o755)
    res = srun("-n4", "--overcommit", "--mpi=pmi2", *STRATO, "start", str(script))
    assert (res.returncode, res.stderr) == (0, "")
    lines = res.stdout.splitlines()
    assert lines[:4] == [f"0 {HOST}: full", f"├─ 1 {HOST}: full", f"│  └─ 3 {HOST}: full",
                         f"└─ 2 {HOST}: full"]
    assert sorted(lines[4:]) == [f"{r}: rank {r} of 4" for r in range(4)]


def test_srun_exit_status_is_the_scripts(slurm):
    """The script's exit status is rank 0's, so srun's; the other brokers end cleanly
    (srun reports no other task)."""
    res = srun("-n2", "--overcommit", "--mpi=pmi2", *STRATO, "start", "sh", "-c", "exit 3")
    assert (res.returncode, res.stderr) == \
        (3, f"srun: error: {NODE}: task 0: Exited with exit code 3\n")


def test_srun_without_pmi_is_refused(slurm):
    """srun without --mpi=pmi2 (MpiDefault=none) gives no PMI: rather than four
    unrelated one-broker instances each running the script, each broker says what to do."""
    res = srun("-n2", "--overcommit", *STRATO, "start", "true")
    assert res.returncode == 1
    refusals = [line for line in res.stderr.splitlines() if line.startswith("strato-start")]
    assert refusals == ["strato-start: started as one of 2 Slurm tasks (srun) without PMI: "
                        "use srun --mpi=pmi2"] * 2



def test_docs_example_on_one_machine(slurm, tmp_path):
    """docs/admin/slurm.md's one-machine transcript, run as a reader would run it on
    the cluster tools/slurm-up.sh made (the docs test cannot: it has no Slurm)."""
    blocks = [b for b in extract(REPO / "docs" / "admin" / "slurm.md")
              if "test_slurm.py" in b.notes.get("not run", "")]
    assert blocks, "the page lost its one-machine example"
    env = dict(os.environ)
    env.pop("STRATO_URI", None)
    for block in blocks:
        for command, expected in transcript(block.text):
            res = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", command],
                                 capture_output=True, text=True, timeout=120, env=env,
                                 cwd=tmp_path, stdin=subprocess.DEVNULL)
            assert (res.returncode, res.stdout.splitlines()) == (0, expected), \
                f"{block.where}: {command}\n{res.stderr}"

@pytest.mark.parametrize("args, env, message", [
    (["--bogus"], {}, "slurm-up: unknown argument '--bogus' (usage: tools/slurm-up.sh [--stop])"),
    ([], {"SLURM_CONF": "FOREIGN"},
     "slurm-up: FOREIGN exists and was not written by tools/slurm-up.sh: not touching it"),
])
def test_slurm_up_bad_input(tmp_path, args, env, message):
    """A wrong argument, or a slurm.conf someone else wrote (a real site's): one line,
    exit 1, and the file is left as it was."""
    foreign = tmp_path / "slurm.conf"
    foreign.write_text("ClusterName=theirs\n")
    env = {k: v.replace("FOREIGN", str(foreign)) for k, v in env.items()}
    if env and os.geteuid() != 0:
        pytest.skip("the config is only written as root")
    res = subprocess.run([str(REPO / "tools" / "slurm-up.sh"), *args], capture_output=True,
                         text=True, timeout=600, env=dict(os.environ, **env))
    assert (res.returncode, res.stderr.splitlines()[-1:]) == \
        (1, [message.replace("FOREIGN", str(foreign))])
    assert foreign.read_text() == "ClusterName=theirs\n"
