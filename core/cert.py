"""The CURVE certificate that every broker of a multi-broker instance shares.

As in Flux, an instance has one keypair: each broker listens for its overlay
children as a CURVE server with it and connects to its parent as a CURVE client
with it, and a peer is accepted only if it presents the same public key. So a
broker with another instance's certificate cannot join, and the overlay's
traffic is encrypted.

The file is ZeroMQ's certificate format (ZPL, as ``zmq.auth.create_certificates``
and czmq's ``zcert_save`` write it, the latter being what ``flux keygen``
uses): a ``curve`` section with Z85 ``public-key`` and ``secret-key``. It is
written mode 0600, since whoever reads it can join the instance.
"""

from __future__ import annotations

import os
import re
import socket
import time
from dataclasses import dataclass

from strato.core.errors import ConfigError

_KEY = re.compile(r'^\s*(public-key|secret-key)\s*=\s*"([^"]*)"\s*$')


@dataclass(frozen=True)
class Cert:
    """A CURVE keypair, each key 40 Z85 characters."""

    public: bytes
    secret: bytes


def new_cert(name: str | None = None) -> tuple[Cert, str]:
    """A new keypair and the text of its certificate file."""
    import zmq

    public, secret = zmq.curve_keypair()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    text = (f"#   ****  Generated on {stamp} by strato keygen  ****\n"
            "#   ZeroMQ CURVE **Secret** Certificate\n"
            "#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n\n"
            "metadata\n"
            f'    name = "{name or socket.gethostname()}"\n'
            f'    keygen.time = "{stamp}"\n'
            "curve\n"
            f'    public-key = "{public.decode()}"\n'
            f'    secret-key = "{secret.decode()}"\n')
    return Cert(public, secret), text


def keygen(path: str, name: str | None = None) -> Cert:
    """Write a new certificate to `path` (which must not exist, and is made mode
    0600); ConfigError if it cannot be written."""
    cert, text = new_cert(name)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return cert


def load_cert(path: str) -> Cert:
    """Read a certificate; ConfigError names the file and what is wrong with it."""
    try:
        with open(path, "rb") as f:
            raw = f.read(65536)
    except OSError as exc:
        raise ConfigError(f"cannot read CURVE certificate {path}: {exc.strerror}") from None
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a CURVE certificate (not text)") from None
    keys: dict[str, str] = {}
    for line in text.splitlines():
        m = _KEY.match(line)
        if m:
            keys[m.group(1)] = m.group(2)
    for which in ("public-key", "secret-key"):
        if which not in keys:
            raise ConfigError(f"{path}: not a CURVE certificate (no {which})")
        if not _is_z85_key(keys[which]):
            raise ConfigError(f"{path}: {which} is not a 40-character Z85 key")
    public, secret = keys["public-key"].encode(), keys["secret-key"].encode()
    import zmq

    if zmq.curve_public(secret) != public:
        raise ConfigError(f"{path}: public-key does not belong to secret-key")
    return Cert(public, secret)


def _is_z85_key(text: str) -> bool:
    from zmq.utils import z85

    if len(text) != 40:
        return False
    try:
        return len(z85.decode(text)) == 32
    except (ValueError, KeyError, IndexError):
        return False
