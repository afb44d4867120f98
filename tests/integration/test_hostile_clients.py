"""Hostile clients on a broker's local socket: random, truncated, malformed and
oversized messages, and requests with wrong types in every field.

The promise (docs/reliability.md): the offending client gets a clear one-line error,
or, where no answer is possible (no tag to answer, not even a message), its message is
dropped or its connection closed; the broker stays up, and another, well-behaved
client still submits a job and sees it complete.
"""

from __future__ import annotations

import socket
import struct
import time

import msgspec
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import strato
from strato import job
from strato.core import proto
from strato.core.errors import RPCError

LIMIT = 1 << 20  # the instance's broker.message-size-limit: small, so tests stay cheap
CONFIG = f"""
[broker]
message-size-limit = "{LIMIT // 1024}k"
[exec]
backend = "sim"
[[resource.config]]
hosts = "node[0-3]"
cores = "0-3"
"""
pack = msgspec.msgpack.encode


@pytest.fixture
def hostile(make_instance):
    return make_instance(config=CONFIG)


class RawDealer:
    """A ZeroMQ client that sends whatever bytes it is given as one message."""

    def __init__(self, uri: str) -> None:
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(proto.uri_to_endpoint(uri))
        self.pings = 10**6

    def send(self, *frames: bytes) -> None:
        self.sock.send_multipart(frames)

    def replies(self, timeout: float = 30) -> dict:
        """Every response up to the answer of a ping sent now (so every message sent
        before has been handled): ``{tag: (body, error)}``; the broker must answer."""
        self.pings += 1
        self.sock.send(proto.request("broker.ping", self.pings, "alive?"))
        got = {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.sock.poll(1000):
                continue
            _, tag, body, err, _more = msgspec.msgpack.decode(self.sock.recv())
            if tag == self.pings:
                assert (body, err) == ("alive?", None)
                return got
            got[tag] = (body, err)
        raise AssertionError("the broker did not answer a ping")

    def answers(self, tags: set[int], timeout: float = 30) -> dict:
        """The final responses to requests `tags` (a service may answer later than a
        ping sent after them, e.g. a coroutine): ``{tag: (body, error)}``."""
        got = {}
        deadline = time.monotonic() + timeout
        while set(got) != tags and time.monotonic() < deadline:
            if self.sock.poll(1000):
                _, tag, body, err, more = msgspec.msgpack.decode(self.sock.recv())
                if tag in tags and not more:
                    got[tag] = (body, err)
        return got

    def close(self) -> None:
        self.sock.close(0)


def well_behaved_client_runs_a_job(uri: str) -> None:
    """What must still work after the garbage: a job submitted, run and recorded."""
    with strato.Handle(uri) as h:
        jobid = job.submit(h, strato.JobspecV1.from_command(["true"], environment={}))
        result = job.wait(h, jobid)
        assert result.success and result.result == "COMPLETED"


def one_line_error(reply: tuple) -> str:
    body, err = reply
    assert isinstance(err, str) and err and err.splitlines() == [err], reply
    return err


# -- messages that decode badly or not at all --------------------------------------------

def test_malformed_messages_get_an_error_or_are_dropped(hostile):
    bad = RawDealer(hostile.uri)
    good = RawDealer(hostile.uri)  # another client, talking all along
    try:
        for data in (b"", b"\xc1", b"\x93\x00", b'{"topic": "x"}', b"\x91" * 100000,
                     pack(5), pack([]), pack({"0": 1}), pack([0]), pack([0, "broker.ping"]),
                     pack([7, "broker.ping", 1, None, 0]),  # unknown kind
                     pack([0, "broker.ping", "tag", None, 0]),  # no usable tag
                     pack([1, 5, None, None, False]),  # a response nobody waits for
                     pack([0, "broker.ping", 9, None, 2, 0, 0])):  # 7 fields
            bad.send(data)
        bad.send(b"two", b"frames")
        assert bad.replies() == {}
        # the tag is usable: an EPROTO error naming the field
        bad.send(pack([0, 5, 1, None, 0]))
        bad.send(pack([0, "broker.ping", 2, None, "stream"]))
        bad.send(pack([0, "broker.ping", 3, None, 0, "rank0"]))
        bad.send(pack([0, ["broker", "ping"], 4, None, 0]))
        bad.send(pack([0, "no.such.service", 5, None, 0]))
        bad.send(pack([0, "no\nsuch", 6, None, 0]))
        bad.send(pack([0, "broker.ping", 7, None, 0, 99]))  # a rank that does not exist
        got = bad.replies()
        assert {tag: one_line_error(r) for tag, r in got.items()} == {
            1: "malformed request: the topic must be a string",
            2: "malformed request: the flags must be an integer",
            3: "malformed request: the nodeid must be an integer",
            4: "malformed request: the topic must be a string",
            5: "no service matches no.such.service",
            6: "no service matches 'no\\nsuch'",
            7: "no route to rank 99 (instance size is 1)",
        }
        assert {got[t][0] for t in (1, 2, 3, 4)} == {"EPROTO"}
        assert good.replies() == {}  # the other client was not disturbed
        well_behaved_client_runs_a_job(hostile.uri)
    finally:
        bad.close()
        good.close()
    assert hostile.proc.poll() is None
    hostile.proc.stdin.close()  # end it, then read what it logged
    hostile.proc.wait(timeout=60)
    log = hostile.proc.stderr.read()
    assert "Traceback" not in log
    dropped = [line for line in log.splitlines() if line.startswith("dropped a message")]
    assert dropped, log
    assert any(line.endswith(": not a msgpack message") for line in dropped), log


# hypothesis: random bytes, random msgpack values, and requests whose every field may be
# of a wrong type
json_like = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.floats() | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=4),
    max_leaves=10,
)
field = json_like | st.integers(-3, 3) | st.sampled_from(["broker.ping", "kvs.get", "attr.get",
                                                            "job-manager.list"])
