"""Wire format of messages between clients and brokers.

Every message is one msgpack-encoded array (msgspec), the shortest encoding that
still names its kind:

- request:  ``[REQ, topic, tag, body, flags, nodeid]``  (flags: FLAG_STREAM,
  FLAG_NORESPONSE; ``nodeid`` is a broker rank, NODEID_ANY or NODEID_UPSTREAM,
  and may be left off, meaning NODEID_ANY)
- response: ``[RESP, tag, body, error, more]``   (error: None or a one-line str;
  ``more`` is true for the intermediate responses of a streaming request)
- event: ``[EVENT, topic, seq, body]``, only between brokers (from a parent to
  its overlay children); clients get events as responses to ``event.subscribe``

Requests are routed by topic (``service.method``) and nodeid; the tag matches
responses to the request on the client side. A client that provides a service
(``service.add``) receives requests in the same shape on its own socket and
answers them with responses carrying the tag it was given.

A broker reads no message from a client larger than its
``broker.message-size-limit`` (default `DEFAULT_MESSAGE_SIZE_LIMIT`, never below
`MIN_MESSAGE_SIZE_LIMIT`): it closes the connection of a client whose frame
declares more, before reading the frame. So a client library checks a request
larger than `MIN_MESSAGE_SIZE_LIMIT` against the limit (the broker attribute
``broker.message-size-limit``) and refuses it itself, with a clear error.
"""

from __future__ import annotations

import msgspec

REQ = 0
RESP = 1
EVENT = 2
FLAG_STREAM = 1
FLAG_NORESPONSE = 2  # one-way: the sender wants no answer (batched protocol messages)
NODEID_ANY = -1  # the nearest broker that has the service (on one broker: this one)
NODEID_UPSTREAM = -2  # the broker's parent in the overlay (rank 0 has none)
MAX_FRAME = 1 << 30  # on a stream socket, a longer length is garbage, not a message
DEFAULT_MESSAGE_SIZE_LIMIT = 64 << 20
MIN_MESSAGE_SIZE_LIMIT = 1 << 20  # smaller requests never need a look at the limit

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder()

encode = _encoder.encode
decode = _decoder.decode


def request(topic: str, tag: int, body: object, flags: int = 0,
            nodeid: int = NODEID_ANY) -> bytes:
    """Encode a request message."""
    if nodeid == NODEID_ANY:
        return encode((REQ, topic, tag, body, flags))
    return encode((REQ, topic, tag, body, flags, nodeid))


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def request_problem(msg: object) -> str | None:
    """What is wrong with a decoded request (None if nothing): the one-line reason a
    broker gives the client that sent it."""
    if not isinstance(msg, list) or len(msg) not in (5, 6):
        return "a request is an array of 5 or 6 fields"
    _, topic, tag, _body, flags, *rest = msg
    if not isinstance(topic, str):
        return "the topic must be a string"
    if not is_int(tag):
        return "the tag must be an integer"
    if not is_int(flags):
        return "the flags must be an integer"
    if rest and not is_int(rest[0]):
        return "the nodeid must be an integer"
    return None


def response(tag: int, body: object, error: str | None = None, more: bool = False) -> bytes:
    """Encode a response message."""
    return encode((RESP, tag, body, error, more))


def event(topic: str, seq: int, body: object) -> bytes:
    """Encode an event as a parent passes it to its overlay children."""
    return encode((EVENT, topic, seq, body))


# -- framing on stream sockets: a 4-byte little-endian length, then the message ----------
class FrameTooLarge(ValueError):
    """A frame declares more bytes than the reader accepts (``size``)."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"a message of {size} bytes is over the limit of {limit} bytes")
        self.size = size
        self.limit = limit


def frame(payload: bytes) -> bytes:
    """`payload` framed for a stream socket."""
    return len(payload).to_bytes(4, "little") + payload


def take_frame(buf: bytearray, limit: int = MAX_FRAME) -> bytes | None:
    """Remove the first whole message from the front of `buf` and return it (None while
    it has not all arrived); FrameTooLarge, before reading it, for a length over
    `limit`. Every reader of framed streams (the broker's links, both handles, the
    shell host's connector) parses with this."""
    if len(buf) < 4:
        return None
    size = int.from_bytes(buf[:4], "little")
    if size > limit:
        raise FrameTooLarge(size, limit)
    if len(buf) - 4 < size:
        return None
    payload = bytes(buf[4:4 + size])
    del buf[:4 + size]
    return payload
