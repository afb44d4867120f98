"""The overlay: the tree of brokers (TBON) that makes N brokers one instance.

Each broker of rank r > 0 connects to its parent (a ZeroMQ DEALER to the
parent's ROUTER, over tcp) and listens for its own children the same way. Every
connection is CURVE-encrypted with the instance's one certificate, and a ZAP
handler accepts a peer only if it presents that certificate's public key (a
broker bootstrapped by PMI has a keypair of its own instead, and lets in only
its children's keys); a refused peer (another key, or a handshake that fails
because it does not know ours) is logged.

The overlay is only a transport for the broker's messages (`strato.core.proto`):

- a request addressed to another rank goes one hop down (to the child whose
  subtree holds it) or up; a request for a service this broker lacks goes up,
  so a client on any rank reaches rank 0's job manager, scheduler and KVS;
- each hop forwards with a tag of its own and remembers the request, so
  responses (streams included) come back the way they went; a hop that is lost
  fails what waits on it with EHOSTUNREACH;
- events are published at rank 0 (other ranks send theirs there first) and go
  down the tree with their sequence number, in order on every connection.

Peers appear to the broker as links named ``tbon:up`` and ``tbon:R``, so the
broker answers them exactly as it answers local clients. A one-broker instance
has no overlay, and its broker no extra step on any path.

A broker joins its parent before anything else: its first message,
``overlay.join``, says which rank it is and which instance it belongs to (size,
hosts, fanout). The parent accepts one connection per child rank and refuses,
with a logged line and an error the joining broker ends with, a rank that is not
its child, a second broker for a rank that is online, and a broker started with
another instance's config. Each connection has a routing id of its own
(``RANK:TOKEN``), so the parent tells a second broker from the first.

Each broker also keeps the health of its subtree (Flux's ``flux overlay
status``): a child is *offline* until it first speaks, *online*, or *lost*
once its connection drops; a subtree is *full*, *partial* (a broker in it is
offline) or *degraded* (one is lost). Children report their subtree's status to
their parent whenever it changes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable

import zmq
from zmq.utils import monitor, z85

from strato.core import proto
from strato.core.bootstrap import Bootstrap, children_of, subtree_child
from strato.core.broker import Request
from strato.core.errors import ConfigError, RPCError

log = logging.getLogger("strato.overlay")

UP = b"tbon:up"
JOIN = "overlay.join"
ZAP_DOMAIN = b"strato-overlay"
SHUTDOWN = "overlay.shutdown"  # the event with which rank 0 ends every other broker
#: how long a broker that passed overlay.shutdown on waits for its children to hang up
CHILDREN_LEAVE_TIMEOUT = 2.0
#: ZeroMQ heartbeats: a peer silent this long (ms) is disconnected, hence lost
HEARTBEAT_IVL = 1000
HEARTBEAT_TIMEOUT = 10000
#: how long rank 0 waits for every other broker to join (`JoinWatch`), and a broker
#: started by PMI for its parent to answer
JOIN_TIMEOUT = 60.0
# plain ints: ZeroMQ's enum constants cost an enum operation on every use, and these
# are used on every message
_EVENTS, _POLLIN = int(zmq.EVENTS), int(zmq.POLLIN)
_NOBLOCK, _SNDMORE = int(zmq.NOBLOCK), int(zmq.NOBLOCK | zmq.SNDMORE)


def _ident(rank: int) -> bytes:
    return b"tbon:%d" % rank


class _Peer:
    """A neighbour as the broker sees it: something it can write messages to."""

    __slots__ = ("overlay", "rank", "write")

    def __init__(self, overlay: Overlay, rank: int | None) -> None:
        self.overlay = overlay
        self.rank = rank
        self.write = (lambda payload: overlay._send_up(payload)) if rank is None else \
            (lambda payload: overlay._send_down(rank, payload))

    def close(self) -> None:
        """Closed with the overlay."""


class _ZmqReader:
    """Reads a ZeroMQ socket from the event loop.

    The socket's FD only says that its state may have changed, and a send can use
    up that signal: so the FD's callback reads while ``ZMQ_EVENTS`` says a message
    waits, and each send looks at ``ZMQ_EVENTS`` once (`after_send`). Asking
    ``ZMQ_EVENTS`` also costs far less than the exception of a read that finds
    nothing."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: zmq.Socket,
                 handle: Callable[[list[bytes]], None]) -> None:
        self.loop = loop
        self.sock = sock
        self.handle = handle
        self.scheduled = False
        self.fd = sock.getsockopt(zmq.FD)
        loop.add_reader(self.fd, self._drain)
        self.after_send()  # what came before the reader was added signals no edge

    def after_send(self) -> None:
        """Read later in this turn if messages wait (a send may have taken the FD's
        signal for them)."""
        if not self.scheduled and not self.sock.closed \
                and self.sock.get(_EVENTS) & _POLLIN:
            self.scheduled = True
            self.loop.call_soon(self._drain)

    def _drain(self) -> None:
        """Handle each queued message as it is read (a REP socket, the ZAP
        handler's, must answer one before it can read the next)."""
        self.scheduled = False
        sock = self.sock
        for _ in range(1024):
            if sock.closed or not sock.get(_EVENTS) & _POLLIN:
                return
            try:
                frames = sock.recv_multipart(_NOBLOCK)
            except zmq.Again:
                return
            try:
                self.handle(frames)
            except Exception:  # one bad message must not stop the overlay
                log.exception("overlay: failed to handle a message")
        self.scheduled = True  # the rest in a later turn: other work goes first
        self.loop.call_soon(self._drain)

    def close(self) -> None:
        self.loop.remove_reader(self.fd)
        self.sock.close(linger=200)


