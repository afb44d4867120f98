"""The broker: one asyncio event loop that routes requests to services.

Clients connect to a ZeroMQ ROUTER socket bound on ``ipc://<rundir>/local`` (the
rundir is mode 0700, so only the instance owner can connect). A service is a plain
function ``handler(request)`` registered under a topic; it answers with
``request.respond()``/``request.error()`` now or later, and a streaming request
gets any number of ``request.send()`` before its final response. Services in the
broker call each other with `Broker.call` without encoding anything.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import zmq

from strato.core import proto
from strato.core.errors import RPCError

log = logging.getLogger("strato.broker")

Handler = Callable[["Request"], None]


class Request:
    """One request being served: its topic, body and the way back to its sender."""

    __slots__ = ("topic", "body", "tag", "sender", "streaming", "broker", "local", "on_cancel",
                 "done")

    def __init__(self, broker: Broker, topic: str, body: object, tag: int, sender: bytes | None,
                 streaming: bool, local: object = None) -> None:
        self.broker = broker
        self.topic = topic
        self.body = body
        self.tag = tag
        self.sender = sender
        self.streaming = streaming
        self.local = local
        self.on_cancel: Callable[[], None] | None = None
        self.done = False

    def send(self, body: object) -> None:
        """Send one intermediate response of a streaming request."""
        if self.done or not self.streaming:
            return
        if self.local is not None:
            self.local.put_nowait((body, None, True))
        else:
            self.broker._send(self.sender, proto.response(self.tag, body, None, True))

    def respond(self, body: object = None) -> None:
        """Send the final response."""
        self._finish(body, None)

    def error(self, message: str, errnum: str = "EINVAL") -> None:
        """Fail the request with a one-line message."""
        self._finish(errnum, message)

    def _finish(self, body: object, err: str | None) -> None:
        if self.done:
            return
        self.done = True
        if self.streaming:
            self.broker._streams.pop((self.sender, self.tag), None)
        local = self.local
        if local is None:
            self.broker._send(self.sender, proto.response(self.tag, body, err, False))
        elif isinstance(local, asyncio.Future):
            if not local.done():
                if err is None:
                    local.set_result(body)
                else:
                    local.set_exception(RPCError(err, body if isinstance(body, str) else "EINVAL"))
        else:
            local.put_nowait((body, err, False))


class Broker:
    """Routes requests from clients and from in-broker callers to services."""

    def __init__(self) -> None:
        self.services: dict[str, Handler] = {}
        self._streams: dict[tuple, Request] = {}
        self._sock: zmq.Socket | None = None
        self._fd: int | None = None
        self._check_scheduled = False
        self.register("broker.cancel", self._cancel_stream)
        self.register("broker.ping", lambda req: req.respond(req.body))

    def register(self, topic: str, handler: Handler) -> None:
        """Register `handler` as the service answering `topic`."""
        if topic in self.services:
            raise ValueError(f"service {topic} is registered twice")
        self.services[topic] = handler

    def bind(self, endpoint: str) -> None:
        """Start listening for clients on `endpoint` (``ipc://...``)."""
        sock = zmq.Context.instance().socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, 0)
        sock.setsockopt(zmq.RCVHWM, 0)
        sock.bind(endpoint)
        self._sock = sock
        self._loop = asyncio.get_running_loop()
        self._fd = sock.getsockopt(zmq.FD)
        self._loop.add_reader(self._fd, self._request_drain)

    def close(self) -> None:
        if self._sock is not None:
            self._loop.remove_reader(self._fd)
            self._sock.close(0)
            self._sock = None

    def _send(self, ident: bytes | None, payload: bytes) -> None:
        if self._sock is None or ident is None:
            return
        try:
            self._sock.send_multipart((ident, payload), flags=zmq.NOBLOCK, copy=False)
        except zmq.ZMQError as exc:  # the client went away; nothing to deliver to
            log.debug("send to client failed: %s", exc)
        # ZMQ_FD is edge-triggered and a send can consume the edge of a message that
        # arrived meanwhile: look at the socket again at the end of this turn.
        self._request_drain()

    def _request_drain(self) -> None:
        if not self._check_scheduled:
            self._check_scheduled = True
            self._loop.call_soon(self._drain)

    def _drain(self) -> None:
        """Read the messages queued on the socket, then handle them.

        Reading only ever happens here, as a callback queued behind whatever the
        previous batch deferred to the end of its turn (a scheduling pass, a KVS
        flush): so a request a client sends after reading an answer always sees
        the work that answer's request deferred. Everything queued is read first
        and only then dispatched, for the same reason. If anything was read, look
        again afterwards (ZMQ_FD is edge-triggered).
        """
        self._check_scheduled = False
        sock = self._sock
        if sock is None:
            return
        batch = []
        while len(batch) < 1024:
            try:
                batch.append(sock.recv_multipart(flags=zmq.NOBLOCK))
            except zmq.Again:
                break
        for frames in batch:
            self._dispatch_frames(frames)
        if batch and self._sock is not None:
            self._request_drain()

    def _dispatch_frames(self, frames: list[bytes]) -> None:
        try:
            kind, topic, tag, body, flags = proto.decode(frames[-1])
        except Exception:  # malformed message from a client: drop it
            log.warning("dropped malformed message")
            return
        if kind != proto.REQ or not isinstance(topic, str) or not isinstance(tag, int) \
                or not isinstance(flags, int) or len(frames) != 2:
            log.warning("dropped malformed request")
            return
        ident = frames[0]
        streaming = bool(flags & proto.FLAG_STREAM)
        req = Request(self, topic, body, tag, ident, streaming)
        if streaming:
            self._streams[(ident, tag)] = req
        self._handle(req)

    def _handle(self, req: Request) -> None:
        handler = self.services.get(req.topic)
        if handler is None:
            req.error(f"no service matches {req.topic}", "ENOSYS")
            return
        try:
            handler(req)
        except RPCError as exc:
            req.error(str(exc), exc.errnum)
        except Exception as exc:  # a bug in a service must not take the broker down
            log.exception("service %s failed", req.topic)
            req.error(f"{req.topic}: internal error: {exc}", "EIO")

    def _cancel_stream(self, req: Request) -> None:
        target = self._streams.pop((req.sender, req.body), None)
        if target is not None:
            target.done = True
            if target.on_cancel:
                target.on_cancel()
        req.respond()

    async def call(self, topic: str, body: object = None) -> object:
        """Call a service inside this broker; returns its response body."""
        fut = asyncio.get_running_loop().create_future()
        self._handle(Request(self, topic, body, 0, None, False, fut))
        return await fut

    async def call_stream(self, topic: str, body: object = None) -> AsyncIterator[object]:
        """Call a streaming service inside this broker; yields each response body."""
        queue: asyncio.Queue = asyncio.Queue()
        req = Request(self, topic, body, 0, None, True, queue)
        self._handle(req)
        try:
            while True:
                rbody, err, more = await queue.get()
                if err is not None:
                    raise RPCError(err, rbody if isinstance(rbody, str) else "EINVAL")
                if not more:
                    return
                yield rbody
        finally:
            if not req.done:
                req.done = True
                if req.on_cancel:
                    req.on_cancel()
