"""Length-framed messages over a non-blocking stream socket, driven by an event loop.

The broker and the shell host it starts talk over a socketpair: each message of
`strato.core.proto` is sent as a 4-byte little-endian length and the payload.
`FramedStream` is both ends' transport (`strato.core.broker.Link` on the
broker's side, `strato.core.connector.Connector` on the host's). The messages
written in one turn of the event loop go out together at the end of the turn, in
one system call: each call wakes the peer process, and a shell host reporting a
job's events and its KVS appends, or a broker answering several requests, would
otherwise wake the other side once per message. Writes are buffered further only
when the socket is full; reads are split into whole messages; end of file (or a
garbage length) closes it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

from strato.core.proto import MAX_FRAME, FrameTooLarge, take_frame

log = logging.getLogger("strato.framing")

#: bytes asked of one read: a buffer under glibc's mmap threshold (128 KiB) comes from
#: the heap; a larger one was an mmap, an mremap and a munmap around every read
READ_SIZE = 1 << 16


class FramedStream:
    """One end of a framed stream (module docstring)."""

    def __init__(self, sock: socket.socket, on_message: Callable[[bytes], None],
                 on_close: Callable[[], None], max_frame: int = MAX_FRAME,
                 name: str = "a stream",
                 on_read_end: Callable[[], None] | None = None) -> None:
        self.sock = sock
        self.max_frame = max_frame  # a longer frame closes the stream before it is read
        self.name = name  # who is at the other end, for the log
        sock.setblocking(False)
        self.fd = sock.fileno()
        self.on_message = on_message
        self.on_close = on_close
        #: called once the messages of one read are handled, however the read ends
        #: (the broker runs the work they deferred: `strato.core.broker.Link`)
        self.on_read_end = on_read_end
        self.rbuf = bytearray()
        self.wbuf = bytearray()
        self.pending: list[bytes] = []  # written this turn, not yet sent
        self._drained: asyncio.Future | None = None
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(self.fd, self._readable)

    @property
    def closed(self) -> bool:
        return self.sock.fileno() < 0

    def write(self, payload: bytes) -> None:
        """Queue one message; it leaves at the end of this turn of the loop."""
        if not self.pending:
            self.loop.call_soon(self.flush)
        self.pending.append(len(payload).to_bytes(4, "little"))
        self.pending.append(payload)

    def write_now(self, payload: bytes) -> None:
        """Send one message now, after what this turn wrote before it: for a writer
        that batches its messages to the end of a turn itself (the shell host), to
        which the end-of-turn flush would add one more turn of the loop."""
        frame = len(payload).to_bytes(4, "little") + payload
        if self.pending:
            self.pending.append(frame)
            self.flush()
        else:
            self._send(frame)

    def flush(self) -> None:
        """Send what was written this turn (a no-op when nothing is queued)."""
        if self.pending:
            data = b"".join(self.pending)
            self.pending.clear()
            self._send(data)

    def _send(self, data: bytes) -> None:
        if self.closed:
            return
        if self.wbuf:
            self.wbuf += data
            return
        try:
            n = self.sock.send(data)
        except BlockingIOError:
            n = 0
        except OSError:
            return  # the peer is gone: the reader sees the end of file
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
            if self._drained is not None and not self._drained.done():
                self._drained.set_result(None)

    async def drained(self) -> None:
        """Return once everything written so far has left (or the stream closed): a
        writer of much data (a shell host replaying its spool) waits on this so
        that its buffer stays small."""
        await asyncio.sleep(0)  # this turn's writes are flushed
        while self.wbuf and not self.closed:
            self._drained = self.loop.create_future()
            await self._drained

    def _readable(self) -> None:
        try:
            data = self.sock.recv(READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.close()
            return
        buf = self.rbuf
        buf += data
        try:
            while True:
                try:
                    payload = take_frame(buf, self.max_frame)
                except FrameTooLarge as exc:
                    log.warning("closed the connection of %s: %s", self.name, exc)
                    self.close()
                    return
                if payload is None:
                    return
                try:
                    self.on_message(payload)
                except Exception:  # a message is handled once, whatever its handler does
                    log.exception("handling a framed message failed")
                if self.closed:
                    return
        finally:
            if self.on_read_end is not None:
                self.on_read_end()

    def close(self) -> None:
        """Stop reading and writing, close the socket and tell the owner (once)."""
        if self.closed:
            return
        self.flush()  # what was written before closing still goes out if it can
        self.loop.remove_reader(self.fd)
        if self.wbuf:
            self.loop.remove_writer(self.fd)
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self.sock.close()
        self.on_close()