class Overlay:
    """This broker's part of the tree (see module docstring)."""

    def __init__(self, broker, boot: Bootstrap,
                 on_stop: Callable[[str | None], None] | None = None) -> None:
        """`on_stop(why)` is called on a broker of rank > 0 when the instance ends
        (``why`` None: rank 0 sent ``overlay.shutdown``) or when it cannot go on
        (``why`` says why: its parent is lost, or refused it)."""
        if boot.cert is None:
            raise ConfigError("a multi-broker instance needs a CURVE certificate")
        self.broker = broker
        self.boot = boot
        self.rank = boot.rank
        self.on_stop = on_stop
        self.endpoint = ""
        self.state: dict[int, str] = {r: "offline" for r in boot.children}
        self._children_left: asyncio.Future | None = None  # see children_left
        self.child_status: dict[int, str] = {r: "full" for r in boot.children}
        self._status = ""
        self._hop_of: dict[int, int | None] = {}  # forwarded tag -> child rank or None (up)
        self._peer_id: dict[int, bytes] = {}  # child rank -> routing id of its connection
        self._refused: set[bytes] = set()  # routing ids refused (what they still send is dropped)
        self._unjoined_t = 0.0  # when a message from a broker that has not joined was logged
        self._readers: list[_ZmqReader] = []
        self._down: zmq.Socket | None = None
        self._up: zmq.Socket | None = None
        self._up_ready = False
        # what goes up before the parent accepted this broker waits here (None: joined)
        self._held_up: list[bytes] | None = [] if boot.parent is not None else None
        self.stopping = False
        # (rank 0) called with each hello of a broker that joins, and with the ranks
        # of each subtree that is lost
        self.hello_handlers: list[Callable[[dict], None]] = []
        self.lost_handlers: list[Callable[[list[int]], None]] = []
        self.peer_links = {UP: _Peer(self, None)} if boot.parent is not None else {}
        for r in boot.children:
            self.peer_links[_ident(r)] = _Peer(self, r)

    # -- starting and stopping -----------------------------------------------------------
    def start(self) -> None:
        """Listen for children, connect to the parent and say hello (in the loop)."""
        loop = asyncio.get_running_loop()
        ctx = zmq.Context.instance()
        b = self.broker
        b.overlay = self
        b._links.update(self.peer_links)
        b.register("overlay.health", self._health)
        b.register("overlay.child-status", self._child_status_msg)
        if self.rank == 0:
            b.register("overlay.hello", self._hello)
            b.register("overlay.lost", self._lost_msg)
            b.register("event.publish", self._event_publish)
        if self.boot.children:
            self._listen(ctx, loop)
        if self.boot.parent is not None:
            self._connect(ctx, loop)
            self._join(loop)
            self._report_status()
            b.send_to(0, "overlay.hello", self.hello_body())

    def _listen(self, ctx: zmq.Context, loop: asyncio.AbstractEventLoop) -> None:
        """Bind the ROUTER socket the children connect to (a CURVE server)."""
        cert = self.boot.cert
        self._start_zap(ctx, loop)
        sock = ctx.socket(zmq.ROUTER)
        for opt, val in ((zmq.LINGER, 0), (zmq.SNDHWM, 0), (zmq.RCVHWM, 0),
                         (zmq.ROUTER_MANDATORY, 1), (zmq.CURVE_SERVER, 1),
                         (zmq.HEARTBEAT_IVL, HEARTBEAT_IVL),
                         (zmq.HEARTBEAT_TIMEOUT, HEARTBEAT_TIMEOUT)):
            sock.setsockopt(opt, val)
        sock.curve_secretkey = cert.secret
        sock.curve_publickey = cert.public
        sock.zap_domain = ZAP_DOMAIN
        events = zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL \
            | zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
        mon = sock.get_monitor_socket(events)
        if self.boot.bind_fd is not None:  # listening already, made by rank 0
            sock.setsockopt(zmq.USE_FD, self.boot.bind_fd)
        try:
            sock.bind(self.boot.bind)
        except zmq.ZMQError as exc:
            mon.close()
            sock.close()
            why = zmq.strerror(exc.errno)
            raise ConfigError(f"overlay: cannot listen on {self.boot.bind}: {why}") from None
        self.endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self._down = sock
        self._down_reader = _ZmqReader(loop, sock, self._from_child)
        self._readers.append(self._down_reader)
        self._readers.append(_ZmqReader(loop, mon, self._down_event))

    def _connect(self, ctx: zmq.Context, loop: asyncio.AbstractEventLoop) -> None:
        """Connect the DEALER socket to the parent (a CURVE client, same keypair)."""
        cert = self.boot.cert
        sock = ctx.socket(zmq.DEALER)
        for opt, val in ((zmq.LINGER, 0), (zmq.SNDHWM, 0), (zmq.RCVHWM, 0),
                         (zmq.HEARTBEAT_IVL, HEARTBEAT_IVL),
                         (zmq.HEARTBEAT_TIMEOUT, HEARTBEAT_TIMEOUT)):
            sock.setsockopt(opt, val)
        sock.routing_id = b"%d:%s" % (self.rank, os.urandom(6).hex().encode())
        sock.curve_serverkey = self.boot.parent_key or cert.public
        sock.curve_publickey = cert.public
        sock.curve_secretkey = cert.secret
        mon = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED
                                      | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                                      | zmq.EVENT_HANDSHAKE_FAILED_AUTH
                                      | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
        try:
            sock.connect(self.boot.parent_endpoint)
        except zmq.ZMQError as exc:
            mon.close()
            sock.close()
            raise ConfigError(f"overlay: cannot connect to "
                              f"{self.boot.parent_endpoint}: {zmq.strerror(exc.errno)}") from None
        self._up = sock
        self._up_reader = _ZmqReader(loop, sock, self._from_parent)
        self._readers.append(self._up_reader)
        self._readers.append(_ZmqReader(loop, mon, self._up_event))

    def identity(self) -> dict:
        """What a broker says of itself when it joins: its rank and its instance."""
        return {"rank": self.rank, "size": self.boot.size, "fanout": self.boot.fanout,
                "hostlist": self.boot.hostlist}

    def _join(self, loop: asyncio.AbstractEventLoop) -> None:
        """Ask the parent to accept this broker, as the first message up; what else
        goes up waits for the answer. A refusal ends this broker with its reason. An
        answer lost with its connection cannot leave the rest waiting: a connection
        to the parent that drops ends this broker (`_up_event`) before ZeroMQ's
        reconnect, which would not send the join again, could matter."""
        joined = loop.create_future()
        req = Request(self.broker, JOIN, self.identity(), 0, None, False, joined)
        self._forward(None, req, self.boot.parent, first=True)
        joined.add_done_callback(self._join_answered)

    def _join_answered(self, joined: asyncio.Future) -> None:
        if joined.cancelled():
            return
        exc = joined.exception()
        if exc is None:
            held, self._held_up = self._held_up or [], None
            for payload in held:
                self._send_up(payload)
        elif self.on_stop is not None and not self.stopping:
            self.on_stop(f"was refused by its parent (rank {self.boot.parent}) at "
                         f"{self.boot.parent_endpoint}: {exc}")

    def hello_body(self) -> dict:
        return {"rank": self.rank, "endpoint": self.endpoint, "pid": os.getpid()}

    def shutdown(self) -> None:
        """(rank 0) End every other broker: the event goes down the tree."""
        self.stopping = True
        self.broker.publish(SHUTDOWN)

    def close(self) -> None:
        self.stopping = True
        for reader in self._readers:
            reader.close()
        self._readers = []
        self._down = self._up = None

    # -- CURVE: who may join -------------------------------------------------------------
    def _start_zap(self, ctx: zmq.Context, loop: asyncio.AbstractEventLoop) -> None:
        """Answer ZAP requests: a peer is let in only with this instance's public key."""
        zap = ctx.socket(zmq.REP)
        zap.linger = 0
        try:
            zap.bind("inproc://zeromq.zap.01")
        except zmq.ZMQError as exc:  # one overlay per process
            zap.close()
            raise ConfigError(f"overlay: cannot start the ZAP handler: {exc}") from None
        keys = self.boot.peer_keys if self.boot.peer_keys is not None \
            else {self.boot.cert.public}
        allowed = {z85.decode(k) for k in keys}

        def answer(frames: list[bytes]) -> None:
            version, request_id, domain, address = frames[:4]
            mechanism, creds = frames[5], frames[6:]
            if mechanism == b"CURVE" and creds and creds[0] in allowed:
                reply = (b"200", b"OK", b"strato")
            else:
                reply = (b"400", b"not this instance's certificate", b"")
                key = z85.encode(creds[0]).decode() if mechanism == b"CURVE" and creds else "-"
                log.error("overlay: refused a peer from %s: its %s key %s is not this "
                          "instance's certificate", address.decode(errors="replace"),
                          mechanism.decode(errors="replace"), key)
            zap.send_multipart([version, request_id, *reply[:2], reply[2], b""])

        self._readers.append(_ZmqReader(loop, zap, answer))

    # -- receiving -------------------------------------------------------------------------
    def _from_child(self, frames: list[bytes]) -> None:
        if len(frames) != 2:
            log.warning("overlay: dropped a malformed message from a child")
            return
        ident, payload = frames
        rank_text = ident.partition(b":")[0]
        rank = int(rank_text) if rank_text.isdigit() and len(rank_text) < 10 else -1
        if self._peer_id.get(rank) != ident:
            self._join_msg(rank, ident, payload)
            return
        if self.state[rank] != "online":
            self._set_state(rank, "online")
        if payload:  # an empty frame is a probe
            self.broker._dispatch_frames([_ident(rank), payload])

    def _join_msg(self, rank: int, ident: bytes, payload: bytes) -> None:
        """A message on a connection not yet accepted: it must be ``overlay.join``."""
        try:
            msg = proto.decode(payload)
        except Exception:
            msg = None
        if not (isinstance(msg, list) and len(msg) >= 4 and msg[0] == proto.REQ
                and msg[1] == JOIN and proto.is_int(msg[2])):
            now = time.monotonic()
            if ident not in self._refused and now - self._unjoined_t > 1.0:
                self._unjoined_t = now
                log.warning("overlay: dropped a message from %s, which has not joined",
                            ident.decode(errors="replace"))
            return
        tag, body = msg[2], msg[3]
        problem = self._join_problem(rank, body)
        if problem is None and self.state.get(rank) == "online":
            self._send_down(rank, b"")  # the connection it had may be gone: probe it
            if self.state.get(rank) == "online":
                problem = f"rank {rank} is already online"
        if problem is not None:
            log.error("overlay: refused a broker calling itself rank %s: %s",
                      ident.partition(b":")[0].decode(errors="replace"), problem)
            reply = proto.response(tag, "EPERM", problem)
            if len(self._refused) > 1024:
                self._refused.clear()
            self._refused.add(ident)
        else:
            self._peer_id[rank] = ident
            self._set_state(rank, "online")
            reply = proto.response(tag, None)
        try:
            self._down.send_multipart((ident, reply), flags=zmq.NOBLOCK)
        except zmq.ZMQError:  # it hung up already
            pass
        finally:
            self._down_reader.after_send()

    def _join_problem(self, rank: int, body: object) -> str | None:
        """Why a broker may not join as child `rank` (None: it may)."""
        if rank not in self.state:
            return f"not a child of rank {self.rank}"
        if not isinstance(body, dict) or body.get("rank") != rank:
            return "a malformed overlay.join"
        mine = {"size": self.boot.size, "fanout": self.boot.fanout,
                "hostlist": self.boot.hostlist}
        theirs = {k: body.get(k) for k in mine}
        if theirs != mine:
            return ("started with another instance's config ({size} brokers on {hostlist}, "
                    "fanout {fanout}; this instance: ".format(**theirs)
                    + "{size} brokers on {hostlist}, fanout {fanout})".format(**mine))
        return None

    def _from_parent(self, frames: list[bytes]) -> None:
        payload = frames[-1]
        if not payload:
            return
        try:
            msg = proto.decode(payload)
        except Exception:
            log.warning("overlay: dropped a malformed message from the parent")
            return
        if isinstance(msg, list) and len(msg) == 4 and msg[0] == proto.EVENT:
            self.broker.deliver_event(msg[1], msg[2], msg[3])
            if msg[1] == SHUTDOWN:
                self.stopping = True
                if self.on_stop is not None:
                    self.on_stop(None)
            return
        self.broker._dispatch_frames([UP, payload])

    # -- sending -----------------------------------------------------------------------------
    def _send_up(self, payload: bytes, first: bool = False) -> None:
        if self._up is None:
            return
        if self._held_up is not None and not first:
            self._held_up.append(payload)
            return
        self._up.send(payload, _NOBLOCK)
        self._up_reader.after_send()  # the socket's FD is edge-triggered

    def _send_down(self, rank: int, payload: bytes) -> bool:
        if self._down is None or self.state.get(rank) != "online":
            return False
        try:
            self._down.send(self._peer_id[rank], _SNDMORE)
            self._down.send(payload, _NOBLOCK)
        except zmq.ZMQError:  # gone (ROUTER_MANDATORY): it is lost
            self._set_state(rank, "lost")
            return False
        finally:
            self._down_reader.after_send()
        return True

    def route(self, req, nodeid: int) -> None:
        """Send `req` one hop towards broker `nodeid` (a rank or NODEID_UPSTREAM)."""
        if nodeid == proto.NODEID_UPSTREAM:
            if self.boot.parent is None:
                req.error(f"rank {self.rank} has no upstream broker", "EHOSTUNREACH")
                return
            nodeid = self.boot.parent
        if not 0 <= nodeid < self.boot.size:
            req.error(f"no route to rank {nodeid} (instance size is {self.boot.size})",
                      "EHOSTUNREACH")
            return
        hop = subtree_child(self.rank, nodeid, self.boot.fanout)
        if hop is not None and self.state.get(hop) != "online":
            req.error(f"no route to rank {nodeid}: broker {hop} is {self.state.get(hop)}",
                      "EHOSTUNREACH")
            return
        self._forward(hop, req, nodeid)

    def forward_up(self, req) -> bool:
        """Send a request for a service this broker lacks to its parent (False on rank 0)."""
        if self.boot.parent is None:
            return False
        self._forward(None, req, proto.NODEID_ANY)
        return True

    def _forward(self, hop: int | None, req, nodeid: int, first: bool = False) -> None:
        b = self.broker
        b._fwd_tag += 1
        tag = b._fwd_tag
        flags = (proto.FLAG_STREAM if req.streaming else 0) | \
            (proto.FLAG_NORESPONSE if req.noresponse else 0)
        if not req.noresponse:
            b._forwarded[tag] = req
            req.via = UP if hop is None else _ident(hop)
            self._hop_of[tag] = hop
            if len(self._hop_of) > 2 * len(b._forwarded) + 1024:
                self._hop_of = {t: h for t, h in self._hop_of.items() if t in b._forwarded}
            if req.streaming:
                req.on_cancel = lambda: self._cancel(hop, tag)
        payload = proto.request(req.topic, tag, req.body, flags, nodeid)
        if hop is None:
            self._send_up(payload, first)
        elif not self._send_down(hop, payload) and not req.noresponse:
            b._forwarded.pop(tag, None)
            req.error(f"no route to rank {nodeid}: broker {hop} is lost", "EHOSTUNREACH")

    def _cancel(self, hop: int | None, tag: int) -> None:
        """A forwarded stream was cancelled here: cancel it at the next hop too."""
        self.broker._forwarded.pop(tag, None)
        nodeid = self.boot.parent if hop is None else hop
        payload = proto.request("broker.cancel", 0, tag, proto.FLAG_NORESPONSE, nodeid)
        if hop is None:
            self._send_up(payload)
        else:
            self._send_down(hop, payload)

    # -- events ----------------------------------------------------------------------------
    def events_down(self, topic: str, seq: int, body: object) -> None:
        """Pass an event on to every online child, in sequence order."""
        if self._down is None:
            return
        payload = proto.event(topic, seq, body)
        for rank, state in self.state.items():
            if state == "online":
                self._send_down(rank, payload)

    def publish_up(self, topic: str, body: object) -> None:
        """An event published on rank > 0 is sequenced by rank 0."""
        self.broker.send_to(0, "event.publish", {"topic": topic, "body": body})

    def _event_publish(self, req) -> None:
        body = req.body if isinstance(req.body, dict) else {}
        topic = body.get("topic")
        if not isinstance(topic, str) or not topic:
            raise RPCError("event.publish needs a topic")
        seq = self.broker.publish(topic, body.get("body"))
        req.respond({"seq": seq})

    # -- health ------------------------------------------------------------------------------
    def _set_state(self, rank: int, state: str) -> None:
        old = self.state.get(rank)
        self.state[rank] = state
        if state == "lost" and old == "online":
            if not self.stopping:
                log.error("overlay: lost broker rank %d", rank)
            self._fail_hop(rank)
            if not self.stopping:
                self._report_lost(rank)
        elif state == "online" and old == "lost":
            log.info("overlay: broker rank %d is back", rank)
        if state == "online":
            self.child_status[rank] = "full"
        elif self._children_left is not None and not self._children_left.done() \
                and "online" not in self.state.values():
            self._children_left.set_result(None)
        self._report_status()

    async def children_left(self, timeout: float) -> None:
        """(after `shutdown`) Return once every child broker has hung up (each leaves
        when overlay.shutdown reaches it), or after `timeout`: closing the sockets
        before could lose the event, and a child would take its parent for lost."""
        if "online" not in self.state.values():
            return
        self._children_left = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(self._children_left, timeout)
        except TimeoutError:
            pass

    def _report_lost(self, rank: int) -> None:
        """Tell rank 0 which brokers are cut off: `rank` and everything below it."""
        ranks, todo = [], [rank]
        while todo:
            r = todo.pop()
            ranks.append(r)
            todo.extend(children_of(r, self.boot.size, self.boot.fanout))
        ranks.sort()
        if self.rank == 0:
            for fn in self.lost_handlers:
                fn(ranks)
        else:
            self.broker.send_to(0, "overlay.lost", {"ranks": ranks})

    def _lost_msg(self, req) -> None:
        ranks = (req.body or {}).get("ranks") if isinstance(req.body, dict) else None
        if isinstance(ranks, list) and all(isinstance(r, int) for r in ranks):
            for fn in self.lost_handlers:
                fn(ranks)
        req.respond()

    def _fail_hop(self, rank: int) -> None:
        """Fail what waits on a lost child, and forget what it asked for."""
        b = self.broker
        for tag, hop in list(self._hop_of.items()):
            if hop == rank:
                del self._hop_of[tag]
                req = b._forwarded.pop(tag, None)
                if req is not None:
                    req.error(f"broker rank {rank} was lost", "EHOSTUNREACH")
        b._client_gone(_ident(rank))

    def status(self) -> str:
        """This subtree's status: full, partial or degraded."""
        states = self.state.values()
        statuses = self.child_status.values()
        if "lost" in states or any(s in ("lost", "degraded") for s in statuses):
            return "degraded"
        if "offline" in states or "partial" in statuses:
            return "partial"
        return "full"

    def _report_status(self) -> None:
        status = self.status()
        if status == self._status:
            return
        self._status = status
        if self.boot.parent is not None and self._up is not None:
            self.broker.send_to(self.boot.parent, "overlay.child-status",
                                {"rank": self.rank, "status": status})

    def _child_status_msg(self, req) -> None:
        body = req.body if isinstance(req.body, dict) else {}
        rank, status = body.get("rank"), body.get("status")
        if rank in self.child_status and status in ("full", "partial", "degraded"):
            self.child_status[rank] = status
            self._report_status()

    def _health(self, req) -> None:
        """{}: this broker's rank, subtree status and each child's state."""
        req.respond({"rank": self.rank, "host": self.boot.hosts[self.rank],
                     "status": self.status(),
                     "children": [{"rank": r, "host": self.boot.hosts[r], "state": s,
                                   "status": self.child_status[r] if s == "online" else s}
                                  for r, s in sorted(self.state.items())]})

    def _hello(self, req) -> None:
        """(rank 0) A broker joined: tell whoever waits for it (the test launcher)."""
        body = req.body if isinstance(req.body, dict) else {}
        for fn in self.hello_handlers:
            fn(body)
        req.respond()

    # -- connection events -----------------------------------------------------------------
    def _down_event(self, frames: list[bytes]) -> None:
        event = monitor.parse_monitor_message(frames)
        kind = event["event"]
        if kind == zmq.EVENT_DISCONNECTED:
            self.probe()
            asyncio.get_running_loop().call_later(0.2, self.probe)
        elif kind in (zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
                      zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL):
            log.error("overlay: refused a peer on %s: CURVE handshake failed (it does not "
                      "hold this instance's certificate)", event["endpoint"].decode())

    def probe(self) -> None:
        """Find which children are gone: sending to one fails (ROUTER_MANDATORY)."""
        for rank, state in list(self.state.items()):
            if state == "online":
                self._send_down(rank, b"")

    def _up_event(self, frames: list[bytes]) -> None:
        event = monitor.parse_monitor_message(frames)
        kind = event["event"]
        if kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            self._up_ready = True
            return
        if self.stopping:
            return
        # rank 0's overlay.shutdown arrives just before it hangs up, but the monitor's
        # socket may be read first: what the parent sent before leaving counts first
        self._up_reader._drain()
        if self.stopping:
            return
        if kind == zmq.EVENT_DISCONNECTED and self._up_ready:
            why = f"lost the connection to its parent (rank {self.boot.parent})"
        else:  # the handshake failed, or the parent hung up in the middle of it
            why = (f"was refused by its parent (rank {self.boot.parent}) at "
                   f"{self.boot.parent_endpoint}: not the same CURVE certificate")
        if self.on_stop is not None:
            self.on_stop(why)


