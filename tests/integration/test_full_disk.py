"""A statedir on a disk that fills up or cannot be written: at startup, one line and
no instance; during a run, one line in the instance's log, new jobs refused with
the cause, nothing already recorded lost, and jobs accepted again once the disk has
room. The disk is a real one: a small tmpfs mounted for the test (skipped, with the
reason, where mounting is not permitted)."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import STRATO, exits, machine_wide

pytestmark = [pytest.mark.skipif(sys.platform != "linux", reason="tmpfs is Linux's"), machine_wide]

NOSPACE = os.strerror(errno.ENOSPC)


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs mounted at tmp_path/disk for the test."""
    where = tmp_path / "disk"
    where.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(where)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=True)


def fill(disk: Path) -> Path:
    """Write a file until the disk has no room left; returns it (unlink to free)."""
    path = disk / "filler"
    with open(path, "wb", buffering=0) as f:
        for chunk in (1 << 16, 4096, 512, 1):
            try:
                while True:
                    f.write(b"\0" * chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    return path


def start(state: Path, tmp: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("STRATO_URI", None)
    return subprocess.run([*STRATO, "start", "--statedir", str(state), "strato", "run",
                           "echo", "ran"], env=env, capture_output=True, text=True,
                          timeout=120, cwd=tmp)


def one_line(res: subprocess.CompletedProcess) -> str:
    (line,) = res.stderr.strip().splitlines()
    return line


def test_a_full_or_read_only_statedir_stops_startup_with_one_line(small_disk, tmp_path):
    state = small_disk / "state"
    first = start(state, tmp_path)
    assert first.returncode == 0 and first.stdout == "ran\n", first.stderr
    filler = fill(small_disk)
    for where in (state, small_disk / "new"):  # a restart, a first start
        res = start(where, tmp_path)
        assert res.returncode == 1
        assert one_line(res) == f"strato-start: cannot use statedir {where}: {NOSPACE}"
    filler.unlink()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    try:
        res = start(state, tmp_path)
        assert res.returncode == 1
        assert one_line(res) == (f"strato-start: cannot use statedir {state}:"
                                 f" {os.strerror(errno.EROFS)}")
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    again = start(state, tmp_path)  # nothing was lost: the first job is still there
    assert again.returncode == 0, again.stderr
    assert (small_disk / "state" / "secret").stat().st_size == 32


def test_a_disk_that_fills_during_a_run(make_instance, small_disk):
    """The disk fills while the instance runs: the save that fails is rolled back
    and logged once, every later submit is refused with the cause, queries still
    work; once the disk has room again the instance saves what it kept in memory and
    takes jobs again; a restart finds every job a client was given an id for."""
    state = small_disk / "state"
    inst = make_instance(statedir=state, sub="a")
    first = inst.strato("submit", "--wait", "echo", "before", check=True).stdout.strip()
    filler = fill(small_disk)
    accepted, refused = [], None
    for i in range(500):  # until a save needs a page the disk does not have
        res = inst.strato("submit", "--cc=1-20", "echo", f"batch{i}")
        if res.returncode != 0:
            refused = res
            break
        accepted += res.stdout.split()
    assert refused is not None, "the disk never filled"
    assert refused.returncode == 1
    assert one_line(refused) == (f"strato-submit: statedir {state}: {NOSPACE};"
                                 " new jobs refused")
    again = inst.strato("run", "true")
    assert again.returncode == 1 and "new jobs refused" in again.stderr
    assert inst.strato("job", "attach", first, check=True).stdout == "before\n"
    filler.unlink()
    deadline = time.monotonic() + 60
    while True:  # the KVS tries again every second
        res = inst.strato("submit", "echo", "after")
        if res.returncode == 0:
            accepted.append(res.stdout.strip())
            break
        assert "new jobs refused" in res.stderr and time.monotonic() < deadline
    inst.strato("queue", "drain", check=True, timeout=120)
    inst.proc.stdin.close()
    assert inst.proc.wait(timeout=60) == 0
    log = inst.proc.stderr.read().splitlines()
    assert [ln for ln in log if "refuses new jobs" in ln] == [
        f"statedir {state}: {NOSPACE}; the instance refuses new jobs until it can save"
        " its state again (nothing already recorded is lost)"]
    assert f"statedir {state}: saved again; new jobs are accepted" in log
    inst.stop()
    restarted = make_instance(statedir=state, sub="b")
    listed = restarted.strato("jobs", "-a", "-n", "-o", "{id.f58} {state}",
                              check=True).stdout.split("\n")
    for jobid in [first, *accepted]:
        assert f"{jobid} INACTIVE" in listed
    assert restarted.strato("job", "attach", accepted[-1], check=True).stdout == "after\n"


def test_an_instance_stopped_while_its_disk_is_full(make_instance, small_disk):
    """Stopped while its disk is still full, the instance ends normally with one line
    saying that what it could not save is lost; the statedir keeps everything saved
    before the disk filled, and the next start on it works."""
    state = small_disk / "state"
    inst = make_instance(statedir=state, sub="a")
    kept = inst.strato("submit", "--wait", "echo", "kept", check=True).stdout.strip()
    fill(small_disk)
    for _ in range(500):
        if inst.strato("submit", "--cc=1-20", "true").returncode != 0:
            break
    else:
        pytest.fail("the disk never filled")
    inst.proc.stdin.close()
    assert inst.proc.wait(timeout=60) == 0
    err = inst.proc.stderr.read()
    assert "Traceback" not in err
    assert [ln for ln in err.splitlines() if "are lost" in ln] == [
        f"statedir {state}: {NOSPACE}; the changes not saved since are lost"]
    inst.stop()
    (small_disk / "filler").unlink()
    again = make_instance(statedir=state, sub="b")
    assert again.strato("job", "attach", kept, check=True).stdout == "kept\n"
    assert again.strato("run", "echo", "next", check=True).stdout == "next\n"


def test_the_outbox_on_a_full_disk_keeps_whole_records_in_order(small_disk):
    """The shell host's outbox (`strato.shell.outbox`) spilling to a full disk: no
    error escapes, no partial record stays in the file, what the file cannot take
    is kept in memory up to the bound (then `full`), and once the disk has room the
    file takes it again; a replay yields every message, once, in order."""
    from strato.shell.outbox import Outbox

    spool = small_disk / "spool"
    box = Outbox(str(spool), memory_limit=4096)
    box.add(1, b"a" * 3000)
    box.add(2, b"b" * 3000)  # past the bound: spilled to the file
    assert spool.stat().st_size == 2 * (12 + 3000) and not box.memory
    filler = fill(small_disk)
    size = spool.stat().st_size
    seq = 2
    while not box.full:
        seq += 1
        box.add(seq, bytes([seq % 256]) * 1000)
    assert box.write_error.errno == errno.ENOSPC
    # what the last page had room for went in, whole; nothing partial was left
    assert spool.stat().st_size == box.spool_size and (size - box.spool_size) % 1012 == 0
    assert box.overflow_bytes <= 4096 + 1000
    assert [s for s, _ in box.after(0)] == list(range(1, seq + 1))
    filler.unlink()
    box._retry_at = 0  # (the file is tried again at most once a second)
    box.add(seq + 1, b"z")
    assert not box.full and not box.overflow and box.write_error is None
    replay = list(box.after(1))
    assert [s for s, _ in replay] == list(range(2, seq + 2))
    assert replay[0][1] == b"b" * 3000 and replay[-1][1] == b"z"
    box.ack(seq + 1)
    assert box.empty and not spool.exists()


def test_a_shell_host_whose_spool_disk_is_full(make_instance, small_disk, tmp_path):
    """The broker is killed, the disk of the statedir fills, and the job prints 2 MB:
    its shell host keeps what it can (a bounded amount in memory once the spool file
    is refused), drops the rest of the output without crashing, and counts it. Once
    the disk has room and the broker is back, the job has finished normally, its
    stderr says how many bytes were lost, and those plus the bytes kept are exactly
    what it printed."""
    import json
    import signal
    import textwrap

    state = small_disk / "state"
    go, ack, pidfile = tmp_path / "go", tmp_path / "ack", tmp_path / "pid"
    os.mkfifo(go)
    os.mkfifo(ack)
    script = tmp_path / "task.sh"
    lines = 20000
    script.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        echo before
        echo $$ > {pidfile}.tmp && mv {pidfile}.tmp {pidfile}
        read word < {go}
        {sys.executable} -c 'import sys
        for i in range({lines}): sys.stdout.write(f"{{i:099d}}\\n")'
        echo written > {ack}
        """))
    script.chmod(0o755)
    small = ("-S", f"exec.orphan-memory={64 << 10}")
    first = make_instance(statedir=state, sub="a", args=small)
    jobid = first.strato("submit", str(script), check=True).stdout.strip()
    deadline = time.monotonic() + 60
    while not pidfile.exists():
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.01)
    task = int(pidfile.read_text())
    first.proc.kill()
    first.proc.wait()
    first.stop()
    host = json.loads((state / f"shell-host.0.{os.getuid()}.json").read_text())["pid"]
    try:
        filler = fill(small_disk)
        with open(go, "w") as f:
            f.write("go\n")
        with open(ack) as f:
            assert f.read() == "written\n"
        # wait for the task's exit: all it printed is then in its host's hands
        assert exits(task)
        os.kill(host, 0)  # the host did not crash
        filler.unlink()
        second = make_instance(statedir=state, sub="b")
        res = second.strato("job", "attach", jobid)
        assert res.returncode == 0, res.stderr
        (note,) = [ln for ln in res.stderr.splitlines() if "bytes of output were lost" in ln]
        lost = int(note.split("strato-shell: ")[1].split()[0])
        assert note.endswith("the shell host could not keep them while the broker was away"
                             f" (its statedir: {NOSPACE})")
        printed = len("before\n") + lines * 100
        assert lost > 0 and len(res.stdout) + lost == printed
        assert res.stdout.startswith("before\n" + "".join(f"{i:099d}\n" for i in range(100)))
        with second.handle() as h:
            import strato.job
            assert strato.job.wait(h, jobid).returncode == 0
        assert json.loads((state / f"shell-host.0.{os.getuid()}.json").read_text())["pid"] \
            == host  # the same host, re-adopted
        assert second.strato("run", "echo", "next", check=True).stdout == "next\n"
    except BaseException:  # a host left holding the job would wait a day for a broker
        try:
            os.kill(host, signal.SIGTERM)
        except ProcessLookupError:
            pass
        raise
