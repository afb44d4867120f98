"""The broker: one asyncio event loop that routes requests to services.

Clients connect to a Unix stream socket at ``<rundir>/local`` (the URI
``local://<rundir>/local``; the rundir is mode 0700, so only the instance owner
can connect), as Flux's local connector: each connection is served as a `Link`,
messages framed by their length (`strato.core.framing`). A connection's end
tells the broker at once that its client has gone: its streams (event
subscriptions, watches) are dropped and the services it provided fail over. A service is a plain
function ``handler(request)`` registered under a topic; it answers with
``request.respond()``/``request.error()`` now or later, and a streaming request
gets any number of ``request.send()`` before its final response. A handler may
also be a coroutine function: it then runs as a task and an exception it raises
becomes the error response.

Services in the broker call each other with `Broker.call` without encoding
anything; `Broker.send` is the one-way form that the batched protocols (job
manager <-> scheduler, job manager <-> exec) use. A *client* can provide a
service too (``service.add``): requests for its topics are forwarded to it over
its socket and its responses routed back, which is how the shell host (a process
of its own) serves ``shell-host.*`` and how a scheduler could run elsewhere. A
process the broker starts itself (the shell host) talks over a `Link` too, on
one end of a socketpair, with exactly the same messages.

Nothing leaves the broker before the state it reports is saved: while the KVS has
changes not yet written to the statedir (`Broker.store`), outgoing messages wait and
leave, in order, right after the commit. So a job id, a cancel's acknowledgement or a
job's result that a client has seen survives a SIGKILL of the broker.

Requests are addressed to a rank (``nodeid``): a rank number, `NODEID_ANY` or
`NODEID_UPSTREAM`. With one broker every address that exists resolves here. In
a multi-broker instance the overlay (`strato.core.overlay`, set as
``broker.overlay``) carries a request addressed elsewhere, or one for a service
this broker lacks, one hop along the tree; it is consulted only on those paths,
so one broker pays nothing for it. Events (`publish`) carry a sequence number,
so a subscriber can tell whether it missed one; rank 0 numbers them all.
"""

from __future__ import annotations

import asyncio
import errno
import inspect
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Callable

from strato.core import proto
from strato.core.errors import RPCError
from strato.core.framing import FramedStream

log = logging.getLogger("strato.broker")

Handler = Callable[["Request"], None]


class Request:
    """One request being served: its topic, body and the way back to its sender."""

    __slots__ = ("topic", "body", "tag", "sender", "streaming", "broker", "local", "on_cancel",
                 "done", "noresponse", "via")

    def __init__(self, broker: Broker, topic: str, body: object, tag: int, sender: bytes | None,
                 streaming: bool, local: object = None, noresponse: bool = False) -> None:
        self.broker = broker
        self.topic = topic
        self.body = body
        self.tag = tag
        self.sender = sender
        self.streaming = streaming
        self.local = local
        self.on_cancel: Callable[[], None] | None = None
        self.via: bytes | None = None  # forwarded: the link whose response completes it
        self.done = noresponse
        self.noresponse = noresponse

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
        if self.noresponse:
            log.warning("%s: %s", self.topic, message)
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


class Link:
    """A stream socket to a client: a connection to the local socket, or a process
    this broker started (its shell host) on a socketpair.

    Messages are framed (`FramedStream`). A stream socket has no I/O thread
    between the two processes, so a message costs one system call each way
    instead of ZeroMQ's thread hand-offs (a round trip here: 32 us against 124
    us), which on a small node were most of the cost of starting a short job;
    and its end of file says at once that the other side has gone.
    """

    def __init__(self, broker: Broker, sock: socket.socket, ident: bytes,
                 on_close: Callable[[], None], max_frame: int = proto.MAX_FRAME) -> None:
        self.broker = broker
        self.ident = ident
        self._on_close = on_close
        self.stream = FramedStream(sock, self._message, self._closed, max_frame,
                                   ident.decode(errors="replace"), self._read_end)
        self.write = self.stream.write
        self.close = self.stream.close

    def _message(self, payload: bytes) -> None:
        broker = self.broker
        broker._reading = True  # work deferred from now on runs by `_read_end` at the latest
        if broker._deferred:  # the work the previous message deferred comes first
            broker.run_deferred()
        broker._dispatch_frames([self.ident, payload])

    def _read_end(self) -> None:
        """The messages of one read are handled: run the work they deferred now,
        rather than in a callback of its own later in this turn of the loop (what
        that work defers joins this run)."""
        broker = self.broker
        if broker._deferred:
            broker.run_deferred()
        broker._reading = False

    def _closed(self) -> None:
        self.broker._links.pop(self.ident, None)
        self._on_close()


