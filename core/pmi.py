"""The simple PMI-1 wire protocol: its line format, and a client of it.

A parallel launcher (strato's job shell, MPICH's Hydra, Slurm's ``srun
--mpi=pmi2``) gives each process of a parallel program ``PMI_FD`` (a connected
stream socket), ``PMI_RANK`` and ``PMI_SIZE``. Over that socket the process
sends one request per line, ``cmd=NAME key=value ...``, and reads one answer
line per request (``barrier_in`` is answered with ``barrier_out`` only once
every process of the program has entered the barrier). Processes share a
key-value store: ``put`` stages a key, a barrier makes every key put before it
visible to every process, and ``get`` reads one. ``value=`` (and ``error_msg=``
of ``abort``) is the last field of a line and runs to its end, so values may
hold spaces; nothing else may.

`SimplePMI` is the client: ``strato pmi`` (a test client, as ``flux pmi``) and
the broker's PMI bootstrap (`strato.core.bootstrap_pmi`) use it, and so can any
Python program started by such a launcher. It speaks only standard PMI-1 lines
(``cmd=init pmi_version=1 pmi_subversion=1`` first), which every launcher above
understands. The job shell's server side is `strato.shell.pmi`.
"""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Callable

from strato.core.errors import StratoError

#: PMI-1 return codes (``rc=``) a client can meet
PMI_SUCCESS = 0
PMI_FAIL = -1
PMI_ERR_INVALID_ARG = 3
PMI_ERR_INVALID_KEY = 4
PMI_ERR_INVALID_KEY_LENGTH = 5
PMI_ERR_INVALID_VAL_LENGTH = 7
PMI_ERR_INVALID_LENGTH = 8

#: the longest request or answer line either side accepts (with its newline)
MAX_LINE = 4096
#: fields that run to the end of their line (so they may hold spaces): each is last
REST_OF_LINE = ("value", "val", "error_msg")


class PMIError(StratoError):
    """The PMI service failed, refused a request, or is not there."""


def parse_line(line: str) -> dict[str, str]:
    """The fields of one protocol line (without its newline): ``{"cmd": "put",
    "key": ..., "value": ...}``. ``value=`` and ``error_msg=`` take the rest of
    the line. ValueError (naming the word) if a word is not ``key=value``."""
    fields: dict[str, str] = {}
    rest = line.strip(" ")
    while rest:
        name = rest.partition("=")[0]
        if name in REST_OF_LINE:
            fields[name] = rest[len(name) + 1:]
            break
        word, _, rest = rest.partition(" ")
        rest = rest.lstrip(" ")
        key, eq, val = word.partition("=")
        if not eq or not key:
            raise ValueError(f"'{word[:40]}' is not key=value")
        fields[key] = val
    return fields


def format_line(**fields: object) -> bytes:
    """One protocol line: the fields in order (``cmd`` first), then a newline."""
    return (" ".join(f"{k}={v}" for k, v in fields.items()) + "\n").encode()


def _check_key(what: str, key: str) -> None:
    if not key or any(c in key for c in " =\n\r\t"):
        raise PMIError(f"PMI {what}: invalid key {key!r} (a key is one word without '=')")


