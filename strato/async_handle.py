"""The asyncio flavour of a handle: ``await h.rpc(...)``, ``async for`` streams.

Kept apart from `strato.handle` so that synchronous clients (every CLI command)
never import asyncio. The same Unix stream socket and framed messages, read and
written by the event loop (`strato.core.framing.FramedStream`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from strato.core import proto
from strato.core.framing import FramedStream
from strato.handle import _raise, connect, gone


class AsyncHandle:
    """An asyncio connection to an instance: ``await h.rpc(...)``.

    Made inside the event loop that uses it (the connection is read by that loop).
    """

    def __init__(self, uri: str | None = None) -> None:
        self.uri, sock = connect(uri)
        self._stream = FramedStream(sock, self._message, self._lost)
        self._tag = 0
        self._waiters: dict[int, asyncio.Queue] = {}

    def close(self) -> None:
        self._stream.close()

    async def __aenter__(self) -> AsyncHandle:
        return self

    async def __aexit__(self, *exc) -> None:
        self.close()

    def _message(self, payload: bytes) -> None:
        _, tag, body, err, more = proto.decode(payload)
        q = self._waiters.get(tag)
        if q is not None:
            q.put_nowait((body, err, more))

    def _lost(self) -> None:
        """The broker closed the connection (or this handle did): fail every waiter."""
        failure = gone(self.uri)
        for q in self._waiters.values():
            q.put_nowait(failure)

    async def _send(self, topic: str, body: object, stream: bool) -> asyncio.Queue:
        if self._stream.closed:
            raise gone(self.uri)
        self._tag += 1
        # Encoded first: a body msgpack cannot encode raises here and leaves no waiter.
        msg = proto.request(topic, self._tag, body, proto.FLAG_STREAM if stream else 0)
        q: asyncio.Queue = asyncio.Queue()
        self._waiters[self._tag] = q
        self._stream.write(msg)
        return q

    async def rpc(self, topic: str, body: object = None) -> object:
        tag = self._tag + 1
        q = await self._send(topic, body, False)
        try:
            item = await q.get()
        finally:
            self._waiters.pop(tag, None)
        if isinstance(item, Exception):
            raise item
        rbody, err, _ = item
        if err is not None:
            _raise(rbody, err)
        return rbody

    async def rpc_stream(self, topic: str, body: object = None,
                         final: bool = False) -> AsyncIterator[object]:
        """Call a streaming service; yields each response until the last one.

        With `final`, the body of the last response is yielded too (for services
        whose last answer carries data, like ``job-manager.wait``).
        """
        tag = self._tag + 1
        q = await self._send(topic, body, True)
        finished = False
        try:
            while True:
                item = await q.get()
                if isinstance(item, Exception):
                    finished = True
                    raise item
                rbody, err, more = item
                if err is not None:
                    finished = True
                    _raise(rbody, err)
                if not more:
                    finished = True
                    if final:
                        yield rbody
                    return
                yield rbody
        finally:
            self._waiters.pop(tag, None)
            if not finished and not self._stream.closed:  # left early: drop the stream
                self._stream.write(proto.request("broker.cancel", 0, tag))
