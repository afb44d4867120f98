"""Hostile clients on a broker's local socket: random, truncated, malformed and
oversized messages, and requests with wrong types in every field.

The promise (docs/reliability.md): the offending client gets a clear one-line error,
or, where no answer is possible (no tag to answer, not even a message), its message is
dropped or its connection closed; the broker stays up, and another, well-behaved
client still submits a job and sees it complete.
"""

from __future__ import annotations

import select
import socket
import time

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import strato
from strato import job
from strato.core import proto
from strato.core.errors import RPCError
from strato.handle import frame, split_frames, uri_path

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


class RawClient:
    """A client on the broker's local socket that sends whatever it is given, framed
    (``send``) or as raw bytes (``send_raw``)."""

    def __init__(self, uri: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(uri_path(uri))
        self.rbuf = bytearray()
        self.pings = 10**6

    def send(self, payload: bytes) -> None:
        self.sock.sendall(frame(payload))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _next(self, deadline: float) -> list | None:
        """The next message from the broker (None at the deadline)."""
        while True:
            frames = split_frames(self.rbuf)
            if frames:
                self.rbuf[:0] = b"".join(frame(f) for f in frames[1:])
                return msgspec.msgpack.decode(frames[0])
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([self.sock], [], [], wait)[0]:
                return None
            data = self.sock.recv(1 << 18)
            assert data, "the broker closed the connection"
            self.rbuf += data

    def replies(self, timeout: float = 30) -> dict:
        """Every response up to the answer of a ping sent now (so every message sent
        before has been read): ``{tag: (body, error)}``; the broker must answer."""
        self.pings += 1
        self.send(proto.request("broker.ping", self.pings, "alive?"))
        got = {}
        deadline = time.monotonic() + timeout
        while (msg := self._next(deadline)) is not None:
            _, tag, body, err, _more = msg
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
        while set(got) != tags and (msg := self._next(deadline)) is not None:
            _, tag, body, err, more = msg
            if tag in tags and not more:
                got[tag] = (body, err)
        return got

    def closed_by_broker(self, timeout: float = 20) -> bool:
        """Whether the broker closes this connection (what it sent before is skipped)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not select.select([self.sock], [], [], deadline - time.monotonic())[0]:
                return False
            try:
                if not self.sock.recv(1 << 18):
                    return True
            except ConnectionResetError:
                return True
        return False

    def close(self) -> None:
        self.sock.close()


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
    bad = RawClient(hostile.uri)
    good = RawClient(hostile.uri)  # another client, talking all along
    try:
        for data in (b"", b"\xc1", b"\x93\x00", b'{"topic": "x"}', b"\x91" * 100000,
                     pack(5), pack([]), pack({"0": 1}), pack([0]), pack([0, "broker.ping"]),
                     pack([7, "broker.ping", 1, None, 0]),  # unknown kind
                     pack([0, "broker.ping", "tag", None, 0]),  # no usable tag
                     pack([1, 5, None, None, False]),  # a response nobody waits for
                     pack([0, "broker.ping", 9, None, 2, 0, 0])):  # 7 fields
            bad.send(data)
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
    dropped = [line for line in log.splitlines() if line.startswith("dropped a message from")]
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
    bad = RawClient(hostile.uri)

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
    bad = RawClient(hostile.uri)
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


# -- the transport: truncated, huge and oversized frames ----------------------------------

def _length(n: int) -> bytes:
    return n.to_bytes(4, "little")


def test_frames_over_the_limit_close_the_connection_before_they_are_read(hostile):
    good = RawClient(hostile.uri)  # another client, connected all along
    try:
        for declared in (LIMIT + 1, 1 << 31, (1 << 32) - 1):
            bad = RawClient(hostile.uri)
            bad.send_raw(_length(declared) + b"x" * 100)  # and nothing more
            assert bad.closed_by_broker(), f"a frame declaring {declared} bytes was accepted"
            bad.close()
        # a whole message over the limit: the connection is closed at its length
        bad = RawClient(hostile.uri)
        try:
            bad.send(proto.request("broker.ping", 1, "x" * (LIMIT + 10)))
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed while it was still sending
        assert bad.closed_by_broker()
        bad.close()
        # a length prefix cut in the middle, and a frame cut short, then the client
        # goes away: nothing is left of them
        for data in (b"\x05\x00", _length(1000) + b"y" * 10):
            bad = RawClient(hostile.uri)
            bad.send_raw(data)
            bad.close()
        assert good.replies() == {}
    finally:
        good.close()
    well_behaved_client_runs_a_job(hostile.uri)
    hostile.proc.stdin.close()  # end it, then read what it logged
    hostile.proc.wait(timeout=60)
    log = hostile.proc.stderr.read()
    closed = [line for line in log.splitlines() if line.startswith("closed the connection")]
    assert len(closed) == 4, log
    assert closed[0].endswith(f"a message of {LIMIT + 1} bytes is over the limit of "
                              f"{LIMIT} bytes"), closed[0]


def test_random_byte_streams_leave_the_broker_serving(hostile):
    good = RawClient(hostile.uri)

    @settings(max_examples=60, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(st.binary(max_size=40) | garbage.map(frame), min_size=1, max_size=4))
    def stream(chunks: list[bytes]) -> None:
        bad = RawClient(hostile.uri)
        try:
            for chunk in chunks:
                bad.send_raw(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the broker closed it: a length over the limit
        bad.close()
        assert good.replies() == {}  # the broker serves the others meanwhile

    try:
        stream()
    finally:
        good.close()
    assert hostile.proc.poll() is None
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
