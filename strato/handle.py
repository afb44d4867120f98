"""Handles: a client's connection to an instance (`Handle`, synchronous; the
asyncio flavour is `strato.async_handle.AsyncHandle`).

One Unix stream socket per handle, to the broker's ``local`` socket (a URI
``local://PATH``), carrying length-framed messages (`strato.core.framing`);
requests carry a tag, and responses are matched to their request by it, so many
requests can be in flight at once (the bulk paths send a batch, then read the
answers). ``STRATO_URI`` selects the instance when no URI is given.
"""

from __future__ import annotations

# The C socket type, not socket.py's wrapper of it: that module costs a short command
# about 3 ms to import (enum conversions, selectors) and adds nothing a Unix stream
# socket needs here.
import _socket
import errno
import os
import select
import time
from collections import deque
from collections.abc import Iterator

from strato.core import proto
from strato.core.errors import NoInstanceError, RPCError

NO_INSTANCE = "no strato instance (STRATO_URI is not set); start one with 'strato start'"


def resolve_uri(uri: str | None) -> str:
    uri = uri or os.environ.get("STRATO_URI")
    if not uri:
        raise NoInstanceError(NO_INSTANCE)
    return uri


def uri_path(uri: str) -> str:
    """The socket path of a ``local://PATH`` URI (NoInstanceError for another kind)."""
    if not uri.startswith("local://"):
        raise NoInstanceError(f"unsupported URI '{uri}' (a local://PATH URI is needed)")
    return uri[len("local://"):]


def connect(uri: str | None) -> tuple[str, _socket.socket]:
    """``(uri, socket)``: a blocking stream socket connected to a live instance.

    Shared by both handle flavours; NoInstanceError, naming the reason, if no
    broker listens at the URI."""
    uri = resolve_uri(uri)
    path = uri_path(uri)
    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        s.connect(path)
    except OSError as exc:
        s.close()
        raise _unreachable(uri, exc) from None
    return uri, s


def _unreachable(uri: str, exc: OSError) -> NoInstanceError:
    if isinstance(exc, FileNotFoundError):
        return NoInstanceError(f"no instance at {uri} (it is not running)")
    if isinstance(exc, ConnectionRefusedError):
        return NoInstanceError(f"no instance at {uri} (it has stopped)")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return NoInstanceError(f"cannot connect to {uri}: permission denied")
    return NoInstanceError(f"cannot connect to {uri}: {exc.strerror}")


def gone(uri: str) -> NoInstanceError:
    """The error of a handle whose broker closed the connection."""
    return NoInstanceError(f"no instance at {uri} (it has stopped)")


def split_frames(buf: bytearray) -> list[bytes]:
    """Take the whole messages off the front of `buf`; a garbage length raises
    NoInstanceError."""
    out = []
    try:
        while (payload := proto.take_frame(buf)) is not None:
            out.append(payload)
    except proto.FrameTooLarge as exc:
        raise NoInstanceError(f"the instance sent a frame of {exc.size} bytes") from None
    return out


frame = proto.frame


def too_large(topic: str, size: int, limit: int) -> RPCError:
    """The error for a request the broker would not read (over its size limit)."""
    return RPCError(f"{topic}: a request of {size} bytes is over the instance's message size "
                    f"limit of {limit} bytes (broker.message-size-limit)", "E2BIG")


LIMIT_ATTR = {"name": "broker.message-size-limit"}


def _raise(body: object, err: str) -> None:
    raise RPCError(err, body if isinstance(body, str) else "EINVAL")


