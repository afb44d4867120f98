"""The shell host: a long-lived process per node running each job's shell (`JobShell`).

Started and supervised by its node's broker (exec backend ``local``); its command
line names it ``shell-host``. It owns everything about tasks: spawning (one
``posix_spawn`` each, with the task's cwd, rlimits and environment), reaping (a
pidfd per task: `strato.shell.spawn.TaskPoller`), signals and output, so
the broker process holds no task-related process-wide state. No new Python
interpreter starts for a job.

It reaches the broker only by messages over its `Connector` (one end of a
socketpair the broker made when it started the host, or a connection a
restarted broker made to re-adopt it):

- at start: ``service.add {service: "shell-host"}``, then ``exec.host-hello
  {rank, pid}``, whose answer carries the instance config (for shell plugins),
  URI and rundir;
- requests it serves: ``shell-host.start {jobs: [{id, jobspec, R, userid, cc}]}``,
  ``shell-host.kill {id, signum}``, ``shell-host.ack {seq}`` and
  ``shell-host.stop`` (SIGKILL every task and exit: its rank was lost and the
  instance ended its jobs) (all one-way);
- what it sends, one message per event-loop turn: ``exec.host-batch {seq, ops,
  events}``: ``ops`` are the KVS appends to each job's ``guest.output`` and
  ``exec.eventlog`` (``shell.init``, ``shell.start {pgids}``, ``complete
  {status}``, and, from a host that outlives its broker, ``shell.rank-start``
  and ``shell.rank-complete`` for each other part of a spread job: `part_event`),
  one per key and turn; ``events`` are ``start {pgids}`` (the tasks' process
  groups, which the broker kills should this host die), ``exception {type,
  note}`` and ``finish {status}``. The broker applies the output before the
  events, so a job's output is in the KVS before its ``finish``.

**Outliving the broker.** With ``--statedir`` (an instance that keeps its jobs
across a restart) the host also listens on a socket of its own, recorded in the
statedir (`strato.core.hostlink`), and keeps every message until the broker
acknowledges it as recorded (`strato.shell.outbox`). When its broker goes away
(stopped or killed) a host that runs jobs carries on: its tasks keep running,
their output and exits are kept (spilling to a file past a bound), a job whose
time limit passes is ended here, and its log goes to a file in the statedir.
A broker that comes back re-adopts it and gets what it missed, in order. If
none does within ``exec.orphan-timeout`` the host kills its tasks and exits. A
host with nothing to hold just exits with its broker.

**A full disk meanwhile.** If the spool file cannot be written either, the host
keeps a bounded amount more in memory (`strato.shell.outbox`); past that it
drops its jobs' output (never their events or exec eventlogs), counting what
each job lost; when the job ends, or once there is room again, one line on the
job's stderr says how many bytes were lost and why (the broker records it with
the rest when it comes back). It never crashes on it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable

from strato.core import gcpolicy, hostlink, proto
from strato.core.connector import Connector
from strato.core.errors import RPCError
from strato.core.exec import ExecJob
from strato.jobspec.fsd import parse_fsd
from strato.shell.outbox import Outbox
from strato.shell.shell import JobShell
from strato.shell.spawn import TaskPoller, release_signals, spawn

log = logging.getLogger("strato.shell-host")

#: how long a connecting broker has to prove it belongs to this instance
HANDSHAKE_TIMEOUT = 10.0
#: bytes of kept messages sent to a re-adopting broker before waiting for them to leave
REPLAY_CHUNK = 1 << 20


def _seconds(value: object, default: float) -> float:
    try:
        return parse_fsd(str(value))
    except ValueError:
        return default


class ShellHost:
    """Starts, signals and reports on the job shells of one node."""

    def __init__(self, conn: Connector, rank: int, statedir: str | None = None) -> None:
        self.rank = rank
        self.uid = os.getuid()
        self.loop = asyncio.get_running_loop()
        self.tasks = TaskPoller(self.loop, wrap=self._batch)
        self.devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        self.shells: dict[int, JobShell] = {}
        self.spawn = spawn
        self.hook = None
        self.shell_hooks: frozenset[str] = frozenset()  # the shell hooks some plugin has
        # starts that came with the hello's answer, before the hello had read it
        self._early: list[list] | None = []
        self.uri = ""
        self.rundir = ""  # where jobs' temporary directories go
        self.kill_timeout = 5.0
        self.orphan_timeout = 0.0
        self.stopped = self.loop.create_future()
        self._appends: dict[str, list] = {}  # KVS key -> entries to append this turn
        self._events: list[dict] = []
        self._flush_scheduled = False
        self.shed: dict[str, int] = {}  # output key -> bytes dropped on a full disk
        self.shed_cause = ""
        self._notices: dict[str, list] = {}  # output key -> lines that are never dropped
        # outliving the broker (--statedir): see the module docstring
        self.statedir = statedir
        self.outbox: Outbox | None = None
        self.seq = 0
        self.held: dict[int, dict] = {}  # jobid -> {"pgids", "finish": seq of its finish}
        self.private = ""  # this host's own directory: its socket, jobs' temporary files
        self._listener: socket.socket | None = None
        self._orphan_timer: asyncio.TimerHandle | None = None
        self._draining = False
        if statedir is not None:
            self.outbox = Outbox(str(hostlink.spool_file(statedir, rank, self.uid)))
            self.secret = hostlink.read_secret(statedir)
            self._listen()
        self.conn: Connector | None = None
        self._attach(conn)

    def _serve(self, conn: Connector) -> None:
        conn.serve("shell-host.start", self._start)
        conn.serve("shell-host.kill", self._kill)
        conn.serve("shell-host.ack", self._ack)
        conn.serve("shell-host.stop", lambda req: self.stop())

    def _attach(self, conn: Connector) -> None:
        """Make `conn` this host's link to its broker."""
        self._serve(conn)
        conn.on_lost = lambda: self._lost(conn)
        self.conn = conn

    async def hello(self) -> None:
        """Register the service, then learn the instance's config from the broker."""
        from strato.core.plugins import make_plugin_manager

        conn = self.conn
        await conn.rpc("service.add", {"service": "shell-host"})
        info = await conn.rpc("exec.host-hello", {"rank": self.rank, "pid": os.getpid()})
        self.uri = info["uri"]
        self.rundir = self.private or info["rundir"]
        config = info["config"]
        exec_conf = config.get("exec", {}) if isinstance(config.get("exec"), dict) else {}
        self.kill_timeout = _seconds(exec_conf.get("kill-timeout", 5.0), 5.0)
        self.orphan_timeout = _seconds(exec_conf.get("orphan-timeout", "1d"), 86400.0)
        memory = exec_conf.get("orphan-memory")
        if self.outbox is not None and isinstance(memory, int) and memory > 0:
            self.outbox.memory_limit = memory
        self.hook = make_plugin_manager(config).hook
        # a hook no plugin implements is not called: four calls per job saved
        self.shell_hooks = frozenset(
            name for name in ("shell_init", "shell_task_init", "shell_task_exit", "shell_exit")
            if getattr(self.hook, name).get_hookimpls())
        early, self._early = self._early or [], None
        for jobs in early:
            self._start_jobs(jobs)

    # -- what goes to the broker ---------------------------------------------------------
    def _request_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _batch(self, work: Callable[..., None], *args: object) -> None:
        """Run ``work(*args)``, then send what it produced, in one message.

        The hot paths (a start request, a poll of the tasks' pipes and exits) send
        at their end rather than from a ``call_soon``: that costs a loop turn (a
        handle and a poll) each, twice per job, and rarely had more to add.
        """
        if self._flush_scheduled:  # a flush is coming anyway: it takes this too
            work(*args)
            return
        self._flush_scheduled = True
        try:
            work(*args)
        finally:
            self._flush()

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self.shed and not self.outbox.full:  # room again: say what was lost
            for key in list(self.shed):
                self._notice_lost(key)
        if not (self._appends or self._events or self._notices):
            return
        body: dict = {}
        if self._appends or self._notices:
            appends, self._appends = self._appends, {}
            if self.outbox is not None and self.outbox.full:
                self._shed_output(appends)
            if self._notices:
                for key, entries in self._notices.items():
                    appends.setdefault(key, []).extend(entries)
                self._notices = {}
            body["ops"] = [["append", key, entries] for key, entries in appends.items()
                           if entries]
            if not body["ops"]:
                del body["ops"]
        if self._events:
            body["events"], self._events = self._events, []
        if not body:
            return
        if self.outbox is not None:
            self.seq += 1
            body["seq"] = self.seq
            for ev in body.get("events", ()):
                if ev["name"] == "finish" and ev["id"] in self.held:
                    self.held[ev["id"]]["finish"] = self.seq
        payload = proto.request("exec.host-batch", 0, body, proto.FLAG_NORESPONSE)
        if self.outbox is not None:
            self.outbox.add(self.seq, payload)
        if self.conn is not None:
            # this is the end of the turn's batch already: it goes out now, not a
            # loop turn later
            self.conn.write_now(payload)

    def _shed_output(self, appends: dict[str, list]) -> None:
        """The disk refused the spool and memory holds all it may: drop the output
        in `appends` (keeping its headers), counting it per job (module docstring)."""
        if not self.shed:
            why = self.outbox.write_error
            self.shed_cause = why.strerror or str(why)
            log.error("cannot keep jobs' output for the broker: %s (spool %s), and %d bytes"
                      " wait in memory; dropping output until a broker is back",
                      self.shed_cause, self.outbox.spool_path, self.outbox.overflow_bytes)
        for key, entries in appends.items():
            if not key.endswith(".guest.output"):
                continue
            kept = []
            for entry in entries:
                ctx = entry.get("context") or {}
                if entry.get("name") == "data" and isinstance(ctx.get("data"), str):
                    self.shed[key] = self.shed.get(key, 0) + len(ctx["data"].encode())
                else:
                    kept.append(entry)
            appends[key] = kept

    def _notice_lost(self, key: str) -> None:
        """One line on the stderr of a job whose output was dropped, once there is
        room again or when the job ends (before its finish, so it is recorded)."""
        lost = self.shed.pop(key, 0)
        if not lost:
            return
        note = (f"strato-shell: {lost} bytes of output were lost: the shell host could not"
                f" keep them while the broker was away (its statedir: {self.shed_cause})\n")
        self._notices.setdefault(key, []).append(
            {"timestamp": time.time(), "name": "data",
             "context": {"stream": "stderr", "rank": "0", "data": note}})
        self._request_flush()

    def append(self, key: str, entries: list) -> None:
        """Append entries to a KVS list (a job's output or exec eventlog), batched."""
        pending = self._appends.get(key)
        if pending is None:
            self._appends[key] = list(entries)
        else:
            pending.extend(entries)
        self._request_flush()

    def exec_event(self, shell: JobShell, name: str, context: dict | None = None) -> None:
        """Record a shell event in the job's ``exec.eventlog``."""
        entry = {"timestamp": time.time(), "name": name}
        if context is not None:
            entry["context"] = context
        self.append(shell.eventlog_key, [entry])

    def part_event(self, shell: JobShell, name: str, context: dict) -> None:
        """Record in the exec eventlog what one part of a job did: the leader's (the
        job's only shell, or the first of a spread job) as `name`, naming its rank
        if the job is spread; each other part's as ``shell.rank-start`` or
        ``shell.rank-complete`` if this host may outlive its broker, so that rank 0,
        after a restart, knows which parts ended and which task groups each left
        (`strato.core.exec_ranks`)."""
        job = shell.job
        if job.rank is not None:
            context = dict(context, rank=job.rank)
        if shell.leader:
            self.exec_event(shell, name, context)
        elif self.statedir is not None:
            self.exec_event(shell, "shell.rank-" + name.removeprefix("shell."), context)

    def event(self, jobid: int, name: str, context: dict | None = None) -> None:
        """Report ``start``, ``exception`` or ``finish`` of a job to exec."""
        self._events.append({"id": jobid, "name": name, "context": context})
        if name == "start" and jobid in self.held and context:
            self.held[jobid]["pgids"] = list(context.get("pgids", ()))
        self._request_flush()

    def timed_out(self, shell: JobShell) -> None:
        """A job's time limit passed: say so; the broker then ends it, or this host
        does if no broker is there to."""
        self.event(shell.jobid, "exception", {"type": "timeout",
                                              "note": "resource allocation expired"})
        if self.conn is None:
            self._end_alone(shell)

    def _end_alone(self, shell: JobShell) -> None:
        shell.kill(signal.SIGTERM)
        self.loop.call_later(self.kill_timeout, shell.kill, signal.SIGKILL)

    # -- requests ------------------------------------------------------------------------
    def _start(self, req) -> None:
        if self._early is not None:
            self._early.append(req.body["jobs"])
        else:
            self._batch(self._start_jobs, req.body["jobs"])

    def _start_jobs(self, jobs: list) -> None:
        for body in jobs:
            jobid = body.get("id") if isinstance(body, dict) else None
            if self.outbox is not None and isinstance(jobid, int):
                self.held[jobid] = {"pgids": [], "finish": 0}
            try:
                job = ExecJob(body)
            except Exception as exc:
                log.warning("cannot start job %s: %s", jobid, exc)
                if isinstance(jobid, int):
                    self.event(jobid, "exception", {"type": "exec",
                                                    "note": f"job shell: bad start: {exc}"})
                    self.event(jobid, "finish", {"status": 1 << 8})
                continue
            shell = JobShell(self, job)
            self.shells[job.id] = shell
            shell.start()

    def shell_finished(self, shell: JobShell, status: int) -> None:
        """A job's shell is done (every task has exited, or none could run): tell
        the broker, with the job's wait status."""
        job = shell.job
        shell.cleanup()
        self.shells.pop(job.id, None)
        self._notice_lost(shell.output_key)
        self.part_event(shell, "complete", {"status": status})
        self.event(job.id, "finish", {"status": status})
        if self._draining and not self.shells:
            self.stop()

    def _kill(self, req) -> None:
        shell = self.shells.get(req.body.get("id"))
        if shell is not None:
            shell.kill(req.body.get("signum", signal.SIGTERM))

    def _ack(self, req) -> None:
        """``shell-host.ack {seq}``: the broker has recorded every message up to seq."""
        seq = (req.body or {}).get("seq")
        if self.outbox is not None and isinstance(seq, int):
            self._recorded(seq)
            if self.shed:
                self._request_flush()  # room again, perhaps: the notices can go

    def _recorded(self, seq: int) -> None:
        """Forget the messages up to `seq` and the jobs whose end they carried."""
        self.outbox.ack(seq)
        for jobid in [j for j, h in self.held.items() if 0 < h["finish"] <= seq]:
            del self.held[jobid]

    def kill_all(self) -> None:
        """SIGKILL every task of every job (the instance is going away)."""
        for shell in list(self.shells.values()):
            shell.kill(signal.SIGKILL)

    def stop(self) -> None:
        """End every job's tasks and let the process exit."""
        self.kill_all()
        if not self.stopped.done():
            self.stopped.set_result(None)

    # -- outliving the broker ------------------------------------------------------------
    def _lost(self, conn: Connector) -> None:
        """A broker link closed: stop with it, or hold the jobs until one comes back."""
        if conn is not self.conn:
            return  # a link already replaced by a re-adoption
        self.conn = None
        if self.outbox is None or self.orphan_timeout <= 0 or self.stopped.done():
            self.stop()
            return
        if not self.shells and self.outbox.empty:
            self.stop()  # nothing to hold: the next broker starts a host of its own
            return
        logfile = hostlink.log_file(self.statedir, self.rank, self.uid)
        try:  # the broker's stderr may be gone with it
            fd = os.open(logfile, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
            os.dup2(fd, 2)
            os.close(fd)
        except OSError:
            pass
        log.warning("the broker went away: holding %d job(s) for up to %gs",
                    len(self.shells), self.orphan_timeout)
        self._orphan_timer = self.loop.call_later(self.orphan_timeout, self._orphan_expired)
        for shell in list(self.shells.values()):
            if shell.timed_out:
                self._end_alone(shell)

    def _orphan_expired(self) -> None:
        log.warning("no broker re-adopted this host in %gs: ending its %d job(s)",
                    self.orphan_timeout, len(self.shells))
        self._draining = True
        self.kill_all()
        if not self.shells:
            self.stop()

    def _listen(self) -> None:
        """Listen for a broker that re-adopts this host; record where in the statedir."""
        self.private = tempfile.mkdtemp(prefix="strato-host-")
        path = os.path.join(self.private, "sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(path)
        sock.listen(4)
        sock.setblocking(False)
        self._listener = sock
        self.loop.add_reader(sock.fileno(), self._accept)
        record = hostlink.endpoint_file(self.statedir, self.rank, self.uid)
        tmp = record.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"pid": os.getpid(), "socket": path, "version": hostlink.VERSION}, f)
        os.replace(tmp, record)

    def _accept(self) -> None:
        try:
            sock, _ = self._listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        sock.setblocking(False)
        self.loop.create_task(self._adopted_by(sock))

    async def _recv_frame(self, sock: socket.socket) -> dict:
        async def exact(n: int) -> bytes:
            data = bytearray()
            while len(data) < n:
                chunk = await self.loop.sock_recv(sock, n - len(data))
                if not chunk:
                    raise hostlink.HandshakeError("it closed the connection")
                data += chunk
            return bytes(data)

        size = int.from_bytes(await exact(4), "little")
        if size > hostlink.MAX_HANDSHAKE_FRAME:
            raise hostlink.HandshakeError("an oversized handshake frame")
        body = proto.decode(await exact(size))
        if not isinstance(body, dict):
            raise hostlink.HandshakeError("a handshake message that is not a mapping")
        return body

    async def _adopted_by(self, sock: socket.socket) -> None:
        """Authenticate a connecting broker (`strato.core.hostlink`), then make it
        this host's broker and replay what it has not recorded."""
        try:
            if hostlink.peer_uid(sock) != self.uid:
                raise hostlink.HandshakeError("a process of another user")
            nonce = secrets.token_bytes(32)
            await self.loop.sock_sendall(sock, hostlink.frame(
                {"version": hostlink.VERSION, "nonce": nonce}))
            msg = await asyncio.wait_for(self._recv_frame(sock), HANDSHAKE_TIMEOUT)
            seq, theirs = msg.get("seq"), msg.get("nonce")
            if not hostlink.check_proof(self.secret, "broker", nonce, msg.get("proof")) \
                    or not isinstance(seq, int) or not isinstance(theirs, bytes):
                await self.loop.sock_sendall(sock, hostlink.frame({"error": "bad proof"}))
                raise hostlink.HandshakeError("not a broker of this instance")
        except (hostlink.HandshakeError, OSError, TimeoutError, ValueError) as exc:
            log.warning("refused a connection: %s", exc or exc.__class__.__name__)
            sock.close()
            return
        if self.conn is not None:  # the old broker is gone (it no longer holds the statedir)
            old, self.conn = self.conn, None
            old.close()
        jobs = {str(j): h["pgids"] for j, h in self.held.items()
                if not 0 < h["finish"] <= seq}
        await self.loop.sock_sendall(sock, hostlink.frame(
            {"proof": hostlink.proof(self.secret, "host", theirs), "pid": os.getpid(),
             "rank": self.rank, "uid": self.uid, "jobs": jobs}))
        if self._orphan_timer is not None:
            self._orphan_timer.cancel()
            self._orphan_timer = None
        self._draining = False
        self._recorded(seq)
        conn = Connector(sock, on_lost=lambda: None)
        self._serve(conn)  # its acks may come during the replay
        if not await self._replay(conn, seq):
            log.warning("the re-adopting broker went away during the replay")
            conn.close()
            return
        self._attach(conn)
        log.warning("re-adopted by a broker: replayed what it missed after message %d", seq)
        try:
            await self.hello()
        except Exception as exc:
            log.error("hello to the re-adopting broker failed: %s", exc)

    async def _replay(self, conn: Connector, seq: int) -> bool:
        """Send `conn` every kept message after `seq`, a bounded chunk at a time
        (what is produced meanwhile is kept, and sent in turn); True once it has
        all, with nothing awaited since the last check, so that the caller makes it
        the host's link before anything new is sent."""
        last = seq
        while True:
            size = 0
            for s, payload in self.outbox.after(last):
                conn.write_encoded(payload)
                last = s
                size += len(payload)
                if size >= REPLAY_CHUNK:
                    break
            else:
                return not conn.stream.closed
            await conn.stream.drained()
            if conn.stream.closed:
                return False

    def close(self) -> None:
        """Remove what this host made in the statedir and its own directory."""
        if self.statedir is None:
            return
        record = hostlink.endpoint_file(self.statedir, self.rank, self.uid)
        try:
            with open(record) as f:
                mine = json.load(f).get("pid") == os.getpid()
            if mine:
                os.unlink(record)
        except (OSError, ValueError, AttributeError):
            pass
        if self.outbox is not None:
            self.outbox.drop_spool()
        if self._listener is not None:
            self.loop.remove_reader(self._listener.fileno())
            self._listener.close()
        shutil.rmtree(self.private, ignore_errors=True)