class JoinWatch:
    """(rank 0) Waits until every other broker of the instance has joined (said
    ``overlay.hello``), so that the initial program starts on a whole instance:
    brokers forked for ``--test-size`` and brokers started by a PMI launcher are
    waited for alike. Whoever knows a broker cannot join any more (the test
    launcher sees it exit) ends the wait early with `fail`."""

    def __init__(self, overlay: Overlay) -> None:
        self.overlay = overlay
        self.size = overlay.boot.size
        self.joined: set[int] = set()
        self._done: asyncio.Future = asyncio.get_running_loop().create_future()
        if self.size == 1:
            self._done.set_result(None)
        overlay.hello_handlers.append(self._hello)

    def _hello(self, body: dict) -> None:
        rank = body.get("rank")
        if isinstance(rank, int) and 0 < rank < self.size:
            self.joined.add(rank)
            if len(self.joined) == self.size - 1 and not self._done.done():
                self._done.set_result(None)

    def fail(self, exc: Exception) -> None:
        """End the wait with `exc` (if it has not ended yet)."""
        if not self._done.done():
            self._done.set_exception(exc)

    async def wait(self, timeout: float = JOIN_TIMEOUT) -> None:
        """Return once every broker has joined; ConfigError naming the first missing
        rank after `timeout`, or what `fail` was given."""
        try:
            await asyncio.wait_for(self._done, timeout)
        except TimeoutError:
            missing = sorted(set(range(1, self.size)) - self.joined)
            raise ConfigError(f"broker rank {missing[0]} did not join the instance in "
                              f"{timeout:g}s") from None
        finally:
            self.overlay.hello_handlers.remove(self._hello)


def overlay_attrs(boot: Bootstrap, overlay: Overlay | None) -> dict:
    """The ``tbon.*`` and ``broker.mapping`` attributes of a broker."""
    import json

    if boot.mode == "test":  # every broker on this one node
        mapping = [[0, 1, boot.size, 1]]
    else:  # one broker per node
        mapping = [[0, boot.size, 1, 1]]
    return {"broker.mapping": json.dumps({"version": 1, "map": mapping},
                                         separators=(",", ":")),
            "tbon.fanout": boot.fanout,
            "tbon.parent-endpoint": boot.parent_endpoint,
            "tbon.endpoint": overlay.endpoint if overlay is not None else "",
            "tbon.level": _level(boot.rank, boot.fanout)}


def _level(rank: int, fanout: int) -> int:
    level = 0
    while rank > 0:
        rank = (rank - 1) // fanout
        level += 1
    return level