class SimplePMI:
    """A PMI-1 client over a connected stream socket (see module docstring)."""

    def __init__(self, fd: int, rank: int, size: int, timeout: float | None = None,
                 trace: Callable[[str], None] | None = None) -> None:
        """`trace`, if given, is called with each line sent (``C: ...``) and
        received (``S: ...``)."""
        self.trace = trace
        self.rank = rank
        self.size = size
        self.sock = socket.socket(fileno=fd)
        self.sock.settimeout(timeout)
        self._buf = b""
        self.kvsname = ""
        self.appnum = 0
        self.universe_size = size
        self.maxes: dict[str, int] = {}
        self.initialized = False

    @classmethod
    def from_environment(cls, env: dict[str, str] | None = None,
                         timeout: float | None = None,
                         trace: Callable[[str], None] | None = None) -> SimplePMI | None:
        """The client a launcher set up (``PMI_FD``, ``PMI_RANK``, ``PMI_SIZE``), or
        None outside one. PMIError (one line) if they are set but unusable."""
        env = os.environ if env is None else env
        if "PMI_FD" not in env:
            return None
        values = {}
        for name in ("PMI_FD", "PMI_RANK", "PMI_SIZE"):
            text = env.get(name)
            if text is None or not text.strip().isdigit():
                raise PMIError(f"{name}={text if text is not None else ''} is not a number "
                               "(the PMI launcher's environment is incomplete)")
            values[name] = int(text)
        if values["PMI_RANK"] >= values["PMI_SIZE"]:
            raise PMIError(f"PMI_RANK={values['PMI_RANK']} is not below "
                           f"PMI_SIZE={values['PMI_SIZE']}")
        try:
            mode = os.fstat(values["PMI_FD"]).st_mode
        except OSError:
            raise PMIError(f"PMI_FD={values['PMI_FD']} is not an open file descriptor") \
                from None
        if not stat.S_ISSOCK(mode):
            raise PMIError(f"PMI_FD={values['PMI_FD']} is not a socket (the launcher's "
                           "PMI connection is elsewhere)")
        return cls(values["PMI_FD"], values["PMI_RANK"], values["PMI_SIZE"], timeout, trace)

    # -- the wire ------------------------------------------------------------------------
    def _send(self, **fields: object) -> None:
        line = format_line(**fields)
        if self.trace is not None:
            self.trace(f"{self.rank}: C: {line.decode().rstrip()}")
        try:
            self.sock.sendall(line)
        except OSError as exc:
            raise PMIError(f"PMI {fields.get('cmd')}: cannot send: {exc.strerror or exc}") \
                from None

    def _recv(self, what: str) -> dict[str, str]:
        while b"\n" not in self._buf:
            try:
                data = self.sock.recv(MAX_LINE)
            except TimeoutError:
                raise PMIError(f"PMI {what}: no answer in {self.sock.gettimeout():g}s") \
                    from None
            except OSError as exc:
                raise PMIError(f"PMI {what}: {exc.strerror or exc}") from None
            if not data:
                raise PMIError(f"PMI {what}: the PMI server closed the connection")
            self._buf += data
            if len(self._buf) > MAX_LINE and b"\n" not in self._buf:
                raise PMIError(f"PMI {what}: an answer line longer than {MAX_LINE} bytes")
        line, _, self._buf = self._buf.partition(b"\n")
        if self.trace is not None:
            self.trace(f"{self.rank}: S: {line.decode(errors='replace')}")
        try:
            return parse_line(line.decode())
        except (UnicodeDecodeError, ValueError) as exc:
            raise PMIError(f"PMI {what}: a garbled answer: {exc}") from None

    def _call(self, expect: str, **fields: object) -> dict[str, str]:
        """Send one request and read its answer, which must be `expect` with rc=0."""
        what = str(fields["cmd"])
        self._send(**fields)
        answer = self._recv(what)
        if answer.get("cmd") != expect:
            raise PMIError(f"PMI {what}: expected cmd={expect}, got "
                           f"cmd={answer.get('cmd', '')}")
        rc = answer.get("rc", "0")
        if rc != "0":
            why = answer.get("msg") or answer.get("reason") or f"rc={rc}"
            raise PMIError(f"PMI {what} failed: {why}")
        return answer

    # -- PMI-1 ---------------------------------------------------------------------------
    def init(self) -> None:
        """Say hello, then learn the limits, the kvsname, appnum and universe size."""
        self._call("response_to_init", cmd="init", pmi_version=1, pmi_subversion=1)
        maxes = self._call("maxes", cmd="get_maxes")
        for key in ("kvsname_max", "keylen_max", "vallen_max"):
            if maxes.get(key, "").isdigit():
                self.maxes[key] = int(maxes[key])
        self.kvsname = self._call("my_kvsname", cmd="get_my_kvsname").get("kvsname", "")
        appnum = self._call("appnum", cmd="get_appnum").get("appnum", "0")
        self.appnum = int(appnum) if appnum.lstrip("-").isdigit() else 0
        usize = self._call("universe_size", cmd="get_universe_size").get("size", "")
        if usize.isdigit():
            self.universe_size = int(usize)
        self.initialized = True

    def put(self, key: str, value: str) -> None:
        """Stage `key` (visible to all once every process has passed a barrier)."""
        _check_key("put", key)
        if "\n" in value:
            raise PMIError(f"PMI put {key}: a value cannot hold a newline")
        self._call("put_result", cmd="put", kvsname=self.kvsname, key=key, value=value)

    def barrier(self) -> None:
        """Wait for every process of the program (and publish what each put)."""
        self._call("barrier_out", cmd="barrier_in")

    def get(self, key: str) -> str | None:
        """The value of `key`, or None if no process put it (before a barrier)."""
        _check_key("get", key)
        self._send(cmd="get", kvsname=self.kvsname, key=key)
        answer = self._recv("get")
        if answer.get("cmd") != "get_result":
            raise PMIError(f"PMI get: expected cmd=get_result, got cmd={answer.get('cmd')}")
        if answer.get("rc", "0") != "0":
            return None
        return answer.get("value", "")

    def abort(self, code: int, message: str) -> None:
        """Ask the launcher to end the whole program (there is no answer)."""
        self._send(cmd="abort", exitcode=code, error_msg=message.replace("\n", " "))

    def finalize(self) -> None:
        """Say goodbye and close the connection."""
        try:
            if self.initialized:
                self._call("finalize_ack", cmd="finalize")
        finally:
            self.initialized = False
            self.sock.close()

    def close(self) -> None:
        """Close the connection without finalize (after an error)."""
        self.sock.close()


class SingletonPMI:
    """The PMI of a program started alone: rank 0 of 1, its own keys only
    (``strato pmi --method=single``, as Flux's ``single``)."""

    rank = 0
    size = 1
    universe_size = 1
    appnum = 0
    kvsname = "singleton"

    def __init__(self) -> None:
        self._kvs: dict[str, str] = {}
        self._pending: dict[str, str] = {}

    def init(self) -> None:
        """Nothing to say hello to."""

    def put(self, key: str, value: str) -> None:
        _check_key("put", key)
        self._pending[key] = value

    def barrier(self) -> None:
        self._kvs.update(self._pending)
        self._pending = {}

    def get(self, key: str) -> str | None:
        _check_key("get", key)
        return self._kvs.get(key)

    def abort(self, code: int, message: str) -> None:
        raise PMIError(f"PMI abort (exit code {code}): {message}")

    def finalize(self) -> None:
        """Nothing to say goodbye to."""

    def close(self) -> None:
        """Nothing to close."""
