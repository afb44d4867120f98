"""The asyncio flavour of a handle: ``await h.rpc(...)``, ``async for`` streams.

Kept apart from `strato.handle` so that synchronous clients (every CLI command)
never import asyncio or zmq.asyncio.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import zmq
import zmq.asyncio

from strato.core import proto
from strato.core.errors import NoInstanceError
from strato.handle import _raise, check_alive, connect, socket_identity


class AsyncHandle:
    """An asyncio connection to an instance: ``await h.rpc(...)``."""

    def __init__(self, uri: str | None = None) -> None:
        self.uri, self._sock = connect(zmq.asyncio.Context.instance(), uri)
        self._identity = socket_identity(self.uri)
        self._tag = 0
        self._waiters: dict[int, asyncio.Queue] = {}
        self._reader: asyncio.Task | None = None

    def close(self) -> None:
        if self._reader:
            self._reader.cancel()
        self._sock.close(0)

    async def __aenter__(self) -> AsyncHandle:
        return self

    async def __aexit__(self, *exc) -> None:
        self.close()

    async def _read(self) -> None:
        """Deliver responses by tag; if the broker dies, fail every waiter."""
        try:
            while True:
                if not await self._sock.poll(1000):
                    if self._waiters:
                        check_alive(self.uri, self._identity)
                    continue
                data = await self._sock.recv()
                _, tag, body, err, more = proto.decode(data)
                q = self._waiters.get(tag)
                if q is not None:
                    q.put_nowait((body, err, more))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failure = exc if isinstance(exc, NoInstanceError) else \
                NoInstanceError(f"connection to {self.uri} failed: {exc}")
            for q in self._waiters.values():
                q.put_nowait(failure)

    async def _send(self, topic: str, body: object, stream: bool) -> asyncio.Queue:
        if self._reader is None:
            self._reader = asyncio.get_running_loop().create_task(self._read())
        self._tag += 1
        # Encoded first: a body msgpack cannot encode raises here and leaves no waiter.
        msg = proto.request(topic, self._tag, body, proto.FLAG_STREAM if stream else 0)
        q: asyncio.Queue = asyncio.Queue()
        self._waiters[self._tag] = q
        await self._sock.send(msg)
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
            if not finished:  # left early: tell the broker to drop the stream
                self._sock.send(proto.request("broker.cancel", 0, tag))
