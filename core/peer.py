"""Brokers of rank > 0, and how rank 0 starts them for ``--test-size``.

A broker of rank > 0 holds no job manager, scheduler or KVS: it serves its own
local clients (``local://RUNDIR/local``) with what is local to it (attributes,
ping, events, overlay health) and sends every other request up the tree to
rank 0. It lives until rank 0 ends the instance (the ``overlay.shutdown``
event) and ends too, with an error, if it loses its parent.

With ``strato start --test-size=N`` rank 0 starts the others as processes
``python -m strato.core.peer`` on this machine, each with the rundir
``RUNDIR/RANK`` (its socket ``local://RUNDIR/RANK/local``). Rank 0 makes the
listening tcp socket of every broker that has children and hands it over
(ZeroMQ's ``ZMQ_USE_FD``), so it knows every endpoint beforehand and starts
all brokers at once; the initial program starts once every broker has joined.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import sys
from pathlib import Path

from strato.core.bootstrap import Bootstrap, children_of, for_test, parent_of
from strato.core.broker import Broker
from strato.core.cert import load_cert
from strato.core.errors import ConfigError, RPCError
from strato.core.exec_ranks import RankExec
from strato.core.overlay import Overlay, overlay_attrs
from strato.shell.spawn import Reaper, release_signals

log = logging.getLogger("strato.peer")

#: how long rank 0 waits for every broker of a --test-size instance to join
JOIN_TIMEOUT = 60.0
#: how long rank 0 waits for the brokers it started to exit at the end
EXIT_TIMEOUT = 10.0
_SPEC_ENV = "STRATO_PEER_BOOTSTRAP"
_LISTEN_FD = 3  # where a test broker finds the listening socket rank 0 made for it


def broker_attrs(boot: Bootstrap, overlay: Overlay | None, rundir: Path) -> dict:
    """The attributes every broker has, whatever its rank."""
    return {"rank": boot.rank, "size": boot.size, "hostlist": boot.hostlist,
            "local-uri": f"local://{rundir}/local", "rundir": str(rundir),
            "instance-level": boot.level, "broker.pid": os.getpid(),
            **overlay_attrs(boot, overlay)}


async def serve_peer(boot: Bootstrap, rundir: Path, config: dict) -> int:
    """Run a broker of rank > 0 until the instance ends; returns its exit code."""
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
        execution = RankExec(broker, reaper, config, rundir, f"local://{rundir}/local")
        overlay.start()  # its shell host starts with its first job
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


async def wait_joined(overlay: Overlay, size: int, timeout: float = JOIN_TIMEOUT) -> None:
    """(rank 0) Return once every other broker has said hello; ConfigError naming
    the first missing rank after `timeout`."""
    joined: set[int] = set()
    done: asyncio.Future = asyncio.get_running_loop().create_future()

    def hello(body: dict) -> None:
        rank = body.get("rank")
        if isinstance(rank, int) and 0 < rank < size:
            joined.add(rank)
            if len(joined) == size - 1 and not done.done():
                done.set_result(None)

    overlay.hello_handlers.append(hello)
    try:
        await asyncio.wait_for(done, timeout)
    except TimeoutError:
        missing = sorted(set(range(1, size)) - joined)
        raise ConfigError(f"broker rank {missing[0]} did not join the instance in "
                          f"{timeout:g}s") from None
    finally:
        overlay.hello_handlers.remove(hello)


def run_peer(boot: Bootstrap, rundir: Path, config: dict) -> int:
    """Make the rundir and serve a broker of rank > 0 (``strato start`` under a
    ``[bootstrap]`` config on a host that is not rank 0, or a test broker)."""
    try:
        rundir.mkdir(parents=True, exist_ok=True)
        os.chmod(rundir, 0o700)
    except OSError as exc:
        raise ConfigError(f"cannot use rundir {rundir}: {exc.strerror}") from None
    try:
        return asyncio.run(serve_peer(boot, rundir, config))
    finally:
        try:
            os.unlink(rundir / "local")
        except OSError:
            pass


class TestLauncher:
    """Rank 0's starter of the other brokers of a ``--test-size`` instance."""

    def __init__(self, inst, overlay: Overlay) -> None:
        self.inst = inst
        self.boot: Bootstrap = inst.bootstrap
        self.overlay = overlay
        self.pids: dict[int, int] = {}
        self.exited: dict[int, asyncio.Future] = {}
        self.joined: set[int] = set()
        self.ready: asyncio.Future = asyncio.get_running_loop().create_future()
        overlay.hello_handlers.append(self._hello)

    def start(self) -> None:
        """Make the listening socket of each broker with children, then start all."""
        listeners: dict[int, socket.socket] = {}
        endpoints = {0: self.overlay.endpoint}
        try:
            for rank in range(1, self.boot.size):
                if children_of(rank, self.boot.size, self.boot.fanout):
                    ls = listeners[rank] = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    ls.bind(("127.0.0.1", 0))
                    ls.listen(128)
                    endpoints[rank] = f"tcp://127.0.0.1:{ls.getsockname()[1]}"
            for rank in range(1, self.boot.size):
                parent = parent_of(rank, self.boot.fanout)
                self._spawn(rank, endpoints[parent], endpoints.get(rank, ""),
                            listeners.get(rank))
        finally:
            for ls in listeners.values():  # each broker has its own copy now
                ls.close()

    def _spawn(self, rank: int, parent_endpoint: str, bind: str,
               listener: socket.socket | None) -> None:
        spec = {"rank": rank, "size": self.boot.size, "level": self.boot.level,
                "hosts": self.boot.hosts, "cert": self.boot.cert_path,
                "parent_endpoint": parent_endpoint, "rundir": str(self.inst.rundir / str(rank)),
                "config": self.inst.config, "bind": bind,
                "bind_fd": _LISTEN_FD if listener is not None else None}
        env = dict(os.environ)
        env[_SPEC_ENV] = json.dumps(spec)
        argv = [sys.executable, "-m", "strato.core.peer"]
        devnull = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
        actions = [(os.POSIX_SPAWN_DUP2, devnull, 1)]
        if listener is not None:
            actions.append((os.POSIX_SPAWN_DUP2, listener.fileno(), _LISTEN_FD))
        try:
            pid = os.posix_spawn(sys.executable, argv, env, file_actions=actions,
                                 setsigdef=(signal.SIGINT, signal.SIGTERM))
        finally:
            os.close(devnull)
        self.pids[rank] = pid
        fut = self.exited[rank] = asyncio.get_running_loop().create_future()
        self.inst.reaper.watch(pid, lambda status: self._exited(rank, status, fut))

    def _exited(self, rank: int, status: int, fut: asyncio.Future) -> None:
        fut.set_result(status)
        if not self.ready.done():
            code = os.waitstatus_to_exitcode(status)
            how = f"signal {-code}" if code < 0 else f"exit code {code}"
            self.ready.set_exception(ConfigError(f"broker rank {rank} ended ({how}) before "
                                                 "it joined the instance"))

    def _hello(self, body: dict) -> None:
        rank = body.get("rank")
        if rank not in self.pids or rank in self.joined:
            return
        self.joined.add(rank)
        if len(self.joined) == self.boot.size - 1 and not self.ready.done():
            self.ready.set_result(None)

    async def wait_joined(self, timeout: float = JOIN_TIMEOUT) -> None:
        """Return once every broker has joined; ConfigError if one cannot."""
        if self.boot.size == 1:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self.ready), timeout)
        except TimeoutError:
            missing = sorted(set(range(1, self.boot.size)) - self.joined)
            raise ConfigError(f"broker rank {missing[0]} did not join the instance in "
                              f"{timeout:g}s") from None

    def terminate(self) -> None:
        """SIGTERM every broker still running (startup failed, or rank 0 is ending
        without having stopped them)."""
        for rank, fut in self.exited.items():
            if not fut.done():
                try:
                    os.kill(self.pids[rank], signal.SIGTERM)
                except ProcessLookupError:
                    pass

    async def stop(self, timeout: float = EXIT_TIMEOUT) -> None:
        """Wait for the brokers (told to stop by the overlay.shutdown event) to exit;
        kill those still there after `timeout`."""
        waiting = [f for f in self.exited.values() if not f.done()]
        if not waiting:
            return
        _, late = await asyncio.wait(waiting, timeout=timeout)
        for rank, fut in self.exited.items():
            if fut in late:
                log.error("broker rank %d did not exit in %gs; killing it", rank, timeout)
                try:
                    os.kill(self.pids[rank], signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if late:
            await asyncio.wait(late, timeout=timeout)


def _peer_main() -> None:
    """``python -m strato.core.peer``: a test broker, described by its environment."""
    spec = json.loads(os.environ.pop(_SPEC_ENV))
    rank = spec["rank"]
    logging.basicConfig(level=logging.WARNING,
                        format=f"strato-broker[{rank}]: %(message)s")
    try:
        cert = load_cert(spec["cert"])
        boot = for_test(spec["size"], spec["config"], cert, spec["cert"], rank=rank,
                        level=spec["level"], parent_endpoint=spec["parent_endpoint"],
                        hosts=spec["hosts"], bind=spec["bind"], bind_fd=spec["bind_fd"])
        code = run_peer(boot, Path(spec["rundir"]), spec["config"])
    except ConfigError as exc:
        print(f"strato-broker[{rank}]: {exc}", file=sys.stderr)
        code = 1
    sys.exit(code)


if __name__ == "__main__":
    _peer_main()
