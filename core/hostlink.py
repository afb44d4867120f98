"""How a broker finds and re-adopts a shell host that outlived it.

An instance with a statedir keeps its running jobs across a broker restart: the
shell host of each node (and, in multi-user mode, of each user on it) keeps
running, listens on a Unix socket of its own, and records where in the statedir:

- ``statedir/secret``: 32 random bytes, mode 0600, made with the statedir;
- ``statedir/shell-host.<rank>.<uid>.json``: ``{"pid", "socket", "version"}``,
  written by the host when it starts listening, removed when it exits.

A broker that comes back on the statedir connects to that socket and both sides
prove they belong to the same instance (whoever can read the secret) before
anything else passes, each on a fresh nonce of the other so that no answer can
be replayed:

1. host -> broker ``{version, nonce}``
2. broker -> host ``{proof: HMAC(secret, "broker" + nonce), nonce, seq}``: ``seq``
   is the last of the host's messages the broker has recorded
3. host -> broker ``{proof: HMAC(secret, "host" + nonce), pid, rank, uid, jobs}``:
   ``jobs`` maps each job id it holds (running, or whose end the broker has not
   recorded) to its tasks' process groups

Then the socket carries the ordinary framed messages (`strato.core.framing`),
the host first replaying what it sent after ``seq``. The host also checks the
connecting process's uid (SO_PEERCRED). Frames here are `strato.core.framing`'s
(4-byte length, msgpack body).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import socket
import struct
from pathlib import Path

from strato.core import proto

VERSION = 1
SECRET_NAME = "secret"
MAX_HANDSHAKE_FRAME = 1 << 20  # a handshake message is small: anything bigger is garbage


def endpoint_file(statedir: Path | str, rank: int, uid: int) -> Path:
    """Where the shell host of `rank` and user `uid` records its socket."""
    return Path(statedir) / f"shell-host.{rank}.{uid}.json"


def spool_file(statedir: Path | str, rank: int, uid: int) -> Path:
    """Where that host spills messages its broker has not recorded yet."""
    return Path(statedir) / f"shell-host.{rank}.{uid}.spool"


def log_file(statedir: Path | str, rank: int, uid: int) -> Path:
    """Where that host logs once its broker (and the broker's stderr) is gone."""
    return Path(statedir) / f"shell-host.{rank}.{uid}.log"


def ensure_secret(statedir: Path) -> None:
    """Make the instance's secret (mode 0600) unless the statedir has one.

    Written whole under a temporary name, then linked into place (which fails if
    another broker of the instance made it first): a broker of another rank that
    shares the statedir never reads a secret half written."""
    path = statedir / SECRET_NAME
    if path.exists():
        return
    tmp = statedir / f"{SECRET_NAME}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32))
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:  # a full disk leaves no empty secret behind
        tmp.unlink(missing_ok=True)


def read_secret(statedir: Path | str) -> bytes:
    """The instance's secret; OSError or ValueError if it is missing or not one."""
    data = (Path(statedir) / SECRET_NAME).read_bytes()
    if len(data) < 16:
        raise ValueError(f"{Path(statedir) / SECRET_NAME}: not a secret")
    return data


def proof(secret: bytes, who: str, nonce: bytes) -> bytes:
    """What `who` ("broker" or "host") answers to the other side's `nonce`."""
    return hmac.new(secret, who.encode() + nonce, hashlib.sha256).digest()


def check_proof(secret: bytes, who: str, nonce: bytes, answer: object) -> bool:
    return isinstance(answer, bytes) and hmac.compare_digest(proof(secret, who, nonce), answer)


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of a Unix socket."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]  # pid, uid, gid


def frame(body: dict) -> bytes:
    return proto.frame(proto.encode(body))


class HandshakeError(Exception):
    """The other side is not a shell host of this instance, or said nothing usable."""


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise HandshakeError("it closed the connection")
        data += chunk
    return bytes(data)


def stop_host(path: str, secret: bytes, timeout: float) -> int:
    """Authenticate to a shell host (as `adopt`) that holds only what the instance
    has ended, and make it SIGKILL its tasks and exit; returns its pid. Raises
    HandshakeError or OSError."""
    # every message it kept is recorded as far as it is concerned: nothing is replayed
    sock, answer = adopt(path, secret, 1 << 62, timeout)
    with sock:
        sock.sendall(proto.frame(proto.request("shell-host.stop", 0, {},
                                               proto.FLAG_NORESPONSE)))
    return answer["pid"]


def recv_frame(sock: socket.socket) -> dict:
    """One handshake message from a blocking socket (with a timeout set)."""
    size = int.from_bytes(_recv_exact(sock, 4), "little")
    if size > MAX_HANDSHAKE_FRAME:
        raise HandshakeError("it answered garbage (an oversized frame)")
    try:
        body = proto.decode(_recv_exact(sock, size))
    except Exception:
        raise HandshakeError("it answered garbage (not a message)") from None
    if not isinstance(body, dict):
        raise HandshakeError("it answered garbage (not a mapping)")
    return body


def adopt(path: str, secret: bytes, seq: int, timeout: float) -> tuple[socket.socket, dict]:
    """Connect to a shell host's socket and authenticate (the broker's side, blocking
    for at most about `timeout` seconds per step). Returns the connected socket and
    the host's last handshake message; raises HandshakeError or OSError."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(path)
        hello = recv_frame(sock)
        nonce = hello.get("nonce")
        if hello.get("version") != VERSION or not isinstance(nonce, bytes):
            raise HandshakeError(f"it speaks another protocol (version {hello.get('version')!r})")
        mine = secrets.token_bytes(32)
        sock.sendall(frame({"proof": proof(secret, "broker", nonce), "nonce": mine,
                            "seq": seq}))
        answer = recv_frame(sock)
        if answer.get("error"):
            raise HandshakeError(f"it refused us: {str(answer['error'])[:200]}")
        if not check_proof(secret, "host", mine, answer.get("proof")):
            raise HandshakeError("it is not a shell host of this instance (bad proof)")
        jobs = answer.get("jobs")
        if not isinstance(jobs, dict) or not isinstance(answer.get("pid"), int):
            raise HandshakeError("it answered garbage (no jobs or pid)")
        sock.settimeout(None)
        return sock, answer
    except TimeoutError:
        sock.close()
        raise HandshakeError(f"it did not answer within {timeout:g}s") from None
    except BaseException:
        sock.close()
        raise
