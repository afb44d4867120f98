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
        self.sock = sock
        sock.setblocking(False)
        self.fd = sock.fileno()
        self.loop = asyncio.get_running_loop()
        self.handlers: dict[str, Callable[[Incoming], None]] = {}
        self.waiting: dict[int, asyncio.Future] = {}
        self.tag = 0
        self.rbuf = bytearray()
        self.wbuf = bytearray()
        self.on_lost = on_lost
        self.loop.add_reader(self.fd, self._readable)

    def serve(self, topic: str, handler: Callable[[Incoming], None]) -> None:
        self.handlers[topic] = handler

    def _out(self, payload: bytes) -> None:
        data = len(payload).to_bytes(4, "little") + payload
        if self.wbuf:
            self.wbuf += data
            return
        try:
            n = self.sock.send(data)
        except BlockingIOError:
            n = 0
        except OSError:
            return  # the broker is gone: the reader sees it
        if n < len(data):
            self.wbuf += data[n:]
            self.loop.add_writer(self.fd, self._writable)

    def _writable(self) -> None:
        try:
            n = self.sock.send(self.wbuf)
        except BlockingIOError:
            return
        except OSError:
            n = len(self.wbuf)
        del self.wbuf[:n]
        if not self.wbuf:
            self.loop.remove_writer(self.fd)

    async def rpc(self, topic: str, body: object = None) -> object:
        self.tag += 1
        fut = self.loop.create_future()
        self.waiting[self.tag] = fut
        self._out(proto.request(topic, self.tag, body))
        return await fut

    def send(self, topic: str, body: object = None) -> None:
        """A one-way request: the broker sends no answer."""
        self._out(proto.request(topic, 0, body, proto.FLAG_NORESPONSE))

    def _readable(self) -> None:
        try:
            data = self.sock.recv(1 << 18)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.close()
            self.on_lost()
            return
        buf = self.rbuf
        buf += data
        pos = 0
        while len(buf) - pos >= 4:
            size = int.from_bytes(buf[pos:pos + 4], "little")
            if len(buf) - pos - 4 < size:
                break
            self._message(bytes(buf[pos + 4:pos + 4 + size]))
            pos += 4 + size
        del buf[:pos]

    def _message(self, payload: bytes) -> None:
        try:
            msg = proto.decode(payload)
        except Exception:
            log.warning("dropped a malformed message from the broker")
            return
        if msg[0] == proto.RESP:
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

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            self.loop.remove_reader(self.fd)
            if self.wbuf:
                self.loop.remove_writer(self.fd)
            self.sock.close()
        for fut in self.waiting.values():
            if not fut.done():
                fut.set_exception(RPCError("the broker went away", "EHOSTUNREACH"))
        self.waiting.clear()