def _accepting(path: str) -> bool:
    """True unless the Unix socket at `path` refuses connections (its broker is gone)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        return False
    except OSError:
        return True  # not ours to judge (permissions, not a socket): leave it
    finally:
        probe.close()
    return True


class Broker:
    """Routes requests from clients and from in-broker callers to services."""

    def __init__(self, rank: int = 0, size: int = 1) -> None:
        self.rank = rank
        self.size = size
        self.services: dict[str, Handler] = {}
        self.providers: dict[str, bytes] = {}  # service name -> client identity
        self._forwarded: dict[int, Request] = {}  # tag sent to a provider -> request
        self._fwd_tag = 0
        self._streams: dict[tuple, Request] = {}
        self._subscribers: list[tuple[str, Request]] = []
        self.event_seq = 0
        self.overlay = None  # the tree of brokers (strato.core.overlay), if size > 1
        self._listener: socket.socket | None = None
        self._links: dict[bytes, Link] = {}
        self._nclients = 0
        self._deferred: list[Callable[[], None]] = []
        self._defer_scheduled = False  # a callback that runs `_deferred` is queued
        self._reading = False  # a `Link` is handling the messages of a read
        #: the KVS of an instance with a statedir (``unsaved``, ``flush()``): messages
        #: wait until what it holds is on disk (module docstring)
        self.store = None
        self._held: list[tuple[bytes, bytes]] | None = None
        self._malformed_t = 0.0  # when the current second of malformed messages began
        self._malformed_n = 0
        #: a client whose frame declares more bytes than this is disconnected unread
        self.message_size_limit = proto.DEFAULT_MESSAGE_SIZE_LIMIT
        self.any_body: set[str] = set()  # topics whose requests may carry any body
        self.register("broker.cancel", self._cancel_stream, any_body=True)  # a tag
        self.register("broker.ping", lambda req: req.respond(req.body), any_body=True)
        self.register("service.add", self._service_add)
        self.register("service.remove", self._service_remove)
        self.register("event.subscribe", self._subscribe)

    def register(self, topic: str, handler: Handler, any_body: bool = False) -> None:
        """Register `handler` as the service answering `topic`.

        A client's request carries a mapping as its body, or none: the broker answers
        any other body with EPROTO before the handler sees it, unless `any_body`.
        """
        if topic in self.services:
            raise ValueError(f"service {topic} is registered twice")
        self.services[topic] = handler
        if any_body:
            self.any_body.add(topic)

    def unregister_prefix(self, prefix: str) -> None:
        """Remove every service whose topic starts with ``prefix.`` (a module unloads)."""
        for topic in [t for t in self.services if t.startswith(prefix + ".")]:
            del self.services[topic]
            self.any_body.discard(topic)

    def listen(self, path: str) -> None:
        """Accept clients on a Unix stream socket at `path`. A socket file left there
        by a broker that was killed (nothing accepts on it) is replaced, so an
        instance restarts on the same rundir; a live broker's is left alone."""
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            try:
                srv.bind(path)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or _accepting(path):
                    raise
                os.unlink(path)
                srv.bind(path)
            srv.listen(128)
        except OSError:
            srv.close()
            raise
        srv.setblocking(False)
        self._listener = srv
        asyncio.get_running_loop().add_reader(srv.fileno(), self._accept)

    def _accept(self) -> None:
        srv = self._listener
        while srv is not None:
            try:
                conn, _ = srv.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of descriptors: the client sees its end
                log.warning("cannot accept a client: %s", exc.strerror)
                return
            self._nclients += 1
            ident = b"client.%d" % self._nclients
            self.add_link(conn, ident, lambda ident=ident: self._client_gone(ident),
                          self.message_size_limit)

    def clients(self) -> int:
        """Connections to the local socket open now."""
        return sum(1 for ident in self._links if ident.startswith(b"client."))

    def _client_gone(self, ident: bytes) -> None:
        """A client closed its connection (or an overlay peer was lost): drop its
        streams and the services it gave."""
        for key in [k for k in self._streams if k[0] == ident]:
            req = self._streams.pop(key)
            req.done = True
            if req.on_cancel:
                req.on_cancel()
        for name in [n for n, who in self.providers.items() if who == ident]:
            self.drop_provider(name)

    def add_link(self, sock: socket.socket, ident: bytes, on_close: Callable[[], None],
                 max_frame: int = proto.MAX_FRAME) -> Link:
        """Serve a process over a stream socket as if it were a client `ident`; a frame
        longer than `max_frame` closes the link unread."""
        link = self._links[ident] = Link(self, sock, ident, on_close, max_frame)
        return link

    def close(self) -> None:
        if self._held is not None:
            self._release()
        for link in list(self._links.values()):
            link.close()  # what was written to it still leaves if it can
        if self._listener is not None:
            asyncio.get_running_loop().remove_reader(self._listener.fileno())
            self._listener.close()
            self._listener = None

    def _send(self, ident: bytes | None, payload: bytes) -> None:
        if self._held is not None:  # behind messages already waiting: keep the order
            self._held.append((ident, payload))
        elif self.store is not None and self.store.unsaved:
            self._held = [(ident, payload)]
            asyncio.get_running_loop().call_soon(self._release)
        else:
            self._send_now(ident, payload)

    def _release(self) -> None:
        """Save what the held messages report, then send them. The store's own save,
        queued before this, has usually done it; a failure to save is logged by the
        store (which refuses new jobs until it can save again) and the messages still
        leave: a client must not wait forever, and what they report stays in memory
        to be saved as soon as the statedir can be written."""
        self.store.save()
        held, self._held = self._held, None
        for ident, payload in held:
            self._send_now(ident, payload)

    def _send_now(self, ident: bytes | None, payload: bytes) -> None:
        link = self._links.get(ident) if ident is not None else None
        if link is not None:
            link.write(payload)
        # else: the client went away; nothing to deliver to

    def defer(self, fn: Callable[[], None]) -> None:
        """Run `fn` once the work at hand is done, before a socket is read again (once,
        if it is deferred several times meanwhile): when the messages of the read a
        link is handling are done (`Link._read_end`), else in a callback later in this
        turn of the event loop.

        Batching parts (the job manager's requests to the scheduler, the
        scheduler's pass, exec's events) defer their flush with this, so work one
        request causes (and the work that work causes) is complete before the next
        request is read: a client always sees the effect of its previous request.
        """
        if fn in self._deferred:  # once per turn, however often it is asked for
            return
        self._deferred.append(fn)
        if not self._defer_scheduled and not self._reading:  # else the link runs it
            self._defer_scheduled = True
            asyncio.get_running_loop().call_soon(self.run_deferred)

    def run_deferred(self) -> None:
        """Run deferred work until none is left (work may defer more work)."""
        self._defer_scheduled = False
        while self._deferred:
            batch, self._deferred = self._deferred, []
            for fn in batch:
                try:
                    fn()
                except Exception:
                    log.exception("deferred work failed")

    def _dispatch_frames(self, frames: list[bytes]) -> None:
        """Decode one message from a client and route it.

        A client's bytes are not trusted: a request that decodes but is malformed
        gets an EPROTO error naming the bad field when it has a usable tag; anything
        else (not msgpack, not an array, no tag) cannot be answered and is dropped
        with a line in the log.
        """
        ident = frames[0]
        try:
            msg = proto.decode(frames[-1])
        except Exception:  # msgspec.DecodeError, or a nesting too deep to decode
            self._malformed(ident, "not a msgpack message")
            return
        if not isinstance(msg, list) or not msg or len(frames) != 2:
            self._malformed(ident, "not a message array")
            return
        kind = msg[0]
        if kind == proto.RESP and len(msg) == 5:
            self._route_response(ident, msg)
            return
        if kind != proto.REQ:
            self._malformed(ident, f"unknown message kind {kind!r}"[:100])
            return
        problem = proto.request_problem(msg)
        if problem is not None:
            tag = msg[2] if len(msg) > 2 else None
            flags = msg[4] if len(msg) > 4 else 0
            if proto.is_int(tag) and not (proto.is_int(flags)
                                            and flags & proto.FLAG_NORESPONSE):
                self._send(ident, proto.response(tag, "EPROTO",
                                                 f"malformed request: {problem}"))
            else:
                self._malformed(ident, problem)
            return
        _, topic, tag, body, flags, *rest = msg
        nodeid = rest[0] if rest else proto.NODEID_ANY
        if body is not None and not isinstance(body, dict) and topic not in self.any_body:
            if not flags & proto.FLAG_NORESPONSE:
                shown = topic if topic.isprintable() else repr(topic)
                self._send(ident, proto.response(
                    tag, "EPROTO", f"malformed request: the body of {shown} must be a mapping"))
            return
        streaming = bool(flags & proto.FLAG_STREAM)
        req = Request(self, topic, body, tag, ident, streaming,
                      noresponse=bool(flags & proto.FLAG_NORESPONSE))
        if streaming and not req.noresponse:
            self._streams[(ident, tag)] = req
        if nodeid != proto.NODEID_ANY and nodeid != self.rank:
            self._route(req, nodeid)
            return
        self._handle(req)

    def _malformed(self, ident: bytes, why: str) -> None:
        """Log one line about a message that cannot be answered, at most a few a
        second (a client looping on garbage must not flood the log)."""
        now = time.monotonic()
        if now - self._malformed_t >= 1.0:
            self._malformed_t, self._malformed_n = now, 0
        self._malformed_n += 1
        if self._malformed_n <= 5:
            log.warning("dropped a message from %s: %s", ident.decode(errors="replace"), why)
        elif self._malformed_n == 6:
            log.warning("dropping more malformed messages this second without a word")

    def _route(self, req: Request, nodeid: int) -> None:
        """A request for another broker: the overlay's, or unreachable."""
        if self.overlay is not None:
            self.overlay.route(req, nodeid)
        else:
            req.error(self._unreachable(nodeid), "EHOSTUNREACH")

    def _unreachable(self, nodeid: int) -> str:
        if nodeid == proto.NODEID_UPSTREAM:
            return f"rank {self.rank} has no upstream broker"
        return f"no route to rank {nodeid} (instance size is {self.size})"

    def _handle(self, req: Request) -> None:
        handler = self.services.get(req.topic)
        if handler is None:
            provider = self.providers.get(req.topic.partition(".")[0])
            if provider is not None:
                self._forward(provider, req)
            elif self.overlay is None or not self.overlay.forward_up(req):
                topic = req.topic if req.topic.isprintable() else repr(req.topic)
                req.error(f"no service matches {topic}", "ENOSYS")
            return
        try:
            result = handler(req)
        except RPCError as exc:
            req.error(str(exc), exc.errnum)
        except Exception as exc:  # a bug in a service must not take the broker down
            log.exception("service %s failed", req.topic)
            req.error(f"{req.topic}: internal error: {exc}", "EIO")
        else:
            # most handlers are plain functions (None): only a coroutine is awaited
            if result is not None and inspect.iscoroutine(result):
                asyncio.get_running_loop().create_task(self._finish_async(req, result))

    async def _finish_async(self, req: Request, coro) -> None:
        try:
            await coro
        except RPCError as exc:
            req.error(str(exc), exc.errnum)
        except Exception as exc:
            log.exception("service %s failed", req.topic)
            req.error(f"{req.topic}: internal error: {exc}", "EIO")

    # -- services provided by clients ------------------------------------------------------
    def _service_add(self, req: Request) -> None:
        """{service}: route requests for ``service.*`` to the requesting client."""
        name = (req.body or {}).get("service") if isinstance(req.body, dict) else None
        if not isinstance(name, str) or not name or "." in name:
            raise RPCError("service.add: a service name without dots is required")
        if req.sender is None:
            raise RPCError("service.add: only a client can provide a service")
        if name in self.providers or any(t.startswith(name + ".") for t in self.services):
            raise RPCError(f"service {name} is already provided", "EEXIST")
        self.providers[name] = req.sender
        req.respond()

    def _service_remove(self, req: Request) -> None:
        name = (req.body or {}).get("service") if isinstance(req.body, dict) else None
        if not isinstance(name, str):
            raise RPCError("service.remove: a service name is required", "EPROTO")
        if self.providers.get(name) != req.sender:
            raise RPCError(f"service {name} is not provided by this client", "ENOENT")
        self.drop_provider(name)
        req.respond()

    def drop_provider(self, name: str) -> None:
        """Forget a client's service and fail the requests it has not answered."""
        ident = self.providers.pop(name, None)
        if ident is None:
            return
        for tag, req in list(self._forwarded.items()):
            if req.topic.partition(".")[0] == name:
                del self._forwarded[tag]
                req.error(f"service {name} went away", "EHOSTUNREACH")

    def _forward(self, ident: bytes, req: Request) -> None:
        flags = (proto.FLAG_STREAM if req.streaming else 0) | \
            (proto.FLAG_NORESPONSE if req.noresponse else 0)
        self._fwd_tag += 1
        if not req.noresponse:
            self._forwarded[self._fwd_tag] = req
            req.via = ident
        self._send(ident, proto.request(req.topic, self._fwd_tag, req.body, flags))

    def _route_response(self, ident: bytes, msg: list) -> None:
        _, tag, body, err, more = msg
        req = self._forwarded.get(tag) if proto.is_int(tag) else None
        # only the provider a request went to answers it: another client's response
        # with a guessed tag must not complete someone else's request
        if req is None or req.via != ident:
            self._malformed(ident, "a response nobody waits for")
            return
        if more:
            req.send(body)
            return
        del self._forwarded[tag]
        if err is not None:
            req.error(str(err), body if isinstance(body, str) else "EINVAL")
        else:
            req.respond(body)

    # -- events ------------------------------------------------------------------------
    def publish(self, topic: str, body: object = None) -> int:
        """Send an event to every subscriber of a matching prefix; returns its sequence
        (0 on a rank > 0, which has rank 0 number and send it)."""
        if self.overlay is not None and self.rank:
            self.overlay.publish_up(topic, body)
            return 0
        self.event_seq += 1
        self.deliver_event(topic, self.event_seq, body)
        return self.event_seq

    def deliver_event(self, topic: str, seq: int, body: object) -> None:
        """Hand event number `seq` to this broker's subscribers (and overlay children)."""
        self.event_seq = seq
        if self._subscribers:
            msg = {"topic": topic, "seq": seq, "body": body}
            for prefix, req in self._subscribers:
                if topic.startswith(prefix):
                    req.send(msg)
        if self.overlay is not None:
            self.overlay.events_down(topic, seq, body)

    def _subscribe(self, req: Request) -> None:
        """{prefix}: stream every event whose topic starts with prefix."""
        prefix = (req.body or {}).get("prefix", "") if isinstance(req.body, dict) else ""
        if not req.streaming or not isinstance(prefix, str):
            raise RPCError("event.subscribe needs a streaming request and a string prefix")
        entry = (prefix, req)
        self._subscribers.append(entry)
        req.on_cancel = lambda: self._subscribers.remove(entry)
        req.send({"topic": "event.subscribed", "seq": self.event_seq, "body": None})

    def _cancel_stream(self, req: Request) -> None:
        target = self._streams.pop((req.sender, req.body), None)
        if target is not None:
            target.done = True
            if target.on_cancel:
                target.on_cancel()
        req.respond()

    # -- calls from inside the broker ----------------------------------------------------
    async def call(self, topic: str, body: object = None) -> object:
        """Call a service inside this broker; returns its response body."""
        fut = asyncio.get_running_loop().create_future()
        self._handle(Request(self, topic, body, 0, None, False, fut))
        return await fut

    def send(self, topic: str, body: object = None) -> None:
        """Send a one-way request (no response) to a service, in or out of this broker."""
        self._handle(Request(self, topic, body, 0, None, False, None, True))

    def send_to(self, nodeid: int, topic: str, body: object = None) -> None:
        """Send a one-way request to a service on broker rank `nodeid`."""
        req = Request(self, topic, body, 0, None, False, None, True)
        if nodeid == self.rank:
            self._handle(req)
        else:
            self._route(req, nodeid)

    async def call_on(self, nodeid: int, topic: str, body: object = None) -> object:
        """Call a service on broker rank `nodeid`; returns its response body."""
        if nodeid == self.rank:
            return await self.call(topic, body)
        fut = asyncio.get_running_loop().create_future()
        self._route(Request(self, topic, body, 0, None, False, fut), nodeid)
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
