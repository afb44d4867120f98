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
import zmq
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
        self.stops: dict[int, asyncio.Queue] = {}  # each child's on_stop reasons

    def stopped(self) -> dict[int, list[str | None]]:
        """Why each child was told to stop so far (by rank)."""
        return {r: list(q._queue) for r, q in self.stops.items()}

    def start_child(self, rank: int, endpoint: str | None = None) -> Overlay:
        """Start broker `rank`, its parent rank 0 (at `endpoint` if given)."""
        boot = for_test(self.size, {}, self.cert, "", rank=rank,
                        parent_endpoint=endpoint or self.overlay.endpoint)
        why = self.stops[rank] = asyncio.Queue()
        child = Overlay(Broker(rank, self.size), boot, on_stop=why.put_nowait)
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
        # the context ends with its sockets, so that the next tree's overlay can bind
        # the ZAP handler's endpoint again (a closed socket frees it only later)
        zmq.Context.instance().destroy(linger=0)


def test_join_watch_returns_once_every_broker_joined():
    async def main() -> None:
        async with tree(3) as t:
            watch = JoinWatch(t.overlay)
            t.start_child(2)
            t.start_child(1)
            await watch.wait(30.0)
            assert watch.joined == {1, 2}
            assert t.overlay.hello_handlers == [], "a finished wait leaves no handler"
            assert t.stopped() == {1: [], 2: []}

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


class CuttingProxy:
    """A tcp relay between a child and its parent that cuts the connection (both
    ends, at once, as a failing network would) the first time the parent sends
    something once `cut_when()` is true; what it was sending is lost."""

    def __init__(self, parent_endpoint: str, cut_when) -> None:
        self.parent = parent_endpoint.removeprefix("tcp://").rsplit(":", 1)
        self.cut_when = cut_when
        self.cut = 0  # how many bytes from the parent the cut lost
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return f"tcp://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _relay(self, child_r: asyncio.StreamReader, child_w: asyncio.StreamWriter) -> None:
        parent_r, parent_w = await asyncio.open_connection(*self.parent)

        async def pump(r: asyncio.StreamReader, w: asyncio.StreamWriter, down: bool) -> None:
            while data := await r.read(65536):
                if down and not self.cut and self.cut_when():
                    self.cut = len(data)
                    child_w.transport.abort()
                    parent_w.transport.abort()
                    return
                w.write(data)

        await asyncio.gather(pump(child_r, parent_w, False), pump(parent_r, child_w, True),
                             return_exceptions=True)

    def close(self) -> None:
        self.server.close()


def test_join_answer_lost_to_a_cut_connection_ends_the_broker():
    """The parent accepted rank 1, and its answer is lost with the connection: rank 1
    ends saying it lost its parent (ZeroMQ would reconnect, but a broker does not
    outlive its parent's connection), rather than living on with everything it sends
    up held for an answer that never comes; once it is gone rank 0 counts it lost."""
    async def main() -> None:
        async with tree(2) as t:
            proxy = CuttingProxy(t.overlay.endpoint,
                                 cut_when=lambda: t.overlay.state[1] == "online")
            lost = asyncio.get_running_loop().create_future()
            t.overlay.lost_handlers.append(lost.set_result)
            child = t.start_child(1, endpoint=await proxy.start())
            try:
                why = await asyncio.wait_for(t.stops[1].get(), 30)
                assert proxy.cut > 0, "the parent's answer was lost with the connection"
                assert why == "lost the connection to its parent (rank 0)"
                assert child._held_up, "it never had the answer"
                child.close()  # as its broker does when told to stop
                assert await asyncio.wait_for(lost, 30) == [1]
            finally:
                proxy.close()

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
