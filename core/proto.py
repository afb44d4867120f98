"""Wire format of messages between clients and brokers.

Every message is one msgpack-encoded array (msgspec), the shortest encoding that
still names its kind:

- request:  ``[REQ, topic, tag, body, flags, nodeid]``  (flags: FLAG_STREAM,
  FLAG_NORESPONSE; ``nodeid`` is a broker rank, NODEID_ANY or NODEID_UPSTREAM,
  and may be left off, meaning NODEID_ANY)
- response: ``[RESP, tag, body, error, more]``   (error: None or a one-line str;
  ``more`` is true for the intermediate responses of a streaming request)

Requests are routed by topic (``service.method``) and nodeid; the tag matches
responses to the request on the client side. A client that provides a service
(``service.add``) receives requests in the same shape on its own socket and
answers them with responses carrying the tag it was given.
"""

from __future__ import annotations

import msgspec

REQ = 0
RESP = 1
FLAG_STREAM = 1
FLAG_NORESPONSE = 2  # one-way: the sender wants no answer (batched protocol messages)
NODEID_ANY = -1  # the nearest broker that has the service (on one broker: this one)
NODEID_UPSTREAM = -2  # the broker's parent in the overlay (rank 0 has none)
MAX_FRAME = 1 << 30  # on a stream socket, a longer length is garbage, not a message

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


def response(tag: int, body: object, error: str | None = None, more: bool = False) -> bytes:
    """Encode a response message."""
    return encode((RESP, tag, body, error, more))
