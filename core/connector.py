"""A process's two-way connection to its broker: make requests and serve them.

The shell host (and any other process that provides a service, e.g. a scheduler
run elsewhere) connects to the broker's local socket like a client, registers
its service with ``service.add``, and from then on receives requests for it on
the same socket. `Connector` does both halves on an asyncio loop without threads:
``rpc``/``send`` out, handlers in. Messages are those of `strato.core.proto`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import zmq

from strato.core import proto
from strato.core.errors import RPCError

log = logging.getLogger("strato.connector")


class Incoming:
    """A request this process serves; ``respond``/``error`` answer it."""

    __slots__ = ("conn", "topic", "tag", "body", "noresponse")

    def __init__(self, conn: Connector, topic: str, tag: int, body: object,
                 noresponse: bool) -> None:
        self.conn = conn
        self.topic = topic
        self.tag = tag
        self.body = body
        self.noresponse = noresponse

    def respond(self, body: object = None) -> None:
        if not self.noresponse:
            self.conn._out(proto.response(self.tag, body, None, False))

    def error(self, message: str, errnum: str = "EINVAL") -> None:
        if self.noresponse:
            log.warning("%s: %s", self.topic, message)
        else:
            self.conn._out(proto.response(self.tag, errnum, message, False))


class Connector:
    """A DEALER connection to a broker, read from the event loop (module docstring)."""

    def __init__(self, endpoint: str, on_lost: Callable[[], None] | None = None) -> None:
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDHWM, 0)
        self.sock.setsockopt(zmq.RCVHWM, 0)
        self.sock.connect(endpoint)
        self.loop = asyncio.get_running_loop()
        self.handlers: dict[str, Callable[[Incoming], None]] = {}
        self.waiting: dict[int, asyncio.Future] = {}
        self.tag = 0
        self.fd = self.sock.getsockopt(zmq.FD)
        self.loop.add_reader(self.fd, self._drain)
        self.on_lost = on_lost

    def serve(self, topic: str, handler: Callable[[Incoming], None]) -> None:
        self.handlers[topic] = handler

    def _out(self, payload: bytes) -> None:
        self.sock.send(payload, copy=False)
        self.loop.call_soon(self._drain)  # a send can consume the FD's edge

    async def rpc(self, topic: str, body: object = None) -> object:
        self.tag += 1
        fut = self.loop.create_future()
        self.waiting[self.tag] = fut
        self._out(proto.request(topic, self.tag, body))
        return await fut

    def send(self, topic: str, body: object = None) -> None:
        """A one-way request: the broker sends no answer."""
        self._out(proto.request(topic, 0, body, proto.FLAG_NORESPONSE))

    def _drain(self) -> None:
        sock = self.sock
        if sock.closed:
            return
        while sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            try:
                msg = proto.decode(sock.recv(zmq.NOBLOCK))
            except zmq.Again:
                return
            except Exception:
                log.warning("dropped a malformed message from the broker")
                continue
            if msg[0] == proto.RESP:
                _, tag, body, err, _more = msg
                fut = self.waiting.pop(tag, None)
                if fut is not None and not fut.done():
                    if err is None:
                        fut.set_result(body)
                    else:
                        fut.set_exception(RPCError(err, body if isinstance(body, str)
                                                   else "EINVAL"))
            else:
                self._dispatch(msg)

    def _dispatch(self, msg: list) -> None:
        _, topic, tag, body, flags, *_ = msg
        req = Incoming(self, topic, tag, body, bool(flags & proto.FLAG_NORESPONSE))
        handler = self.handlers.get(topic)
        if handler is None:
            req.error(f"no service matches {topic}", "ENOSYS")
            return
        try:
            handler(req)
        except RPCError as exc:
            req.error(str(exc), exc.errnum)
        except Exception as exc:
            log.exception("%s failed", topic)
            req.error(f"{topic}: internal error: {exc}", "EIO")

    def close(self) -> None:
        if not self.sock.closed:
            self.loop.remove_reader(self.fd)
            self.sock.close(0)
