"""Handles: a client's connection to an instance (`Handle`, synchronous; the
asyncio flavour is `strato.async_handle.AsyncHandle`).

One ZeroMQ DEALER socket per handle; requests carry a tag, and responses are
matched to their request by it, so many requests can be in flight at once (the
bulk paths send a batch, then read the answers). ``STRATO_URI`` selects the
instance when no URI is given.
"""

from __future__ import annotations

import errno
import os
import socket
import time
from collections import deque
from collections.abc import Iterator

import zmq

from strato.core import proto
from strato.core.errors import NoInstanceError, RPCError

NO_INSTANCE = "no strato instance (STRATO_URI is not set); start one with 'strato start'"


def resolve_uri(uri: str | None) -> str:
    uri = uri or os.environ.get("STRATO_URI")
    if not uri:
        raise NoInstanceError(NO_INSTANCE)
    return uri


def check_alive(uri: str) -> None:
    """Raise NoInstanceError unless a broker is listening at a local URI."""
    if not uri.startswith("local://"):
        return
    path = uri[len("local://"):]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
    except FileNotFoundError:
        raise NoInstanceError(f"no instance at {uri} (it is not running)") from None
    except ConnectionRefusedError:
        raise NoInstanceError(f"no instance at {uri} (it has stopped)") from None
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise NoInstanceError(f"cannot connect to {uri}: permission denied") from None
        raise NoInstanceError(f"cannot connect to {uri}: {exc.strerror}") from None
    finally:
        s.close()


def _raise(body: object, err: str) -> None:
    raise RPCError(err, body if isinstance(body, str) else "EINVAL")


def too_large(topic: str, size: int, limit: int) -> RPCError:
    """The error for a request the broker would not take (over its size limit)."""
    return RPCError(f"{topic}: a request of {size} bytes is over the instance's message size "
                    f"limit of {limit} bytes (broker.message-size-limit)", "E2BIG")


LIMIT_ATTR = {"name": "broker.message-size-limit"}


def connect(context, uri: str | None):
    """``(uri, socket)``: a DEALER socket of `context` connected to a live instance.

    Shared by both handle flavours; NoInstanceError if there is none at the URI.
    """
    uri = resolve_uri(uri)
    check_alive(uri)
    try:
        endpoint = proto.uri_to_endpoint(uri)
    except ValueError as exc:
        raise NoInstanceError(str(exc)) from None
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 0)
    sock.setsockopt(zmq.RCVHWM, 0)
    sock.connect(endpoint)
    return uri, sock


class Handle:
    """A synchronous connection to an instance."""

    def __init__(self, uri: str | None = None) -> None:
        self.uri, self._sock = connect(zmq.Context.instance(), uri)
        self._tag = 0
        self._inbox: dict[int, deque] = {}
        self._size_limit: int | None = None  # the broker's, asked for when first needed

    def close(self) -> None:
        self._sock.close(0)

    def __enter__(self) -> Handle:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def send(self, topic: str, body: object = None, stream: bool = False,
             nodeid: int = proto.NODEID_ANY) -> int:
        """Send a request without waiting; returns its tag for `recv`.

        `nodeid` addresses a broker rank (or ``proto.NODEID_UPSTREAM``); the
        default is the nearest broker that has the service."""
        tag = self._tag + 1
        data = proto.request(topic, tag, body, proto.FLAG_STREAM if stream else 0, nodeid)
        if len(data) > proto.MIN_MESSAGE_SIZE_LIMIT:  # the broker would drop the connection
            limit = self._message_size_limit()
            if len(data) > limit:
                raise too_large(topic, len(data), limit)
        self._tag = tag
        self._inbox[tag] = deque()
        self._sock.send(data)
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
        sock = self._sock
        while True:
            wait = 1000
            if deadline is not None:
                wait = max(0, min(wait, int((deadline - time.monotonic()) * 1000) + 1))
            if sock.poll(wait):
                break
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError("timed out")
            check_alive(self.uri)
        while True:
            try:
                data = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            _, tag, body, err, more = proto.decode(data)
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
        if self._inbox.pop(tag, None) is not None:
            self._sock.send(proto.request("broker.cancel", 0, tag))