async def _main(fd: int, rank: int, statedir: str | None) -> None:
    loop = asyncio.get_running_loop()
    os.set_inheritable(fd, False)  # the broker link is the host's, never a task's
    conn = Connector(socket.socket(fileno=fd), on_lost=lambda: None)
    host = ShellHost(conn, rank, statedir)
    loop.add_signal_handler(signal.SIGTERM, host.stop)
    loop.add_signal_handler(signal.SIGINT, lambda: None)
    if statedir is not None:  # a closed terminal must not end what outlives the broker
        loop.add_signal_handler(signal.SIGHUP, lambda: None)
    hello = loop.create_task(host.hello())
    await asyncio.wait([hello, host.stopped], return_when=asyncio.FIRST_COMPLETED)
    if hello.done() and hello.exception() is not None:
        exc = hello.exception()
        if isinstance(exc, RPCError) and exc.errnum == "EHOSTUNREACH":
            # the broker stopped (an instance whose initial program ended at once)
            # before it answered: nothing was handed to this host, nothing is lost
            log.info("the broker went away before answering the hello")
        else:
            log.error("hello to the broker failed: %s", exc)
        host.stop()
    await host.stopped
    hello.cancel()
    if host.conn is not None:
        host.conn.close()
    host.close()
    host.tasks.close()
    release_signals(loop, signal.SIGTERM, signal.SIGINT,
                    *((signal.SIGHUP,) if statedir is not None else ()))


def main(argv: list[str] | None = None) -> int:
    """``python -m strato.shell.host shell-host --fd N --rank R [--statedir DIR]``
    (started by exec-local with its end of a socketpair as fd N)."""
    parser = argparse.ArgumentParser(prog="shell-host")
    parser.add_argument("name", choices=["shell-host"])
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--rank", type=int, default=0)
    parser.add_argument("--statedir")
    args = parser.parse_args(argv)
    if args.statedir is not None:
        # What the broker inherited from its launcher (mpiexec's pipes, say) is none
        # of a host that outlives it: held open, a launcher would wait for it.
        os.closerange(3, args.fd)
        os.closerange(args.fd + 1, os.sysconf("SC_OPEN_MAX"))
    logging.basicConfig(level=logging.WARNING,
                        format=f"shell-host[{args.rank}]: %(levelname)s %(message)s")
    gcpolicy.tune_service()
    asyncio.run(_main(args.fd, args.rank, args.statedir))
    return 0


if __name__ == "__main__":
    code = main()
    # Everything is stopped and flushed: skip the interpreter's teardown, which
    # the instance waits for when it shuts down (tens of milliseconds).
    logging.shutdown()
    sys.stdout.flush()
    os._exit(code)
