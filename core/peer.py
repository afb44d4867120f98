"""Brokers of rank > 0, and how rank 0 starts them for ``--test-size``.

A broker of rank > 0 holds no job manager, scheduler or KVS: it serves its own
local clients (``local://RUNDIR/local``) with what is local to it (attributes,
ping, events, overlay health) and sends every other request up the tree to
rank 0. It lives until rank 0 ends the instance (the ``overlay.shutdown``
event) and ends too, with an error, if it loses its parent.

With ``strato start --test-size=N`` rank 0 starts the others on this machine as
forks of itself (`fork_test_brokers`), each with the rundir ``RUNDIR/RANK`` (its
socket ``local://RUNDIR/RANK/local``). Rank 0 makes the listening tcp socket of
every broker that has children and hands it over (ZeroMQ's ``ZMQ_USE_FD``), so
it knows every endpoint beforehand and starts all brokers at once; the initial
program starts once every broker has joined.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
import sys
import traceback
from pathlib import Path

import zmq

from strato.core.bootstrap import Bootstrap, children_of, for_test, parent_of
from strato.core.broker import Broker
from strato.core.errors import ConfigError, RPCError, StratoError
from strato.core.exec_ranks import RankExec
from strato.core.overlay import (
    CHILDREN_LEAVE_TIMEOUT,
    JOIN_TIMEOUT,
    JoinWatch,
    Overlay,
    overlay_attrs,
)
from strato.shell.spawn import Reaper, release_signals

log = logging.getLogger("strato.peer")

#: how long rank 0 waits for the brokers it started to exit at the end
EXIT_TIMEOUT = 10.0
#: how long a forked broker's last messages may take to leave when it ends (ms)
EXIT_LINGER_MS = 1000


def broker_attrs(boot: Bootstrap, overlay: Overlay | None, rundir: Path) -> dict:
    """The attributes every broker has, whatever its rank."""
    return {"rank": boot.rank, "size": boot.size, "hostlist": boot.hostlist,
            "local-uri": f"local://{rundir}/local", "rundir": str(rundir),
            "instance-level": boot.level, "broker.pid": os.getpid(),
            **overlay_attrs(boot, overlay)}


async def serve_peer(boot: Bootstrap, rundir: Path, config: dict,
                     host: tuple[int, socket.socket, int] | None = None,
                     statedir: Path | None = None) -> int:
    """Run a broker of rank > 0 until the instance ends; returns its exit code.
    `host`: its parked shell host, if one was forked for it (`fork_shell_host`);
    `statedir`: where its shell host records itself to outlive it
    (`strato.core.exec_ranks`)."""
    loop = asyncio.get_running_loop()
    stopped: asyncio.Future = loop.create_future()

    def stop(why: str | None) -> None:
        if not stopped.done():
            stopped.set_result(why)

    broker = Broker(rank=boot.rank, size=boot.size)
    overlay = Overlay(broker, boot, on_stop=stop)
    extra = {"statedir": "", "parent-uri": "", "jobid": ""}

    def attr_get(req) -> None:
        attrs = {**broker_attrs(boot, overlay, rundir), **extra}
        name = (req.body or {}).get("name") if isinstance(req.body, dict) else None
        if name not in attrs:
            raise RPCError(f"unknown attribute '{name}'", "ENOENT")
        req.respond({"value": attrs[name]})

    broker.register("attr.get", attr_get)
    broker.register("attr.list", lambda req: req.respond(
        {"attrs": {**broker_attrs(boot, overlay, rundir), **extra}}))
    reaper = Reaper(loop)
    execution = None
    try:
        broker.listen(f"{rundir}/local")
        execution = RankExec(broker, reaper, config, rundir, f"local://{rundir}/local", host,
                             statedir)
        overlay.start()  # without a host given, its shell host starts with its first job
    except Exception:
        if execution is not None:
            execution.shutdown()
        reaper.close()
        broker.close()
        raise
    loop.add_signal_handler(signal.SIGTERM, stop, None)
    loop.add_signal_handler(signal.SIGINT, lambda: None)  # ^C is for rank 0's program
    if boot.mode == "pmi":  # a parent that never comes (rank 0 failed) must not hang us
        def unreached() -> None:
            if not overlay._up_ready:
                stop(f"could not reach its parent (rank {boot.parent}) at "
                     f"{boot.parent_endpoint} in {JOIN_TIMEOUT:g}s")

        loop.call_later(JOIN_TIMEOUT, unreached)
    try:
        why = await stopped
        if why is None:  # overlay.shutdown, passed on to this broker's children:
            # closing before they hang up could lose it (under load, one took its
            # parent for lost and its launcher failed)
            await overlay.children_left(timeout=CHILDREN_LEAVE_TIMEOUT)
    finally:
        execution.shutdown()  # its shell host kills what it still runs
        reaper.close()
        overlay.close()
        broker.close()
        release_signals(loop, signal.SIGTERM, signal.SIGINT)
    if why is not None:
        log.error("broker rank %d %s", boot.rank, why)
        return 1
    return 0


def run_peer(boot: Bootstrap, rundir: Path, config: dict,
             host: tuple[int, socket.socket, int] | None = None,
             statedir: Path | None = None) -> int:
    """Make the rundir and serve a broker of rank > 0 (``strato start`` under a
    ``[bootstrap]`` config on a host that is not rank 0, or a test broker). With a
    `statedir` (its own, or rank 0's on the same machine) it holds
    ``statedir/lock.RANK`` and its shell host outlives it."""
    from strato.core.errors import StateError
    from strato.core.hostlink import ensure_secret
    from strato.core.instance import lock_statedir

    try:
        rundir.mkdir(parents=True, exist_ok=True)
        os.chmod(rundir, 0o700)
    except OSError as exc:
        raise ConfigError(f"cannot use rundir {rundir}: {exc.strerror}") from None
    lock = None
    if statedir is not None:
        lock = lock_statedir(statedir, f"lock.{boot.rank}")
        try:
            ensure_secret(statedir)
        except OSError as exc:
            os.close(lock)
            raise StateError(f"cannot use statedir {statedir}: {exc.strerror}") from None
    try:
        return asyncio.run(serve_peer(boot, rundir, config, host, statedir))
    finally:
        if lock is not None:
            os.close(lock)
        try:
            os.unlink(rundir / "local")
        except OSError:
            pass


def fork_test_brokers(boot: Bootstrap, rundir: Path, config: dict,
                      statedir: Path | None = None) -> dict[int, int]:
    """(rank 0 of a ``--test-size`` instance, before its event loop and ZeroMQ start)
    Start ranks 1..N-1 as forks of this process; returns their pids by rank.

    A fork costs a millisecond and shares the parent's imported modules, where a new
    interpreter costs about 0.1 s of CPU to import them again: at 16 brokers that was
    most of the start-up, and at 64 most of the memory (the collector is frozen first,
    so the shared pages stay shared). Forking is safe here because this process has
    no thread, event loop or ZeroMQ context yet. Each broker with children gets a
    listening socket made here, rank 0 included, so every endpoint is known before
    any broker starts."""
    listeners: dict[int, socket.socket] = {}
    endpoints: dict[int, str] = {}
    try:
        for rank in range(boot.size):
            if children_of(rank, boot.size, boot.fanout):
                ls = listeners[rank] = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                ls.bind(("127.0.0.1", 0))
                ls.listen(128)
                endpoints[rank] = f"tcp://127.0.0.1:{ls.getsockname()[1]}"
    except OSError as exc:
        for ls in listeners.values():
            ls.close()
        raise ConfigError(f"cannot listen for the overlay on 127.0.0.1: {exc.strerror}") \
            from None
    import strato.shell.host  # noqa: F401  (once here, for the shell hosts forked below)

    gc.collect()
    gc.freeze()
    pids: dict[int, int] = {}
    try:
        for rank in range(1, boot.size):
            pid = os.fork()
            if pid == 0:
                _become_broker(rank, boot, rundir, config, listeners, endpoints, statedir)
            pids[rank] = pid
    except OSError as exc:  # e.g. EAGAIN under a process limit: end those forked
        end_brokers(pids)
        for ls in listeners.values():
            ls.close()
        raise ConfigError(f"cannot start broker rank {rank}: {exc.strerror}") from None
    for rank, ls in listeners.items():
        if rank != 0:
            ls.close()
    boot.bind = endpoints[0]
    boot.bind_fd = listeners[0].detach()  # ZeroMQ's from now on (ZMQ_USE_FD)
    return pids


def _become_broker(rank: int, boot: Bootstrap, rundir: Path, config: dict,
                   listeners: dict[int, socket.socket], endpoints: dict[int, str],
                   statedir: Path | None) -> None:
    """(in a fork of rank 0) Serve broker `rank` and exit, never returning into rank
    0's stack. Every descriptor of rank 0 but this broker's listening socket is
    closed, so that nothing of rank 0 (its own listening socket above all) outlives
    it here."""
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # ^C is for rank 0's program
        own = listeners[rank].detach() if rank in listeners else None
        for ls in listeners.values():
            ls.detach()
        _close_fds_but(own)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
        # with a statedir its host is a program of its own (started with the first
        # job), which outlives it and which a restarted broker finds by its name
        host = fork_shell_host(rank) if statedir is None else None
        logging.basicConfig(level=logging.WARNING, force=True,
                            format=f"strato-broker[{rank}]: %(message)s")
        mine = for_test(boot.size, config, boot.cert, boot.cert_path, rank=rank,
                        level=boot.level, parent_endpoint=endpoints[parent_of(rank, boot.fanout)],
                        hosts=boot.hosts, bind=endpoints.get(rank, ""), bind_fd=own)
        code = run_peer(mine, rundir / str(rank), config, host, statedir)
        # what its sockets still hold (the shutdown event on its way to its own
        # children) leaves before _exit, as it would at a normal interpreter exit
        zmq.Context.instance().destroy(linger=EXIT_LINGER_MS)
    except StratoError as exc:
        print(f"strato-broker[{rank}]: {exc}", file=sys.stderr)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stderr.flush()
        os._exit(code)


def fork_shell_host(rank: int) -> tuple[int, socket.socket, int]:
    """(in a forked broker, before its event loop starts) Fork its shell host, parked:
    it waits until the broker writes a byte to the returned fd (its first job) and
    only then starts serving, as a new interpreter would have been started then. A
    new interpreter costs 0.1-0.3 s of CPU (at 64 brokers, tens of seconds); this
    costs a fork, and nothing more for a broker that never runs a job. Returns the
    host's pid, the broker's end of its link, and the fd that wakes it."""
    from strato.shell import host

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    wake_r, wake_w = os.pipe()
    pid = os.fork()
    if pid:
        theirs.close()
        os.close(wake_r)
        return pid, ours, wake_w
    code = 1
    try:  # the shell host: a process group of its own, no terminal (see exec-local)
        os.setpgid(0, 0)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        fd = theirs.detach()
        ours.detach()
        _close_fds_but(fd, wake_r)
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)
        os.close(devnull)
        if os.read(wake_r, 1):  # else: its broker ended without a job
            os.close(wake_r)
            code = host.main(["shell-host", "--fd", str(fd), "--rank", str(rank)])
            logging.shutdown()
        else:
            code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stderr.flush()
        os._exit(code)


def _close_fds_but(*keep: int | None) -> None:
    """Close every descriptor from 3 up but those in `keep` (in a fork: what the
    parent held is none of its business)."""
    low = 3
    for fd in sorted(k for k in keep if k is not None):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, os.sysconf("SC_OPEN_MAX"))


def end_brokers(pids: dict[int, int]) -> None:
    """(rank 0, at the end) Make sure no broker it forked is left: those not yet
    reaped (startup failed, or they did not exit when told) are killed and reaped.
    A broker keeps no state; its shell host ends when their link closes, unless
    it holds jobs of an instance with a statedir (they outlive the instance).

    All are stopped before any is killed: a broker that saw its parent or a child
    die first would report it, a line the user should not see after a failed
    start (a signal already pending keeps it from running anything more)."""
    for signum in (signal.SIGSTOP, signal.SIGKILL):
        for pid in pids.values():
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass
    for pid in pids.values():
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    pids.clear()


class TestLauncher:
    """Rank 0's watch over the other brokers of a ``--test-size`` instance, which
    `fork_test_brokers` started: it knows when all have joined and when each ends,
    and a broker that ends before it joined fails the start at once (not after
    `JOIN_TIMEOUT`): its `join` is what to wait on. `pids` loses each broker as
    it is reaped."""

    def __init__(self, inst, overlay: Overlay, pids: dict[int, int]) -> None:
        self.pids = pids
        self.exited: dict[int, asyncio.Future] = {}
        self.join = JoinWatch(overlay)
        loop = asyncio.get_running_loop()
        for rank, pid in sorted(pids.items()):
            fut = self.exited[rank] = loop.create_future()
            inst.reaper.watch(pid, lambda status, r=rank, f=fut: self._exited(r, status, f))
        inst.reaper.reap()  # one that ended before SIGCHLD was watched

    def _exited(self, rank: int, status: int, fut: asyncio.Future) -> None:
        self.pids.pop(rank, None)
        fut.set_result(status)
        code = os.waitstatus_to_exitcode(status)
        how = f"signal {-code}" if code < 0 else f"exit code {code}"
        self.join.fail(ConfigError(f"broker rank {rank} ended ({how}) before it joined "
                                   "the instance"))

    async def stop(self, timeout: float = EXIT_TIMEOUT) -> None:
        """Wait for the brokers (told to stop by the overlay.shutdown event) to exit;
        kill those still there after `timeout`."""
        waiting = [f for f in self.exited.values() if not f.done()]
        if not waiting:
            return
        _, late = await asyncio.wait(waiting, timeout=timeout)
        for rank, pid in list(self.pids.items()):
            log.error("broker rank %d did not exit in %gs; killing it", rank, timeout)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if late:
            await asyncio.wait(late, timeout=timeout)
