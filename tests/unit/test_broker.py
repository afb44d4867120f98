"""The broker: in-process calls (no encoding) and streams, errors as RPCError."""

from __future__ import annotations

import asyncio
import socket

import pytest

from strato.core import proto
from strato.core.broker import Broker
from strato.core.errors import RPCError


def test_in_process_call_and_stream():
    async def main():
        b = Broker()
        seen = {}

        def echo(req):
            seen["body"] = req.body
            req.respond({"got": req.body})

        def count(req):
            for i in range(req.body["n"]):
                req.send(i)
            req.respond()

        def broken(req):
            raise RuntimeError("boom")

        b.register("t.echo", echo)
        b.register("t.count", count)
        b.register("t.broken", broken)
        payload = {"obj": object()}  # not encodable: proves nothing is encoded
        assert (await b.call("t.echo", payload))["got"] is payload
        assert [x async for x in b.call_stream("t.count", {"n": 3})] == [0, 1, 2]
        with pytest.raises(RPCError, match="internal error: boom"):
            await b.call("t.broken")
        with pytest.raises(RPCError, match="no service matches t.nope"):
            await b.call("t.nope")
        with pytest.raises(ValueError, match="registered twice"):
            b.register("t.echo", echo)

    asyncio.run(main())


def test_messages_wait_until_the_store_has_saved_what_they_report():
    """With unsaved changes in the store, outgoing messages are held and leave in
    order right after the store's save; with none, they leave at once."""
    events = []

    class Store:
        unsaved = False

        def save(self):
            events.append("save")
            Store.unsaved = False
            return True

    async def main():
        b = Broker()
        b.store = Store()
        b._send_now = lambda ident, payload: events.append(payload)
        b._send(b"c", b"now")
        assert events == [b"now"]
        Store.unsaved = True
        b._send(b"c", b"one")
        Store.unsaved = False  # saved meanwhile: "two" still waits behind "one"
        b._send(b"c", b"two")
        assert events == [b"now"]
        Store.unsaved = True
        await asyncio.sleep(0)
        assert events == [b"now", "save", b"one", b"two"]

    asyncio.run(main())


def test_work_deferred_by_a_links_messages_runs_once_its_read_is_handled():
    """Work deferred by a link's message runs before the link's next message is
    handled, and the work of the last message of a read once the read is handled,
    before what was queued on the event loop meanwhile (not in a callback of its
    own after it); also when a message closed the link."""
    async def main():
        b = Broker()
        loop = asyncio.get_running_loop()
        events = []
        done = loop.create_future()

        def work(req):
            n = req.body["n"]
            events.append(f"handle {n}")
            loop.call_soon(events.append, f"soon {n}")
            b.defer(lambda: events.append(f"deferred {n}"))
            if n == 3:
                b.defer(lambda: done.set_result(None))
                link.close()

        b.register("t.work", work)
        ours, theirs = socket.socketpair()
        link = b.add_link(ours, b"client.1", lambda: None)
        theirs.sendall(b"".join(proto.frame(proto.request("t.work", 0, {"n": n},
                                                          proto.FLAG_NORESPONSE))
                                for n in (1, 2)))
        while len(events) < 6:
            await asyncio.sleep(0)
        assert events == ["handle 1", "deferred 1", "handle 2", "deferred 2",
                          "soon 1", "soon 2"]
        events.clear()
        theirs.sendall(proto.frame(proto.request("t.work", 0, {"n": 3},
                                                 proto.FLAG_NORESPONSE)))
        await done
        assert events[:2] == ["handle 3", "deferred 3"]
        theirs.close()

    asyncio.run(main())


def test_work_deferred_after_a_read_that_ran_deferred_work_itself_still_runs():
    """A handler may run the deferred work itself (exec-local does, to save its
    effects with the shell host's sequence); what that work defers, and what is
    deferred later outside any read, still runs (it once waited for the next
    message of some link)."""
    async def main():
        b = Broker()
        loop = asyncio.get_running_loop()
        events = []
        later = loop.create_future()

        def work(req):
            b.defer(lambda: b.defer(lambda: events.append("deferred by deferred work")))
            b.run_deferred()
            loop.call_soon(lambda: b.defer(lambda: later.set_result(None)))

        b.register("t.work", work)
        ours, theirs = socket.socketpair()
        b.add_link(ours, b"client.1", lambda: None)
        theirs.sendall(proto.frame(proto.request("t.work", 0, {}, proto.FLAG_NORESPONSE)))
        await asyncio.wait_for(later, 10)  # a failure, not a wait: it runs at once
        assert events == ["deferred by deferred work"]
        theirs.close()

    asyncio.run(main())


def test_listen_replaces_a_dead_brokers_socket_but_not_a_live_one(tmp_path):
    """A broker killed with SIGKILL leaves its socket file; the next broker on the same
    rundir takes the path over. A path a live broker listens on is refused."""
    import errno
    import socket

    path = str(tmp_path / "local")
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(path)
    dead.close()  # the file stays, nothing accepts on it

    async def main():
        b = Broker()
        b.listen(path)
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.connect(path)  # the new broker accepts there
        probe.close()
        with pytest.raises(OSError) as info:
            Broker().listen(path)
        assert info.value.errno == errno.EADDRINUSE
        b.close()

    asyncio.run(main())