requests = st.builds(lambda kind, topic, tag, body, flags, rest: [kind, topic, tag, body, flags,
                                                                   *rest],
                     st.sampled_from([0, 0, 0, 1]) | field, field,
                     st.integers(100, 10**6) | field, json_like, st.sampled_from([0, 1]) | field,
                     st.lists(field, max_size=2))
garbage = st.binary(max_size=64) | json_like.map(pack) | requests.map(pack)


def test_random_messages_leave_the_broker_serving(hostile):
    bad = RawDealer(hostile.uri)

    @settings(max_examples=80, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(garbage, min_size=1, max_size=5))
    def send_garbage(messages: list[bytes]) -> None:
        for data in messages:
            bad.send(data)
        for reply in bad.replies().values():  # every answer is one clear line
            if reply[1] is not None:
                one_line_error(reply)

    try:
        send_garbage()
    finally:
        bad.close()
    assert hostile.proc.poll() is None
    well_behaved_client_runs_a_job(hostile.uri)


# every service a client may call that cannot stop the instance or keep jobs from running
# (broker.shutdown, module.*, queue.control, resource.drain and kvs.commit can, on purpose)
TOPICS = ["attr.get", "attr.list", "broker.info", "broker.cancel", "event.subscribe",
          "plugins.list", "queue.status", "queue.wait", "resource.status", "kvs.get", "kvs.ls",
          "kvs.watch", "kvs.namespace-create", "job-manager.submit", "job-manager.events",
          "job-manager.wait", "job-manager.cancel", "job-manager.kill", "job-manager.urgency",
          "job-manager.memo", "job-list.list", "job-list.info", "job-list.job-stats",
          "module.list", "service.add", "service.remove", "sched.feasibility"]
FIELDS = ["ids", "id", "name", "key", "namespace", "jobspec", "jobspecs", "count", "urgency",
          "flags", "states", "results", "prefix", "service", "memo", "type", "note", "signum",
          "max_entries", "attrs", "since", "constraint", "userid", "severity"]
bodies = st.none() | json_like | st.dictionaries(st.sampled_from(FIELDS), json_like,
                                                  max_size=4)


def test_wrong_types_in_request_bodies_get_clear_errors(hostile):
    bad = RawDealer(hostile.uri)
    tags = iter(range(1, 10**6))

    @settings(max_examples=60, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(st.tuples(st.sampled_from(TOPICS), bodies), min_size=1, max_size=6))
    def call_with(calls: list[tuple[str, object]]) -> None:
        sent = {}
        for topic, body in calls:
            tag = next(tags)
            sent[tag] = topic
            bad.send(proto.request(topic, tag, body))
        got = bad.answers(set(sent))
        assert set(got) == set(sent), f"not answered: {set(sent) - set(got)}"
        for tag, (rbody, err) in got.items():
            if err is not None:
                one_line_error((rbody, err))
                assert rbody != "EIO", f"{sent[tag]}: {err}"  # an internal error: a bug

    try:
        call_with()
    finally:
        bad.close()
    assert hostile.proc.poll() is None
    well_behaved_client_runs_a_job(hostile.uri)


# -- the transport: truncated, huge and oversized frames -----------------------------------

