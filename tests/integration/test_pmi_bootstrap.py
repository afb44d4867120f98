"""Brokers bootstrapped through PMI: ``strato run -N4 strato start`` under a
multi-broker strato makes one 4-broker child instance, its brokers finding each
other through the job shell's PMI-1 (each with a CURVE keypair of its own)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess

import pytest
from conftest import STRATO


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "STRATO_"))}
    return dict(env, **extra)


def test_four_brokers_under_strato():
    script = ("strato run -N4 strato start sh -c '"
              "strato overlay status; strato getattr size; strato getattr instance-level; "
              'echo "fd=${PMI_FD-none}"; strato run -N4 --label-io strato getattr rank | sort'
              "'")
    res = subprocess.run([*STRATO, "start", "--test-size=4", "sh", "-c", script],
                         capture_output=True, text=True, timeout=180, env=_env())
    assert res.returncode == 0, res.stderr
    host = socket.gethostname()
    assert res.stdout.splitlines() == [
        f"0 {host}: full", f"├─ 1 {host}: full", f"│  └─ 3 {host}: full",
        f"└─ 2 {host}: full",
        "4", "1",
        "fd=none",  # the launcher's PMI is not the initial program's
        "0: 0", "1: 1", "2: 2", "3: 3",  # a job of the child spans its four brokers
    ]


def _start_with_pmi(fds: tuple = (), **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([*STRATO, "start", "true"], capture_output=True, text=True,
                          timeout=60, env=_env(**env), pass_fds=fds)


def test_pmi_server_gone():
    ours, theirs = socket.socketpair()
    ours.close()
    with theirs:
        res = _start_with_pmi((theirs.fileno(),), PMI_FD=str(theirs.fileno()), PMI_RANK="0",
                              PMI_SIZE="2")
    assert res.returncode == 1
    assert res.stderr.splitlines() == [
        "strato-start: PMI bootstrap: PMI init: cannot send: Broken pipe"]


def test_pmi_server_garbles():
    ours, theirs = socket.socketpair()
    ours.sendall(b"cmd=hello\n")
    with ours, theirs:
        res = _start_with_pmi((theirs.fileno(),), PMI_FD=str(theirs.fileno()), PMI_RANK="1",
                              PMI_SIZE="2")
    assert res.returncode == 1
    assert res.stderr.splitlines() == [
        "strato-start: PMI bootstrap: PMI init: expected cmd=response_to_init, got cmd=hello"]


@pytest.mark.parametrize("env, message", [
    ({"PMI_FD": "x", "PMI_RANK": "0", "PMI_SIZE": "2"},
     "PMI_FD=x is not a number (the PMI launcher's environment is incomplete)"),
    ({"PMI_FD": "0", "PMI_RANK": "0"},
     "PMI_SIZE= is not a number (the PMI launcher's environment is incomplete)"),
    ({"PMI_FD": "0", "PMI_RANK": "5", "PMI_SIZE": "2"}, "PMI_RANK=5 is not below PMI_SIZE=2"),
    ({"PMI_FD": "77", "PMI_RANK": "0", "PMI_SIZE": "2"},
     "PMI_FD=77 is not an open file descriptor"),
    ({"PMI_FD": "2", "PMI_RANK": "0", "PMI_SIZE": "2"},  # stderr: a pipe here
     "PMI_FD=2 is not a socket (the launcher's PMI connection is elsewhere)"),
])
def test_bad_pmi_environment(env, message):
    res = _start_with_pmi(**env)
    assert res.returncode == 1
    assert res.stderr.splitlines() == [f"strato-start: PMI bootstrap: {message}"]


def test_bad_interface_hint():
    res = subprocess.run([*STRATO, "start", "--test-size=2", "strato", "run", "-N2",
                          "strato", "start", "-S", "tbon.interface-hint=nosuch0", "true"],
                         capture_output=True, text=True, timeout=120, env=_env())
    assert res.returncode != 0
    assert "tbon.interface-hint: no interface 'nosuch0' with an IPv4 address" in res.stderr


def test_alloc_and_batch_run_a_broker_per_node(make_instance, tmp_path):
    """On a parent of two brokers, a child of two nodes is two brokers, started by
    the parent's two job shells and bootstrapped through PMI."""
    parent = make_instance(args=("--test-size=2",))
    res = parent.strato("alloc", "-N2", "strato", "overlay", "status", timeout=120,
                        check=True)
    host = socket.gethostname()
    assert res.stdout.splitlines() == [f"0 {host}: full", f"└─ 1 {host}: full"]
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/sh\nstrato getattr size\n"
                      "strato run -N2 --label-io strato getattr rank | sort\n")
    jobid = parent.strato("batch", "-N2", f"--output={tmp_path}/out", str(script),
                          check=True).stdout.strip()
    parent.strato("job", "wait", jobid, timeout=120, check=True)
    assert (tmp_path / "out").read_text().splitlines() == ["2", "0: 0", "1: 1"]


def test_alloc_on_one_broker_is_one_broker(make_instance):
    """Over the virtual nodes of one broker, a child keeps one broker for all."""
    parent = make_instance(config='[[resource.config]]\nhosts = "n[0-1]"\ncores = "0-1"\n')
    res = parent.strato("alloc", "-N2", "strato", "getattr", "size", timeout=120, check=True)
    assert res.stdout.strip() == "1"


MPIEXEC = shutil.which("mpiexec.mpich")


@pytest.mark.skipif(MPIEXEC is None, reason="MPICH's mpiexec (Hydra) is not installed "
                    "(make test installs Debian's mpich with apt where it can)")
def test_under_hydra():
    """Another launcher's PMI-1: MPICH's Hydra serves strato pmi and starts a
    4-broker instance, exactly as strato's own job shell does."""
    res = subprocess.run([MPIEXEC, "-n", "3", *STRATO, "pmi", "exchange"],
                         capture_output=True, text=True, timeout=120, env=_env())
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("0: completed pmi exchange on 3 tasks in ")
    res = subprocess.run([MPIEXEC, "-n", "4", *STRATO, "start", "strato", "getattr", "size"],
                         capture_output=True, text=True, timeout=120, env=_env())
    assert res.returncode == 0, res.stderr
    assert res.stdout == "4\n"
