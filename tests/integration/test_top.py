"""``strato top`` in a real terminal: tmux runs it, ``send-keys`` types, and
``capture-pane`` reads the screen, as a person would look at it.

The instance (16 virtual nodes x 4 cores, simulated jobs) holds three running
``app`` jobs of two nodes each, one completed job, one canceled job, one job
too big to ever start (pending), and a child instance ``kid`` (``strato batch
-N2``) with two running ``leaf`` jobs inside. Its script blocks on a FIFO, the
gate, which the teardown opens: no sleeps.

Each screen is waited for by reading the pane until it shows what is expected,
within a deadline; a screen that never comes fails with what was last shown.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from conftest import STRATO, Instance

pytest.importorskip("urwid", reason="strato top needs urwid (pip install 'strato[top]')")
TMUX = shutil.which("tmux")
pytestmark = pytest.mark.skipif(
    TMUX is None, reason="tmux is not installed (make test installs it with apt where it can)")

SIM = """
[exec]
backend = "sim"
[[resource.config]]
hosts = "node[0-15]"
cores = "0-3"
"""
HOUR = "--setattr=system.exec.test.run_duration=1h"
KID = """#!/bin/sh
strato submit --cc=1-2 --job-name=leaf {hour} sleep > ids || exit 1
for id in $(cat ids); do strato job wait-event -q "$id" start || exit 1; done
read go < {gate}
"""


class Terminal:
    """A tmux session of its own (its own server socket) running one command."""

    def __init__(self, tmp: Path, command: list[str], env: dict[str, str]) -> None:
        self.socket = tmp / "tmux.sock"
        self.status = tmp / "status"
        self.err = tmp / "stderr"
        self.status.unlink(missing_ok=True)
        script = (f"{shlex.join(command)} 2> {shlex.quote(str(self.err))}; "
                  f"echo $? > {shlex.quote(str(self.status))}; sleep 60")
        env = {k: v for k, v in env.items() if k != "TMUX"}  # a server of its own, not nested
        self.tmux("new-session", "-d", "-x", "120", "-y", "40", "-s", "top", script, env=env)

    def tmux(self, *args: str, env: dict[str, str] | None = None) -> str:
        return subprocess.run([TMUX, "-S", str(self.socket), *args], check=True, env=env,
                              capture_output=True, text=True, timeout=30).stdout

    def screen(self, escapes: bool = False) -> str:
        """The text on the screen (with `escapes`, its colours and attributes too, as
        SGR escape sequences)."""
        return self.tmux("capture-pane", "-p", *(["-e"] if escapes else []), "-t", "top")

    def wait_for(self, *patterns: str, timeout: float = 60) -> str:
        """The screen, once every regex in `patterns` matches it."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            if all(re.search(p, text, re.M) for p in patterns):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"screen never showed {patterns}:\n{text}")
            time.sleep(0.1)

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "top", *keys)

    def exit_status(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while not self.status.exists() or not self.status.read_text().strip():
            if time.monotonic() > deadline:
                raise AssertionError(f"strato top did not exit:\n{self.screen()}")
            time.sleep(0.1)
        return int(self.status.read_text())

    def close(self) -> None:
        subprocess.run([TMUX, "-S", str(self.socket), "kill-server"], capture_output=True)


class Busy:
    """The instance of the module, with its jobs and child instance running."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.gate = tmp / "gate"
        os.mkfifo(self.gate)
        (tmp / "kid.sh").write_text(KID.format(hour=HOUR, gate=self.gate))
        self.inst = Instance(tmp, SIM)
        s = self.inst.strato
        self.kid = s("batch", "-N2", "--job-name=kid", "--conf", "exec.backend=sim", "kid.sh",
                     check=True).stdout.strip()
        self.apps = s("submit", "--cc=1-3", "-N2", "--job-name=app", HOUR, "sleep",
                      check=True).stdout.split()
        s("run", "--job-name=done", "true", check=True)
        s("submit", "-N16", "--job-name=huge", "true", check=True)
        gone = s("submit", "-N16", "--job-name=gone", "true", check=True).stdout.strip()
        s("cancel", gone, check=True)
        for jobid in self.apps:
            s("job", "wait-event", "-q", jobid, "start", check=True)
        self.kid_uri = s("uri", "--wait", self.kid, check=True).stdout.strip()
        self._wait_leaves()

    def _wait_leaves(self, timeout: float = 60) -> None:
        import strato

        deadline = time.monotonic() + timeout
        with strato.Handle(self.kid_uri) as h:
            while strato.job.stats(h).running < 2:
                if time.monotonic() > deadline:
                    raise AssertionError("the leaves in the child never ran")
                time.sleep(0.1)

    def close(self) -> None:
        try:
            fd = os.open(self.gate, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            fd = None
        if fd is not None:
            os.write(fd, b"go\n")
            os.close(fd)
            self.inst.strato("job", "wait", self.kid)
        self.inst.stop()


@pytest.fixture(scope="module")
def busy(tmp_path_factory):
    b = Busy(tmp_path_factory.mktemp("top"))
    yield b
    b.close()


@pytest.fixture
def terminal(tmp_path):
    made = []

    def make(command: list[str], env: dict[str, str]) -> Terminal:
        t = Terminal(tmp_path, command, env)
        made.append(t)
        return t

    yield make
    for t in made:
        t.close()


def job_rows(screen: str) -> list[tuple[str, str, str, str, str]]:
    """(id, state, ntasks, nnodes, name) of each job row under the table's header."""
    lines = screen.splitlines()
    start = next(i for i, ln in enumerate(lines) if re.match(r"\s+JOBID USER", ln)) + 1
    rows = []
    for ln in lines[start:]:
        m = re.match(r"\s*(ƒ\w+) +\S+ +(\S+) +(\d+) +(\d+) +\S+ (\S+)\s*$", ln)
        if m:
            rows.append(m.groups())
    return rows


def test_top_shows_summary_and_jobs_descends_into_a_child_and_quits(busy, terminal):
    t = terminal([*STRATO, "top"], busy.inst.env)
    screen = t.wait_for(r"^\.\s+expires ∞", r"ƒ\w+ .* kid\s*$")
    # resources: 3 apps and the kid hold 2 whole nodes each
    assert re.search(r"^nodes \[[| ]+\]\s+8/16\s+1 pending$", screen, re.M), screen
    assert re.search(r"^cores \[[| ]+\]\s+32/64\s+4 running$", screen, re.M), screen
    assert re.search(r"^ gpus \[ +\]\s+0/0\s+1 completed$", screen, re.M), screen
    assert re.search(r"^\s+1 failed$", screen, re.M), screen
    assert re.search(r"^size 1  depth 0  uptime \S+  strato \S+$", screen, re.M), screen
    rows = job_rows(screen)
    # newest first: the apps (newest id last submitted), then the kid
    assert [r[4] for r in rows] == ["app", "app", "app", "kid"]
    assert [r[0] for r in rows] == [*reversed(busy.apps), busy.kid]
    assert all(r[1] == "R" and r[3] == "2" for r in rows)

    # a plain job cannot be opened: a note says so and the view stays
    t.keys("Enter")
    t.wait_for(rf"{busy.apps[-1]} is not an instance of yours")

    # down to the kid, open it: its own summary and its leaves
    t.keys("j", "j", "j", "Enter")
    screen = t.wait_for(rf"^{busy.kid}\s+expires", r"leaf\s*$")
    assert re.search(r"^nodes \[[| ]+\]\s+[12]/2\s+0 pending$", screen, re.M), screen
    assert re.search(r"^cores \[[| ]+\]\s+2/8\s+2 running$", screen, re.M), screen
    assert re.search(r"^ gpus \[ +\]\s+0/0\s+0 completed$", screen, re.M), screen
    assert "depth 1" in screen
    rows = job_rows(screen)
    assert [r[4] for r in rows] == ["leaf", "leaf"]

    # d: ended jobs as one inactive count instead of completed and failed
    t.keys("d")
    t.wait_for(r"^ gpus \[ +\]\s+0/0\s+0 inactive$")

    # q: back to the first instance, the cursor still on the kid; q again: quit
    t.keys("q")
    screen = t.wait_for(r"^\.\s+expires ∞", r"kid\s*$")
    assert len(job_rows(screen)) == 4
    t.keys("Enter")  # the cursor stayed on the kid: it opens again
    t.wait_for(rf"^{busy.kid}\s+expires")
    t.keys("q")
    t.wait_for(r"^\.\s+expires ∞")
    t.keys("q")
    assert t.exit_status() == 0
    assert t.err.read_text() == ""


def test_top_target_is_a_job_id_of_a_child(busy, terminal):
    t = terminal([*STRATO, "top", busy.kid], busy.inst.env)
    screen = t.wait_for(r"leaf\s*$", r"depth 1")
    # started on the child: it is the first level, so q quits at once
    assert screen.startswith(".")
    # an instance without queues: h/l change nothing (d, typed after them, shows
    # they were read)
    t.keys("l", "h", "Right", "d")
    screen = t.wait_for(r"^ gpus \[ +\]\s+0/0\s+0 inactive$")
    assert re.match(r"\.\s+expires", screen) and "queue" not in screen.splitlines()[0]
    assert [r[4] for r in job_rows(screen)] == ["leaf", "leaf"]
    t.keys("q")
    assert t.exit_status() == 0


def test_top_exits_with_one_line_when_the_instance_goes_away(make_instance, terminal):
    inst = make_instance(config=SIM)
    t = terminal([*STRATO, "top"], inst.env)
    t.wait_for(r"^cores \[ +\]\s+0/64")
    inst.strato("shutdown", check=True)
    assert t.exit_status() == 1
    lines = t.err.read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("strato-top: lost the instance: "), lines
    assert "Traceback" not in t.screen()


def test_top_queue_counts_and_lists_that_queue_only(make_instance, terminal):
    inst = make_instance(config=SIM + "[queues.a]\n[queues.b]\n")
    a = inst.strato("submit", "-q", "a", "-N1", "--job-name=in-a", HOUR, "sleep",
                    check=True).stdout.strip()
    b = inst.strato("submit", "-q", "b", "-N1", "--job-name=in-b", HOUR, "sleep",
                    check=True).stdout.strip()
    for jobid in (a, b):
        inst.strato("job", "wait-event", "-q", jobid, "start", check=True)
    t = terminal([*STRATO, "top", "--queue", "b"], inst.env)
    screen = t.wait_for(r"^\.  queue b\s+expires", r"in-b\s*$")
    # the counts and rows are queue b's; the resources are the instance's
    assert re.search(r"^cores \[[| ]+\]\s+8/64\s+1 running$", screen, re.M), screen
    assert [r[0] for r in job_rows(screen)] == [b]
    t.keys("q")
    assert t.exit_status() == 0


def test_top_h_and_l_rotate_through_the_queues(make_instance, terminal):
    """As Flux's: all the jobs, then each queue alone in config order, and around."""
    inst = make_instance(config=SIM + "[queues.a]\n[queues.b]\n")
    ids = {}
    for q in ("a", "b"):
        ids[q] = inst.strato("submit", "-q", q, "-N1", f"--job-name=in-{q}", HOUR, "sleep",
                             check=True).stdout.strip()
        inst.strato("job", "wait-event", "-q", ids[q], "start", check=True)
    t = terminal([*STRATO, "top"], inst.env)

    def shows(queue: str | None) -> None:
        head = r"^\.  queue " + queue if queue else r"^\.\s+expires"
        want = [ids[queue]] if queue else [ids["b"], ids["a"]]
        screen = t.wait_for(head, "in-" + (queue or "a") + r"\s*$")
        running = re.escape(f"{len(want)} running")
        assert re.search(rf"^cores \[[| ]+\]\s+8/64\s+{running}$", screen, re.M), screen
        assert [r[0] for r in job_rows(screen)] == want, screen

    shows(None)
    for key, queue in (("l", "a"), ("l", "b"), ("l", None), ("h", "b"), ("Left", "a"),
                       ("Right", "b")):
        t.keys(key)
        shows(queue)
    t.keys("q")
    assert t.exit_status() == 0


SGR_COLOR = re.compile(r"\x1b\[[0-9;]*?\b(3[0-7]|9[0-7]|4[0-7]|10[0-7])[;m]")


@pytest.mark.parametrize("when", ["always", "never"])
def test_top_color_when(busy, terminal, when):
    """--color=always paints a child instance's row blue; never paints nothing."""
    t = terminal([*STRATO, "top", f"--color={when}"], busy.inst.env)
    t.wait_for(r"kid\s*$")
    screen = t.screen(escapes=True)
    kid_line = next(ln for ln in screen.splitlines() if ln.rstrip().endswith("kid"))
    if when == "always":
        assert SGR_COLOR.search(kid_line), repr(kid_line)
    else:
        assert not SGR_COLOR.search(screen), repr(screen)
    t.keys("q")
    assert t.exit_status() == 0
