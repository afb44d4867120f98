"""The job shell's PMI-1 server: how the tasks of a parallel program find each other.

Each task of a job gets one end of a socketpair as ``PMI_FD`` (fd 3), with
``PMI_RANK`` (its task rank) and ``PMI_SIZE`` (the job's task count), and speaks
the simple PMI-1 wire protocol (`strato.core.pmi`) to its shell: MPICH's
``MPI_Init``, ``strato pmi``, a ``strato start`` that bootstraps its brokers.
It is on by default for jobs of more than one task (``-o pmi=simple``, as
Flux's shell); ``-o pmi=off`` turns it off.

The key-value exchange spans every node of the job. A shell stages the keys its
tasks put; when all of its tasks have entered a barrier it sends them, in one
message, to rank 0's ``pmi.exchange`` service (`strato.core.pmi_exchange`),
which answers every shell once all shells of the job have come, with every
key put since the last barrier; then each shell answers ``barrier_out`` to its
tasks. A job on one node needs no message at all. The shell presets
``PMI_process_mapping``, MPICH's map of which ranks share a node.

A task that sends garbage, or aborts (``cmd=abort``), ends the job with an
``exec`` exception naming it. So does one that closes its connection between
``init`` and ``finalize`` when that leaves a barrier unable to complete: in one
then, or when one starts later anywhere in the job (rank 0 is told, and fails
every shell's barrier). The shell host and the broker go on.
"""

from __future__ import annotations

import asyncio
import socket

from strato.core import ids
from strato.core.errors import RPCError
from strato.core.pmi import (
    MAX_LINE,
    PMI_ERR_INVALID_KEY_LENGTH,
    PMI_ERR_INVALID_VAL_LENGTH,
    PMI_FAIL,
    format_line,
    parse_line,
)
from strato.core.pmi_exchange import MAX_KEYS

#: limits this server announces (``get_maxes``), as Flux's shell
KVSNAME_MAX = 64
KEYLEN_MAX = 64
VALLEN_MAX = 2048
#: where a task finds its PMI socket
TASK_FD = 3
PMI_NAMES = ("simple", "off")


def pmi_wanted(option: object, ntasks: int) -> bool:
    """Does a job with shell option ``pmi`` = `option` and `ntasks` tasks get PMI?
    ValueError (one line) for a value naming an interface this shell lacks."""
    if option is None:
        return ntasks > 1
    if option is True or option == 1:
        return True
    names = [n.strip() for n in str(option).split(",") if n.strip()]
    bad = [n for n in names if n not in PMI_NAMES]
    if bad or not names:
        what = bad[0] if bad else str(option)
        raise ValueError(f"-o pmi={option}: unknown PMI '{what}' (this shell offers: "
                         "simple, off)")
    return "simple" in names and "off" not in names


def process_mapping(node_of_task: list[int]) -> str:
    """MPICH's ``PMI_process_mapping`` for tasks placed on nodes (task rank order,
    nodes numbered 0..N-1): ``(vector,(first node,nodes,tasks per node),...)``,
    each block giving its count of consecutive ranks to each of its nodes in turn."""
    runs: list[list[int]] = []  # [node, run length]
    for node in node_of_task:
        if runs and runs[-1][0] == node:
            runs[-1][1] += 1
        else:
            runs.append([node, 1])
    blocks: list[list[int]] = []  # [first node, nodes, per node]
    for node, count in runs:
        last = blocks[-1] if blocks else None
        if last is not None and last[2] == count and last[0] + last[1] == node:
            last[1] += 1
        else:
            blocks.append([node, 1, count])
    return "(vector," + ",".join(f"({a},{b},{c})" for a, b, c in blocks) + ")"


class _Client:
    """One task's end of the protocol."""

    __slots__ = ("rank", "sock", "fd", "inbuf", "outbuf", "initialized", "finalized",
                 "in_barrier", "in_spawn", "closed")

    def __init__(self, rank: int, sock: socket.socket) -> None:
        self.rank = rank
        self.sock = sock
        self.fd = sock.fileno()
        self.inbuf = b""
        self.outbuf = b""
        self.initialized = False
        self.finalized = False
        self.in_barrier = False
        self.in_spawn = False  # between ``mcmd=spawn`` and ``endcmd``
        self.closed = False