class Handle:
    """A synchronous connection to an instance."""

    def __init__(self, uri: str | None = None) -> None:
        self.uri, self._sock = connect(uri)
        self._rbuf = bytearray()
        self._tag = 0
        self._inbox: dict[int, deque] = {}
        self._size_limit: int | None = None  # the broker's, asked for when first needed

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Handle:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _write(self, payload: bytes) -> None:
        try:
            self._sock.sendall(frame(payload))
        except OSError:
            raise gone(self.uri) from None

    def send(self, topic: str, body: object = None, stream: bool = False,
             nodeid: int = proto.NODEID_ANY) -> int:
        """Send a request without waiting; returns its tag for `recv`.

        `nodeid` addresses a broker rank (or ``proto.NODEID_UPSTREAM``); the
        default is the nearest broker that has the service."""
        tag = self._tag + 1
        data = proto.request(topic, tag, body, proto.FLAG_STREAM if stream else 0, nodeid,
                             small=True)
        if len(data) > proto.MIN_MESSAGE_SIZE_LIMIT:  # the broker would close the connection
            limit = self._message_size_limit()
            if len(data) > limit:
                raise too_large(topic, len(data), limit)
        self._tag = tag
        self._inbox[tag] = deque()
        self._write(data)
        return tag

    def _message_size_limit(self) -> int:
        if self._size_limit is None:
            try:
                self._size_limit = int(self.rpc("attr.get", LIMIT_ATTR)["value"])
            except (RPCError, KeyError, TypeError, ValueError):  # a broker that has none
                self._size_limit = proto.DEFAULT_MESSAGE_SIZE_LIMIT
        return self._size_limit

    def recv(self, tag: int, timeout: float | None = None) -> tuple[object, str | None, bool]:
        """The next ``(body, error, more)`` for request `tag`, waiting if needed.

        Raises TimeoutError if `timeout` seconds pass first.
        """
        box = self._inbox[tag]
        deadline = None if timeout is None else time.monotonic() + timeout
        while not box:
            self._pump(deadline)
        item = box.popleft()
        if not item[2]:
            del self._inbox[tag]
        return item

    def _pump(self, deadline: float | None = None) -> None:
        """Wait for what the broker sends next (until `deadline`) and sort it by tag."""
        if deadline is not None:
            wait = deadline - time.monotonic()
            poller = select.poll()  # not select(): a process may hold fds past 1024
            poller.register(self._sock, select.POLLIN)
            if wait <= 0 or not poller.poll(wait * 1000):
                raise TimeoutError("timed out")
        try:
            data = self._sock.recv(1 << 18)
        except OSError:
            data = b""
        if not data:
            raise gone(self.uri)
        self._rbuf += data
        for payload in split_frames(self._rbuf):
            _, tag, body, err, more = proto.decode_small(payload)
            box = self._inbox.get(tag)
            if box is not None:
                box.append((body, err, more))

    def rpc(self, topic: str, body: object = None, nodeid: int = proto.NODEID_ANY) -> object:
        """Call a service (on broker rank `nodeid`) and return its response body;
        RPCError on error."""
        rbody, err, _ = self.recv(self.send(topic, body, nodeid=nodeid))
        if err is not None:
            _raise(rbody, err)
        return rbody

    def rpc_stream(self, topic: str, body: object = None) -> Iterator[object]:
        """Call a streaming service; yields each response until the last one."""
        tag = self.send(topic, body, stream=True)
        finished = False
        try:
            while True:
                rbody, err, more = self.recv(tag)
                if err is not None:
                    finished = True
                    _raise(rbody, err)
                if not more:
                    finished = True
                    return
                yield rbody
        finally:
            if not finished:
                self.cancel_stream(tag)

    def cancel_stream(self, tag: int) -> None:
        """Stop a streaming request sent with ``send(..., stream=True)`` before its end.

        The broker drops the stream (and any watch behind it) and the responses still
        in flight are discarded, so the handle stays usable. A stream that already
        ended is left alone.
        """
        if self._inbox.pop(tag, None) is not None and self._sock.fileno() >= 0:
            try:
                self._write(proto.request("broker.cancel", 0, tag, small=True))
            except NoInstanceError:
                pass  # the connection is gone, and every stream on it with it
