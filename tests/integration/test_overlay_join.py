"""Joining the overlay, broker by broker: real brokers and overlays in this process,
joined over tcp on 127.0.0.1 with CURVE, where a test can watch each step (the
whole instances of test_overlay.py show the same from outside)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from conftest import STRATO

from strato.core.bootstrap import for_test
from strato.core.broker import Broker
from strato.core.cert import new_cert
from strato.core.errors import ConfigError
from strato.core.overlay import JoinWatch, Overlay


class Tree:
    """Rank 0 of a `size`-broker instance, and the children a test starts."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.cert = new_cert()[0]
        self.overlay = Overlay(Broker(0, size), for_test(size, {}, self.cert, ""))
        self.children: list[Overlay] = []
        self.stopped: dict[int, list[str | None]] = {}  # each child's on_stop reasons

    def start_child(self, rank: int, endpoint: str | None = None) -> Overlay:
        """Start broker `rank`, its parent rank 0 (at `endpoint` if given)."""
        boot = for_test(self.size, {}, self.cert, "", rank=rank,
                        parent_endpoint=endpoint or self.overlay.endpoint)
        why = self.stopped[rank] = []
        child = Overlay(Broker(rank, self.size), boot, on_stop=why.append)
        self.children.append(child)
        child.start()
        return child


@asynccontextmanager
async def tree(size: int) -> AsyncIterator[Tree]:
    t = Tree(size)
    t.overlay.start()
    try:
        yield t
    finally:
        for overlay in (*t.children, t.overlay):
            overlay.close()
            overlay.broker.close()


def test_join_watch_returns_once_every_broker_joined():
    async def main() -> None:
        async with tree(3) as t:
            watch = JoinWatch(t.overlay)
            t.start_child(2)
            t.start_child(1)
            await watch.wait(30.0)
            assert watch.joined == {1, 2}
            assert t.overlay.hello_handlers == [], "a finished wait leaves no handler"
            assert t.stopped == {1: [], 2: []}

    asyncio.run(main())


def test_join_watch_counts_each_rank_once_and_names_the_missing_one():
    """Rank 1 joins and says hello twice, rank 2 never comes: the wait ends after its
    timeout naming rank 2."""
    async def main() -> None:
        async with tree(3) as t:
            watch = JoinWatch(t.overlay)
            one = t.start_child(1)
            one.broker.send_to(0, "overlay.hello", one.hello_body())
            await one.broker.call_on(0, "broker.ping", {})  # behind both hellos
            with pytest.raises(ConfigError, match=r"^broker rank 2 did not join the "
                                                  r"instance in 1s$"):
                await watch.wait(1.0)
            assert watch.joined == {1}
            assert t.overlay.hello_handlers == []

    asyncio.run(main())


def test_join_watch_ends_early_when_failed():
    """What the test launcher does when a forked broker exits: the wait ends at
    once with its error, not after the timeout."""
    async def main() -> None:
        async with tree(2) as t:
            watch = JoinWatch(t.overlay)
            watch.fail(ConfigError("broker rank 1 ended (exit code 1) before it joined "
                                   "the instance"))
            watch.fail(ConfigError("a second failure is ignored"))
            with pytest.raises(ConfigError, match="^broker rank 1 ended"):
                await asyncio.wait_for(watch.wait(60.0), 10.0)

    asyncio.run(main())


def test_test_size_broker_that_ends_before_joining_fails_the_start():
    """A forked broker that cannot start (its rundir is taken by a file) ends the
    start at once with one line naming the rank, beside the broker's own line."""
    with tempfile.TemporaryDirectory() as rundir:
        (Path(rundir) / "2").write_text("")
        res = subprocess.run([*STRATO, "start", "--test-size=4", f"--rundir={rundir}",
                              "echo", "never"], capture_output=True, text=True, timeout=60,
                             env={k: v for k, v in os.environ.items() if k != "STRATO_URI"})
    assert res.returncode == 1
    assert res.stdout == ""
    assert sorted(res.stderr.splitlines()) == sorted([
        f"strato-broker[2]: cannot use rundir {rundir}/2: File exists",
        "strato-start: broker rank 2 ended (exit code 1) before it joined the instance"])
