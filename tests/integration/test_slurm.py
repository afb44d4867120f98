"""strato under Slurm: a real one-host Slurm cluster (Debian's slurm-wlm: slurmctld and one
slurmd on this machine, munge for authentication), set up by tools/slurm-up.sh, and
`srun --mpi=pmi2` starting strato brokers that find each other through Slurm's PMI.
Skipped, saying why, only where that cluster cannot be started (not root and no Slurm
running, no apt to install it, a slurmd that does not come up)."""

from __future__ import annotations

import os
import subprocess

import pytest
from conftest import REPO

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
    """``srun ARGS`` (as this test's job, at most 5 minutes), from a clean environment
    (no STRATO_URI of an enclosing instance)."""
    env = dict(os.environ)
    env.pop("STRATO_URI", None)
    return subprocess.run(["srun", f"--job-name={JOB_NAME}", "--time=5", *args],
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