def _zmtp_client(uri: str) -> socket.socket:
    """A raw unix socket that has done a ZMTP 3.0 NULL handshake as a DEALER, so that the
    frames it sends next reach the broker's ZeroMQ decoder."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(uri[len("local://"):])
    greeting = b"\xff" + b"\0" * 8 + b"\x7f" + b"\x03\x00" + b"NULL".ljust(20, b"\0") \
        + b"\x00" + b"\0" * 31
    s.sendall(greeting)
    prop = b"\x0bSocket-Type" + struct.pack(">I", 6) + b"DEALER"
    body = b"\x05READY" + prop
    s.sendall(bytes([0x04, len(body)]) + body)
    got = b""
    while len(got) < 64:  # the broker's greeting
        chunk = s.recv(64 - len(got))
        assert chunk, "the broker closed the connection during the handshake"
        got += chunk
    return s


def _closed_by_peer(s: socket.socket, timeout: float = 20) -> bool:
    """Whether the broker closes the connection (its READY and anything else it sends
    before the end of file are skipped)."""
    s.settimeout(timeout)
    try:
        while True:
            if not s.recv(65536):
                return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_frames_over_the_limit_close_the_connection_before_they_are_read(hostile):
    good = RawDealer(hostile.uri)
    try:
        for declared in (LIMIT + 1, 1 << 40, (1 << 63) - 1):
            s = _zmtp_client(hostile.uri)
            s.sendall(b"\x02" + struct.pack(">Q", declared) + b"x" * 100)  # and no more
            assert _closed_by_peer(s), f"a frame declaring {declared} bytes was accepted"
            s.close()
        # a frame within the limit, cut short by the client going away: nothing happens
        s = _zmtp_client(hostile.uri)
        s.sendall(b"\x02" + struct.pack(">Q", 1000) + b"x" * 10)
        s.close()
        # not ZeroMQ at all: the handshake fails and the connection is closed
        for junk in (b"\0" * 100, b"\xff" + b"\xee" * 63):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(hostile.uri[len("local://"):])
            s.sendall(junk)
            assert _closed_by_peer(s), f"{junk!r} kept its connection"
            s.close()
        # junk that reads as the start of an old ZMTP greeting waits for the rest (until
        # ZeroMQ's handshake timeout), holding one connection and nothing else
        lingering = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        lingering.connect(hostile.uri[len("local://"):])
        lingering.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert good.replies() == {}
        well_behaved_client_runs_a_job(hostile.uri)
        lingering.close()
        # a length prefix cut in the middle, then the client goes away
        s = _zmtp_client(hostile.uri)
        s.sendall(b"\x02\x00\x00")
        s.close()
        assert good.replies() == {}
    finally:
        good.close()
    well_behaved_client_runs_a_job(hostile.uri)


def test_an_oversized_message_from_a_raw_client_is_not_read(hostile):
    bad = RawDealer(hostile.uri)
    try:
        bad.send(proto.request("broker.ping", 1, "x" * (LIMIT + 10)))
        # the broker drops that connection; ZeroMQ reconnects the client, which is
        # served again (its oversized request is never answered)
        assert 1 not in bad.replies()
    finally:
        bad.close()
    well_behaved_client_runs_a_job(hostile.uri)


def test_the_client_library_refuses_a_request_over_the_limit(hostile):
    with strato.Handle(hostile.uri) as h:
        assert h.rpc("broker.ping", "y" * (LIMIT - 100)) == "y" * (LIMIT - 100)
        with pytest.raises(RPCError) as err:
            h.rpc("broker.ping", "y" * (LIMIT + 10))
        assert err.value.errnum == "E2BIG"
        message = str(err.value)
        assert message.splitlines() == [message]
        assert f"over the instance's message size limit of {LIMIT} bytes" in message
        assert h.rpc("attr.get", {"name": "broker.message-size-limit"})["value"] == LIMIT
        assert h.rpc("broker.ping", "still here") == "still here"  # the handle is usable
    js = strato.JobspecV1.from_command(["true"], environment={})
    js.setattr("user.blob", "z" * (LIMIT + 10))
    res = hostile.strato("job", "submit", "-", input=js.dumps())
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [res.stderr.strip()]
    assert "message size limit" in res.stderr and "Traceback" not in res.stderr
    well_behaved_client_runs_a_job(hostile.uri)


def test_the_async_client_refuses_a_request_over_the_limit(hostile):
    import asyncio

    from strato.async_handle import AsyncHandle

    async def main() -> None:
        async with AsyncHandle(hostile.uri) as h:
            with pytest.raises(RPCError, match="message size limit"):
                await h.rpc("broker.ping", "y" * (LIMIT + 10))
            assert await h.rpc("broker.ping", "ok") == "ok"

    asyncio.run(main())
