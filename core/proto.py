"""Wire format of messages between clients and brokers.

Every message is one msgpack-encoded array (msgspec), the shortest encoding that
still names its kind:

- request:  ``[REQ, topic, tag, body, flags]``  (flags: FLAG_STREAM)
- response: ``[RESP, tag, body, error, more]``   (error: None or a one-line str;
  ``more`` is true for the intermediate responses of a streaming request)

Requests are routed by topic (``service.method``); the tag matches responses to
the request on the client side.
"""

from __future__ import annotations

import msgspec

REQ = 0
RESP = 1
FLAG_STREAM = 1

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder()

encode = _encoder.encode
decode = _decoder.decode


def request(topic: str, tag: int, body: object, flags: int = 0) -> bytes:
    """Encode a request message."""
    return encode((REQ, topic, tag, body, flags))


def response(tag: int, body: object, error: str | None = None, more: bool = False) -> bytes:
    """Encode a response message."""
    return encode((RESP, tag, body, error, more))


def uri_to_endpoint(uri: str) -> str:
    """Map a strato URI (``local:///run/dir/local``) to a ZeroMQ endpoint."""
    if uri.startswith("local://"):
        return "ipc://" + uri[len("local://") :]
    if uri.startswith(("ipc://", "tcp://")):
        return uri
    raise ValueError(f"unsupported URI '{uri}'")