class ProtocolError(Exception):
    """A request this server cannot make sense of."""


class ShellPMI:
    """The PMI server of one job shell (see module docstring)."""

    def __init__(self, shell, layout: list[tuple[int, int]]) -> None:
        self.shell = shell
        self.loop = asyncio.get_running_loop()
        self.job = shell.job
        self.size = len(layout)
        nodes = list(dict.fromkeys(r for r, _ in layout))
        # the shells that meet at each barrier: one per broker of a spread job
        # (one shell runs every task over the virtual nodes of one broker)
        self.nshells = 1 if self.job.rank is None else len(nodes)
        index = {r: i for i, r in enumerate(nodes)}
        self.kvsname = "f" + ids.f58(self.job.id)[1:]  # ASCII, as Flux's f58 fallback
        self.locals: dict[str, str] = {}
        mapping = process_mapping([index[r] for r, _ in layout])
        if len(mapping) <= VALLEN_MAX:  # MPICH goes on without it
            self.locals["PMI_process_mapping"] = mapping
        self.kvs: dict[str, str] = {}  # what every barrier so far has published
        self.pending: dict[str, str] = {}  # put here since the last barrier
        self.clients: dict[int, _Client] = {}
        self.local_size = 0
        self.entered = 0
        self.fencing = False  # this shell's part is on its way to rank 0
        self.broken: str | None = None  # why no barrier can complete any more

    # -- tasks -----------------------------------------------------------------------------
    def connect(self, rank: int) -> tuple[int, dict[str, str]]:
        """A socketpair for task `rank`: returns the task's end (to be mapped to
        fd `TASK_FD` at spawn; the shell closes its copy once the task is spawned) and
        its environment."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        ours.setblocking(False)
        client = self.clients[rank] = _Client(rank, ours)
        self.local_size += 1
        self.loop.add_reader(client.fd, self._readable, client)
        return theirs.detach(), {"PMI_FD": str(TASK_FD), "PMI_RANK": str(rank),
                                 "PMI_SIZE": str(self.size)}

    def close(self) -> None:
        """The job is over here: close every connection."""
        for client in self.clients.values():
            self._close(client)

    def _close(self, client: _Client) -> None:
        if client.closed:
            return
        client.closed = True
        self.loop.remove_reader(client.fd)
        self.loop.remove_writer(client.fd)
        client.sock.close()

    # -- reading and writing ---------------------------------------------------------------
    def _readable(self, client: _Client) -> None:
        try:
            data = client.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._gone(client)
            return
        client.inbuf += data
        while not client.closed:
            line, nl, rest = client.inbuf.partition(b"\n")
            if not nl:
                if len(client.inbuf) > MAX_LINE:
                    self._garbage(client, f"a request line longer than {MAX_LINE} bytes")
                return
            client.inbuf = rest
            try:
                self._request(client, line.decode())
            except UnicodeDecodeError:
                self._garbage(client, "a request that is not UTF-8 text")
            except ProtocolError as exc:
                self._garbage(client, str(exc))

    def _answer(self, client: _Client, **fields: object) -> None:
        if client.closed:
            return
        pending = not client.outbuf
        client.outbuf += format_line(**fields)
        if pending:
            self._writable(client)

    def _writable(self, client: _Client) -> None:
        try:
            sent = client.sock.send(client.outbuf)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:  # the task is gone: its end of file follows
            sent = len(client.outbuf)
        client.outbuf = client.outbuf[sent:]
        if client.outbuf:
            self.loop.add_writer(client.fd, self._writable, client)
        else:
            self.loop.remove_writer(client.fd)

    # -- the protocol ------------------------------------------------------------------------
    def _request(self, client: _Client, line: str) -> None:
        if client.in_spawn:  # spawn is not offered: skip to its end, then say so
            if line.strip() == "endcmd":
                client.in_spawn = False
                self._answer(client, cmd="spawn_result", rc=-1)
            return
        try:
            req = parse_line(line)
        except ValueError as exc:
            raise ProtocolError(str(exc)) from None
        if req.get("mcmd") == "spawn":
            client.in_spawn = True
            return
        cmd = req.get("cmd")
        handler = _HANDLERS.get(cmd)
        if handler is None:
            raise ProtocolError(f"unknown request cmd={cmd}" if cmd is not None
                                else f"a request with no cmd: '{line[:40]}'")
        handler(self, client, req)

    def _init(self, client: _Client, req: dict) -> None:
        version, sub = _number(req, "pmi_version"), _number(req, "pmi_subversion")
        if version != 1 or sub < 1:  # PMI-2 clients must look elsewhere
            self._answer(client, cmd="response_to_init", rc=-1)
            return
        client.initialized = True
        self._answer(client, cmd="response_to_init", rc=0, pmi_version=1, pmi_subversion=1)

    def _maxes(self, client: _Client, req: dict) -> None:
        self._answer(client, cmd="maxes", rc=0, kvsname_max=KVSNAME_MAX,
                     keylen_max=KEYLEN_MAX, vallen_max=VALLEN_MAX)

    def _appnum(self, client: _Client, req: dict) -> None:
        self._answer(client, cmd="appnum", rc=0, appnum=0)

    def _kvsname(self, client: _Client, req: dict) -> None:
        self._answer(client, cmd="my_kvsname", rc=0, kvsname=self.kvsname)

    def _universe(self, client: _Client, req: dict) -> None:
        self._answer(client, cmd="universe_size", rc=0, size=self.size)

    def _put(self, client: _Client, req: dict) -> None:
        key, value = _field(req, "key"), _field(req, "value")
        if len(key) > KEYLEN_MAX:
            self._answer(client, cmd="put_result", rc=PMI_ERR_INVALID_KEY_LENGTH,
                         msg="key_too_long")
        elif len(value) > VALLEN_MAX:
            self._answer(client, cmd="put_result", rc=PMI_ERR_INVALID_VAL_LENGTH,
                         msg="value_too_long")
        elif key not in self.pending and len(self.pending) + len(self.kvs) >= MAX_KEYS:
            # rank 0 bounds a barrier's keys; a job on one node never reaches it, and a
            # runaway task must not grow the shell host that serves every job here
            self._answer(client, cmd="put_result", rc=PMI_FAIL, msg="too_many_keys")
        else:
            self.pending[key] = value
            self._answer(client, cmd="put_result", rc=0, msg="success")

    def _get(self, client: _Client, req: dict) -> None:
        key = _field(req, "key")
        value = self.locals.get(key)
        if value is None:
            value = self.kvs.get(key)
        if value is None:
            self._answer(client, cmd="get_result", rc=-1, msg="key_not_found")
        else:
            self._answer(client, cmd="get_result", rc=0, msg="success", value=value)

    def _getbyidx(self, client: _Client, req: dict) -> None:
        idx = _number(req, "idx")
        items = list(self.kvs.items())
        if not 0 <= idx < len(items):
            self._answer(client, cmd="getbyidx_results", rc=-2, reason="no_more_keyvals")
            return
        key, value = items[idx]
        self._answer(client, cmd="getbyidx_results", rc=0, nextidx=idx + 1, key=key,
                     val=value)

    def _finalize(self, client: _Client, req: dict) -> None:
        client.finalized = True
        self._answer(client, cmd="finalize_ack", rc=0)

    def _abort(self, client: _Client, req: dict) -> None:
        code = req.get("exitcode", req.get("exit_code", "1"))
        message = req.get("error_msg") or "aborted"
        self.shell.pmi_exception(f"task {client.rank}: PMI abort (exit code {code}):"
                                 f" {message}")

    def _unsupported(self, client: _Client, req: dict) -> None:
        answer = {"publish_name": "publish_result", "unpublish_name": "unpublish_result",
                  "lookup_name": "lookup_result"}[req["cmd"]]
        self._answer(client, cmd=answer, rc=-1, msg="not_supported")

    # -- barriers ------------------------------------------------------------------------
    def _barrier_in(self, client: _Client, req: dict) -> None:
        if client.in_barrier:
            raise ProtocolError("barrier_in twice before its barrier_out")
        client.in_barrier = True
        self.entered += 1
        if self.broken is not None:
            self._fail_barrier(self.broken)
        elif self.entered == self.local_size and not self.fencing:
            self._fence()

    def _fence(self) -> None:
        """Every local task is in the barrier: publish what they put."""
        pending, self.pending = self.pending, {}
        if self.nshells == 1:
            self.kvs.update(pending)
            self._barrier_out()
            return
        self.fencing = True
        self.loop.create_task(self._exchange(pending))

    async def _exchange(self, pending: dict[str, str]) -> None:
        conn = self.shell.host.conn
        try:
            if conn is None:
                raise RPCError("the broker is gone", "EHOSTUNREACH")
            answer = await conn.rpc("pmi.exchange", {"id": self.job.id, "rank": self.job.rank,
                                                     "kvs": pending})
            kvs = answer.get("kvs") if isinstance(answer, dict) else None
            if not isinstance(kvs, dict):
                raise RPCError("pmi.exchange answered without the keys")
        except RPCError as exc:
            self.fencing = False
            self._fail_barrier(f"the PMI barrier failed: {exc}")
            return
        self.fencing = False
        self.kvs.update(kvs)
        self._barrier_out()

    def _barrier_out(self) -> None:
        self.entered = 0
        for client in self.clients.values():
            if client.in_barrier:
                client.in_barrier = False
                self._answer(client, cmd="barrier_out", rc=0)

    def _fail_barrier(self, why: str) -> None:
        """No barrier can complete: answer the tasks in one, and end the job."""
        self.entered = 0
        for client in self.clients.values():
            if client.in_barrier:
                client.in_barrier = False
                self._answer(client, cmd="barrier_out", rc=-1)
        self.shell.pmi_exception(why)

    def _break(self, why: str) -> None:
        """A task's loss makes every barrier from now on impossible (module docstring)."""
        if self.broken is not None:
            return
        self.broken = why
        if self.entered or self.fencing:
            self._fail_barrier(why)
        if self.nshells > 1 and self.shell.host.conn is not None:
            self.shell.host.conn.send("pmi.exchange", {"id": self.job.id, "rank": self.job.rank,
                                                       "error": why})

    # -- broken clients ----------------------------------------------------------------------
    def task_failed(self, rank: int, why: str) -> None:
        """Task `rank` will never take part (it could not start)."""
        self._close(self.clients[rank])
        self._break(f"task {rank} {why}")

    def _gone(self, client: _Client) -> None:
        """A task closed its connection (it exited, or closed PMI_FD)."""
        self._close(client)
        if client.initialized and not client.finalized and not self.shell.killed:
            self._break(f"task {client.rank} closed its PMI connection before finalize")

    def _garbage(self, client: _Client, what: str) -> None:
        self._close(client)
        why = f"task {client.rank}: PMI protocol error: {what}"
        self.shell.pmi_exception(why)
        self._break(why)


def _field(req: dict, name: str) -> str:
    value = req.get(name)
    if value is None:
        raise ProtocolError(f"cmd={req['cmd']} without {name}=")
    return value


def _number(req: dict, name: str) -> int:
    text = _field(req, name)
    try:
        return int(text)
    except ValueError:
        raise ProtocolError(f"cmd={req['cmd']}: {name}={text[:20]} is not a number") from None


_HANDLERS = {
    "init": ShellPMI._init,
    "get_maxes": ShellPMI._maxes,
    "get_appnum": ShellPMI._appnum,
    "get_my_kvsname": ShellPMI._kvsname,
    "get_universe_size": ShellPMI._universe,
    "put": ShellPMI._put,
    "get": ShellPMI._get,
    "getbyidx": ShellPMI._getbyidx,
    "barrier_in": ShellPMI._barrier_in,
    "finalize": ShellPMI._finalize,
    "abort": ShellPMI._abort,
    "publish_name": ShellPMI._unsupported,
    "unpublish_name": ShellPMI._unsupported,
    "lookup_name": ShellPMI._unsupported,
}
