"""A process's two-way link to the broker that started it: make requests, serve them.

The shell host is started by its broker with one end of a socketpair (``--fd``);
over it the host makes requests (``rpc``, one-way ``send``) and serves the
requests the broker forwards to the service it registered with ``service.add``.
Messages are those of `strato.core.proto`, each framed by a 4-byte length, as
`strato.core.broker.Link` reads them on the broker's side. No threads: reads
and writes are driven by the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

from strato.core import proto
from strato.core.errors import RPCError
from strato.core.framing import FramedStream

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
    """One end of a broker link, read and written from the event loop."""

    def __init__(self, sock: socket.socket, on_lost: Callable[[], None]) -> None:
        self.loop = asyncio.get_running_loop()
        self.handlers: dict[str, Callable[[Incoming], None]] = {}
        self.waiting: dict[int, asyncio.Future] = {}
        self.tag = 0
        self.on_lost = on_lost
        self.stream = FramedStream(sock, self._message, self._lost)
        self._out = self.stream.write
        #: send a message already encoded (`strato.core.proto`), e.g. one kept for replay
        self.write_encoded = self.stream.write
        #: send an encoded message at once (`FramedStream.write_now`)
        self.write_now = self.stream.write_now

    def serve(self, topic: str, handler: Callable[[Incoming], None]) -> None:
        self.handlers[topic] = handler

    async def rpc(self, topic: str, body: object = None) -> object:
        self.tag += 1
        fut = self.loop.create_future()
        self.waiting[self.tag] = fut
        self._out(proto.request(topic, self.tag, body))
        return await fut

    def send(self, topic: str, body: object = None) -> None:
        """A one-way request: the broker sends no answer."""
        self._out(proto.request(topic, 0, body, proto.FLAG_NORESPONSE))

    def _message(self, payload: bytes) -> None:
        try:
            msg = proto.decode(payload)
        except Exception:
            msg = None
        kind = msg[0] if isinstance(msg, list) and msg else None
        if kind == proto.RESP:
            malformed = len(msg) != 5 or not proto.is_int(msg[1])
        else:
            malformed = kind != proto.REQ or proto.request_problem(msg) is not None
        if malformed:
            log.warning("dropped a malformed message from the broker")
            return
        if kind == proto.RESP:
            _, tag, body, err, _more = msg
            fut = self.waiting.pop(tag, None)
            if fut is not None and not fut.done():
                if err is None:
                    fut.set_result(body)
                else:
                    fut.set_exception(RPCError(err, body if isinstance(body, str) else "EINVAL"))
            return
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

    def _lost(self) -> None:
        for fut in self.waiting.values():
            if not fut.done():
                fut.set_exception(RPCError("the broker went away", "EHOSTUNREACH"))
        self.waiting.clear()
        self.on_lost()

    def close(self) -> None:
        """Close the link (the broker sees its end of file)."""
        self.stream.close()
