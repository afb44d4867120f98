"""The broker: in-process calls (no encoding) and streams, errors as RPCError."""

from __future__ import annotations

import asyncio

import pytest

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
