"""Wire format of messages between clients and brokers.

Every message is one msgpack-encoded array, the shortest encoding that still names
its kind:

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

from strato.core import msgpack_lite

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

SMALL_MESSAGE = 16 << 10  # `decode_small` leaves longer messages to msgspec


# msgspec is imported on the first encode or decode, not with this module: a short
# command exchanging a few small messages uses `encode_small`/`decode_small` and never
# pays for it. The first call replaces both names by msgspec's own (bound) methods, so
# the broker's hot paths call msgspec directly from then on.
def encode(obj: object) -> bytes:
    """`obj` in msgpack (msgspec)."""
    _load_msgspec()
    return encode(obj)


def decode(data: bytes) -> object:
    """The value of a msgpack message (msgspec)."""
    _load_msgspec()
    return decode(data)


def _load_msgspec() -> None:
    global encode, decode
    import msgspec

    encode = msgspec.msgpack.Encoder().encode
    decode = msgspec.msgpack.Decoder().decode


def encode_small(obj: object) -> bytes:
    """`encode`, without loading msgspec for a small value of plain types."""
    try:
        return msgpack_lite.pack(obj)
    except msgpack_lite.Unsupported:
        return encode(obj)


def decode_small(data: bytes) -> object:
    """`decode`, without loading msgspec for a message of at most `SMALL_MESSAGE` bytes.
    A message the small codec cannot read goes to msgspec, whose error is the one
    raised if it is not valid msgpack."""
    if len(data) <= SMALL_MESSAGE:
        try:
            return msgpack_lite.unpack(data)
        except (ValueError, TypeError, RecursionError):
            pass
    return decode(data)


def request(topic: str, tag: int, body: object, flags: int = 0,
            nodeid: int = NODEID_ANY, small: bool = False) -> bytes:
    """Encode a request message (with `small`, by `encode_small`)."""
    msg = (REQ, topic, tag, body, flags) if nodeid == NODEID_ANY else (
        REQ, topic, tag, body, flags, nodeid)
    return encode_small(msg) if small else encode(msg)


def is_int(value: object) -> bool:
    """Whether a decoded field is an integer (a bool is not; msgpack decodes no
    other subclass of int)."""
    return type(value) is int


def request_problem(msg: object) -> str | None:
    """What is wrong with a decoded request (None if nothing): the one-line reason a
    broker gives the client that sent it."""
    if not isinstance(msg, list) or len(msg) not in (5, 6):
        return "a request is an array of 5 or 6 fields"
    _, topic, tag, _body, flags, *rest = msg
    if not isinstance(topic, str):
        return "the topic must be a string"
    if type(tag) is not int:  # `is_int`, inline: every request from a client is checked
        return "the tag must be an integer"
    if type(flags) is not int:
        return "the flags must be an integer"
    if rest and type(rest[0]) is not int:
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
