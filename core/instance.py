"""An instance: broker, KVS, job manager, scheduler and exec wired together.

`run_instance` is what ``strato start`` does: it makes the run directory, starts
every part in this process, runs the initial program with ``STRATO_URI`` set, and
returns the program's exit code once the program exits and the instance has
shut down. In a multi-broker instance (`strato.core.bootstrap`) this is rank 0;
the other ranks run `strato.core.peer`, and ``--test-size`` has rank 0 fork them.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
import shutil
import signal
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from strato.core import gcpolicy, ids, job_services
from strato.core.bootstrap import Bootstrap, for_test
from strato.core.bootstrap import from_config as bootstrap_from_config
from strato.core.bootstrap_pmi import forget_pmi, from_pmi
from strato.core.broker import Broker
from strato.core.cert import keygen
from strato.core.child import (
    Parent,
    initial_environment,
    parent_from_environment,
    post_uri,
    report_failure,
)
from strato.core.config import apply_override, check_config, parse_size
from strato.core.errors import ConfigError, PluginError, RPCError, StateError, StratoError
from strato.core.exec import ExecService
from strato.core.exec_ranks import RanksExec
from strato.core.hostlink import ensure_secret
from strato.core.jobmanager import JobManager
from strato.core.kvs import KVS, describe_failure, dump_kvs
from strato.core.overlay import CHILDREN_LEAVE_TIMEOUT, JoinWatch, Overlay
from strato.core.peer import (
    TestLauncher,
    broker_attrs,
    end_brokers,
    fork_test_brokers,
    run_peer,
)
from strato.core.plugins import (
    builtin_plugins,
    call_hook,
    config_table,
    describe,
    load_plugin,
    make_plugin_manager,
    registry,
    unknown_name,
)
from strato.core.queues import Queues
from strato.core.resource import instance_R
from strato.core.schedutil import SchedEnv, SchedModule
from strato.core.states import ACTIVE, INACTIVE, RUNNING
from strato.jobspec.hostlist import expand_hostlist
from strato.jobspec.idset import decode_idset, encode_idset
from strato.shell.spawn import Reaper, release_signals

log = logging.getLogger("strato.instance")


class Instance:
    """One running instance in this process (see module docstring)."""

    def __init__(self, config: dict, rundir: Path, statedir: Path | None,
                 parent: Parent | None = None, bootstrap: Bootstrap | None = None,
                 statelock: int | None = None) -> None:
        """`statelock`: the statedir's lock, if the caller took it already
        (`lock_statedir`), as ``--test-size`` does before it starts other brokers."""
        self.config = config
        self.statelock = statelock
        self.parent = parent
        self.rundir = rundir
        self.statedir = statedir
        self.uri = f"local://{rundir}/local"
        self.t_start = time.time()
        self.pm = make_plugin_manager(config)
        check_config(config, self.pm)  # a misspelt key must not go unused
        self.drained: dict[int, dict] = {}
        self.sched: SchedModule | None = None
        self.exec: ExecService | None = None
        self.bootstrap = bootstrap or bootstrap_single(parent)
        self.overlay: Overlay | None = None

    def setup(self) -> None:
        """Build every part; errors here stop startup with a one-line message."""
        loop = asyncio.get_running_loop()
        self.reaper = Reaper(loop)
        boot = self.bootstrap
        self.broker = Broker(rank=boot.rank, size=boot.size)
        limit = self.config.get("broker", {}).get("message-size-limit")
        if limit is not None:
            self.broker.message_size_limit = parse_size(limit)
        if boot.size > 1:
            self.overlay = Overlay(self.broker, boot)
        hook = self.pm.hook
        statefile = None
        if self.statedir is not None:
            if self.statelock is None:
                self.statelock = lock_statedir(self.statedir)
            statefile = self.statedir / "content.sqlite"
        with gcpolicy.bulk_load():  # a restart loads every job's state
            self.kvs = KVS(statefile)
        if self.statedir is not None:
            try:
                ensure_secret(self.statedir)
            except OSError as exc:
                raise StateError(f"cannot use statedir {self.statedir}: {exc.strerror}") \
                    from None
        exec_conf = self.config.get("exec", {})
        self.exec = ExecService(self, registry(hook.exec_register_backends, "exec backend"),
                                exec_conf.get("backend", "local"))
        if self.overlay is not None:
            RanksExec(self.exec, self.overlay)
            self.overlay.lost_handlers.append(self._ranks_lost)
            self.overlay.hello_handlers.append(self._rank_joined)
        epoch = self.kvs.get("instance.fluid-epoch")
        if not isinstance(epoch, int):
            epoch = int(time.time() * 1000) - 1
            self.kvs.put("instance.fluid-epoch", epoch)
        self.fluid_epoch = epoch
        self.nodes, self.R = instance_R(self.config, self.parent.R if self.parent else None,
                                        hosts=boot.hosts if boot.size > 1 else None)
        self.kvs.put("resource.R", self.R)
        self.queues = Queues(self.config)
        self.kvs.register_services(self.broker)
        self.jobs = JobManager(self)
        self.sched = self._make_scheduler(self.config)
        job_services.register(self.broker, self.jobs, self.kvs)
        self._register_services()
        hook.core_register_services(register=self.broker.register)
        for impl in hook.core_configure.get_hookimpls():
            try:
                table = self.config.get(config_table(impl.plugin_name), {})
                impl.function(instance=self, config=table)
            except Exception as exc:
                raise PluginError(f"plugin '{impl.plugin_name}': {exc}") from None
        with gcpolicy.bulk_load():
            self.jobs.recover()
        if self.statedir is not None:
            self._first_save()

    def _first_save(self) -> None:
        """Save what startup wrote (R, and what the recovery changed) now: a statedir
        that cannot be written (full, read-only) stops startup with one line, before
        any job is taken."""
        try:
            self.kvs.flush()
        except (sqlite3.Error, OSError) as exc:
            raise StateError(f"cannot use {describe_failure(exc, self.statedir)[0]}") \
                from None

    async def start_modules(self) -> None:
        """Load the scheduler (it learns the allocations held and says ready).

        The shell host is not waited for: it starts while the initial program
        does, and a job that comes first waits for its hello (exec-local)."""
        try:
            await self.sched.prepare(sorted(self.drained))
        except Exception as exc:
            raise ConfigError(f"{self.sched.name}: {exc}") from None
        await self.sched.start()

    def _make_scheduler(self, config: dict) -> SchedModule:
        """Build the scheduler `config` names (not yet loaded); errors name the cause."""
        name = config.get("sched", {}).get("plugin", "sched-simple")
        if isinstance(name, str) and name in builtin_plugins() \
                and self.pm.get_plugin(name) is None:
            load_plugin(self.pm, name)
        schedulers = registry(self.pm.hook.sched_register_schedulers, "scheduler")
        if name not in schedulers:
            raise ConfigError(unknown_name("scheduler", name, config,
                                           "sched_register_schedulers"))
        env = SchedEnv(self.pm.hook, self.R, self.nodes, self.queues, config)
        with gcpolicy.paused():  # a graph's build allocates many long-lived objects
            scheduler = schedulers[name](env, config.get(name, {}))
            scheduler.set_resources(self.nodes)
        return SchedModule(self.broker, name, scheduler, env)

    def job_ended(self, job) -> None:
        hook = self.pm.hook.acct_job_end
        if hook.get_hookimpls():
            s = job.summary
            usage = {"t_submit": job.t_submit, "t_run": job.t_run, "t_inactive": job.t_inactive,
                     "nnodes": s["nnodes"] or 1, "ncores": s["nslots"] * s["cores_per_slot"],
                     "ngpus": s["nslots"] * s["gpus_per_slot"],
                     "runtime": (job.t_cleanup - job.t_run) if job.t_run else 0.0,
                     "result": job.result}
            call_hook(self.pm.hook, "acct_job_end", job=job, usage=usage)

    # -- instance services -----------------------------------------------------------------
    def _register_services(self) -> None:
        b = self.broker
        b.register("resource.status", self._resource_status)
        b.register("resource.R", lambda req: req.respond({"R": self.R}))
        b.register("resource.drain", self._drain)
        b.register("resource.undrain", self._undrain)
        b.register("queue.status", self._queue_status)
        b.register("queue.control", self._queue_control)
        b.register("queue.wait", self._queue_wait)
        b.register("plugins.list", lambda req: req.respond({"plugins": describe(self.pm)}))
        b.register("broker.info", lambda req: req.respond(self._info()))
        b.register("attr.get", self._attr_get)
        b.register("attr.list", lambda req: req.respond({"attrs": self.attrs()}))
        b.register("module.list", self._module_list)
        b.register("module.load", self._module_load)
        b.register("module.reload", self._module_load)
        b.register("module.remove", self._module_remove)

    # -- attributes and modules --------------------------------------------------------
    def attrs(self) -> dict:
        """Broker attributes, as Flux's ``flux getattr``/``lsattr`` show them."""
        return {**broker_attrs(self.bootstrap, self.overlay, self.rundir),
                "statedir": str(self.statedir) if self.statedir else "",
                "parent-uri": self.parent.uri if self.parent else "",
                "jobid": ids.f58(self.parent.jobid) if self.parent else "",
                "broker.message-size-limit": self.broker.message_size_limit}

    def _attr_get(self, req) -> None:
        name = (req.body or {}).get("name")
        attrs = self.attrs()
        if not isinstance(name, str):
            raise RPCError("attr.get: the attribute name must be a string", "EPROTO")
        if name not in attrs:
            raise RPCError(f"unknown attribute '{name}'", "ENOENT")
        req.respond({"value": attrs[name]})

    async def _module_list(self, req) -> None:
        """Each service module: name, state, pending requests, memory where known."""
        rss = _rss_kb(os.getpid())
        sched = {"pending": 0, "running": 0, "name": "-"}
        if self.sched is not None and self.sched.loaded:
            sched = await self.broker.call("sched.stats")
        exec_stats = await self.broker.call("exec.stats")
        mods = [
            {"name": "kvs", "module": "kvs", "state": "running", "pending": 0,
             "memory": None, "where": "broker"},
            {"name": "job-manager", "module": "job-manager", "state": "running",
             "pending": len(self.jobs.active), "memory": None, "where": "broker"},
            {"name": "sched", "module": sched["name"],
             "state": "running" if self.sched is not None and self.sched.loaded else "stopped",
             "pending": sched["pending"], "memory": None, "where": "broker"},
            {"name": "exec", "module": self.exec.default, "state": "running",
             "pending": exec_stats["running"], "memory": None, "where": "broker"},
        ]
        for name, be in exec_stats["backends"].items():
            if "pid" in be:
                mods.append({"name": "shell-host", "module": f"exec-{name}",
                             "state": be["state"], "pending": be["running"],
                             "memory": _rss_kb(be["pid"]) if be["pid"] else None,
                             "where": f"pid {be['pid']}" if be["pid"] else "-"})
        req.respond({"modules": mods, "broker_memory": rss})

    async def _module_load(self, req) -> None:
        """{name, args}: (re)load the scheduler; ``name`` is ``sched`` (the one
        configured) or a scheduler's name (switch to it). ``args`` are KEY=VAL
        settings for its config table. The old one keeps running on any error."""
        body = req.body or {}
        name = body.get("name")
        args = body.get("args") or []
        if not isinstance(name, str) or not isinstance(args, list):
            raise RPCError("module load needs a module name")
        if name in ("kvs", "job-manager", "exec"):
            raise RPCError(f"module {name} cannot be reloaded", "EPERM")
        config = copy.deepcopy(self.config)
        if name != "sched":
            schedulers = self._installed_schedulers()
            if name not in schedulers:
                raise RPCError(f"no such module '{name}' (modules: sched; schedulers: "
                               f"{', '.join(sorted(schedulers))})", "ENOENT")
            config.setdefault("sched", {})["plugin"] = name
        table = config.get("sched", {}).get("plugin", "sched-simple")
        for item in args:
            try:
                apply_override(config, f"{table}.{item}")
            except ConfigError as exc:
                raise RPCError(str(exc)) from None
        t0 = time.perf_counter()
        try:
            new = self._make_scheduler(config)
            check_config(config, self.pm)
        except (ConfigError, PluginError, ValueError) as exc:
            text = str(exc)
            raise RPCError(text if text.startswith(table) else f"{table}: {text}") from None
        try:
            await new.prepare(sorted(self.drained))
        except Exception as exc:  # the old scheduler keeps running
            raise RPCError(f"{new.name} cannot take over the running jobs: {exc}") from None
        if self.sched is not None and self.sched.loaded:
            self.sched.unload()
            self.jobs.sched_unloaded()
        self.sched = new
        self.config = config
        await new.start()
        self.broker.publish("module.loaded", {"name": new.name})
        req.respond({"module": new.name, "seconds": time.perf_counter() - t0})

    def _module_remove(self, req) -> None:
        name = (req.body or {}).get("name")
        if name != "sched":
            raise RPCError(f"module {name} cannot be removed", "EPERM")
        if self.sched is None or not self.sched.loaded:
            raise RPCError("no scheduler is loaded", "ENOENT")
        self.sched.unload()
        self.jobs.sched_unloaded()
        self.broker.publish("module.removed", {"name": self.sched.name})
        req.respond()

    def _installed_schedulers(self) -> set[str]:
        names = set(registry(self.pm.hook.sched_register_schedulers, "scheduler"))
        return names | {n for n in builtin_plugins() if n.startswith("sched-")}

    def _info(self) -> dict:
        return {"uri": self.uri, "rundir": str(self.rundir), "pid": os.getpid(),
                "statedir": str(self.statedir) if self.statedir else None,
                "size": self.broker.size, "rank": self.broker.rank, "nodes": len(self.nodes),
                "t_start": self.t_start,
                "uptime": time.time() - self.t_start, "jobs": len(self.jobs.jobs),
                "active": len(self.jobs.active), "clients": self.broker.clients(),
                "streams": len(self.broker._streams)}

    async def _resource_status(self, req) -> None:
        if self.sched is None or not self.sched.loaded:
            raise RPCError("no scheduler is loaded", "ENOSYS")
        status = await self.broker.call("sched.resource-status")
        status["drained"] = {str(r): d for r, d in self.drained.items()}
        req.respond(status)

    def _targets(self, text: object) -> list[int]:
        if not isinstance(text, str) or not text:
            raise RPCError("no targets given")
        try:
            ranks = decode_idset(text)
        except ValueError:
            try:
                hosts = expand_hostlist(text)
            except ValueError:
                raise RPCError(f"invalid targets '{text}'") from None
            byname = {n.hostname: n.rank for n in self.nodes}
            missing = [h for h in hosts if h not in byname]
            if missing:
                raise RPCError(f"unknown host {missing[0]}") from None
            ranks = [byname[h] for h in hosts]
        bad = [r for r in ranks if r >= len(self.nodes)]
        if bad:
            raise RPCError(f"invalid rank {bad[0]} (instance has {len(self.nodes)} nodes)")
        return ranks

    def _drain(self, req) -> None:
        body = req.body or {}
        ranks = self._targets(body.get("targets"))
        for r in ranks:
            self.drained[r] = {"timestamp": time.time(), "reason": body.get("reason", "")}
        self._sched_drain(ranks, True)
        req.respond({"ranks": encode_idset(ranks)})

    def _undrain(self, req) -> None:
        body = req.body or {}
        ranks = self._targets(body.get("targets"))
        notdrained = [r for r in ranks if r not in self.drained]
        if notdrained:
            raise RPCError(f"rank {notdrained[0]} is not drained")
        for r in ranks:
            del self.drained[r]
        self._sched_drain(ranks, False)
        req.respond({"ranks": encode_idset(ranks)})

    def _ranks_lost(self, ranks: list[int]) -> None:
        """Brokers are lost: their nodes go down and their jobs end (node failure)."""
        down = [r for r in ranks if r < len(self.nodes) and r not in self.drained]
        for r in down:
            self.drained[r] = {"timestamp": time.time(), "reason": "broker lost",
                               "lost": True}
        self._sched_drain(down, True)
        self.exec.spread.ranks_lost(ranks)

    def _rank_joined(self, hello: dict) -> None:
        """A lost broker is back: its node returns (unless an admin drained it)."""
        rank = hello.get("rank")
        if isinstance(rank, int) and self.drained.get(rank, {}).get("lost"):
            del self.drained[rank]
            self._sched_drain([rank], False)

    def _sched_drain(self, ranks: list[int], drained: bool) -> None:
        if self.sched is not None and self.sched.loaded:
            self.broker.send("sched.drain", {"ranks": ranks, "drained": drained})

    def _queue_status(self, req) -> None:
        """Each queue: enabled/started with reasons, limits, and job counts by state."""
        counts: dict[str, dict[str, int]] = {}
        for job in self.jobs.active.values():
            c = counts.setdefault(job.summary["queue"], {})
            c[job.state_name] = c.get(job.state_name, 0) + 1
        out = []
        for q in self.queues.named(None):
            out.append({"name": q.name, "enabled": q.enabled,
                        "disable_reason": q.disable_reason, "started": q.started,
                        "stop_reason": q.stop_reason, "requires": q.requires,
                        "duration_default": q.defaults.get("duration",
                                                           self.queues.defaults.get("duration",
                                                                                    0.0)),
                        "duration_limit": q.limits.duration,
                        "max": q.limits.max, "counts": counts.get(q.name, {})})
        req.respond({"queues": out, "default": self.queues.default,
                     "inactive": self.jobs.counts["inactive"]})

    def _queue_control(self, req) -> None:
        body = req.body or {}
        action = body.get("action")
        reason = body.get("reason", "")
        targets = self.queues.named(body.get("queue"))
        for q in targets:
            if action == "enable":
                q.enabled, q.disable_reason = True, ""
            elif action == "disable":
                q.enabled, q.disable_reason = False, reason or "disabled by administrator"
            elif action == "start":
                q.started, q.stop_reason = True, ""
            elif action == "stop":
                q.started, q.stop_reason = False, reason
            else:
                raise RPCError(f"unknown queue action '{action}'")
        if action == "start":
            self.jobs.request_schedule()
        elif action == "stop":
            self.jobs.stop_queue({q.name for q in targets})
        req.respond()

    def _queue_wait(self, req) -> None:
        """{what: idle|empty, queue?}: answer once no job of the queue(s) runs (idle)
        or none is active (empty)."""
        body = req.body or {}
        what = body.get("what")
        if what not in ("idle", "empty"):
            raise RPCError(f"unknown wait '{what}'")
        names = {q.name for q in self.queues.named(body.get("queue"))}
        mask = RUNNING if what == "idle" else ACTIVE
        jobs = self.jobs

        def check(_job=None) -> None:
            for job in jobs.active.values():
                if job.state & mask and job.summary["queue"] in names:
                    jobs.watch_state(job, INACTIVE, check)
                    return
            req.respond()

        check()

    # -- shutdown --------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop whatever setup got to build (it may have failed half way)."""
        if getattr(self, "exec", None) is not None:
            self.exec.shutdown()
        # Children that exit after this (the shell host) must not signal a loop
        # that is about to close.
        if getattr(self, "reaper", None) is not None:
            self.reaper.close()
        for part in ("overlay", "broker", "kvs"):
            obj = getattr(self, part, None)
            if obj is not None:
                obj.close()
        if getattr(self, "statelock", None) is not None:
            os.close(self.statelock)  # the statedir is free for the next broker
            self.statelock = None


def lock_statedir(statedir: Path, name: str = "lock") -> int:
    """Make the statedir if needed and hold its lock (``statedir/lock``, flock, with
    the holder's pid in it) for as long as this process lives; StateError, naming
    the holder, if another broker has it. A broker of rank N > 0 holds
    ``statedir/lock.N`` instead (`name`)."""
    import fcntl

    try:
        statedir.mkdir(parents=True, exist_ok=True)
        fd = os.open(statedir / name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise StateError(f"cannot use statedir {statedir}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise StateError(f"statedir {statedir} is in use by another broker (pid {holder})") \
            from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError as exc:  # a full disk
        os.close(fd)
        raise StateError(f"cannot use statedir {statedir}: {exc.strerror}") from None
    return fd


def bootstrap_single(parent: Parent | None = None) -> Bootstrap:
    """The bootstrap of a one-broker instance: rank 0 of size 1 on this host, one
    level below its parent (a child instance) or at level 0."""
    return Bootstrap(level=parent.level + 1 if parent else 0)


def choose_bootstrap(config: dict, parent: Parent | None, test_size: int | None,
                     rundir: Path, test_hosts: list[str] | None = None) -> Bootstrap:
    """This broker's bootstrap: ``--test-size`` (with a certificate made for it in
    the rundir), a ``[bootstrap]`` config table, the PMI of the launcher that
    started it (`strato.core.bootstrap_pmi`), or a single broker."""
    level = parent.level + 1 if parent else 0
    if test_size is not None:
        if "bootstrap" in config:
            raise ConfigError("--test-size starts its brokers on this machine: remove the"
                              " [bootstrap] table")
        if test_size == 1:
            return for_test(1, config, None, "", level=level, hosts=test_hosts)
        for_test(test_size, config, None, "")  # checks the size and fanout first
        path = str(rundir / "curve.cert")
        cert = keygen(path, name="test-size")
        return for_test(test_size, config, cert, path, level=level, hosts=test_hosts)
    return bootstrap_from_config(config, level=level) or from_pmi(config, level=level) \
        or bootstrap_single(parent)


def _rss_kb(pid: int) -> int | None:
    """Resident memory of a process in KiB, from /proc (None where unknown)."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
    except (OSError, ValueError, IndexError):
        return None


def _spawn_initial(argv: list[str], env: dict[str, str]) -> int:
    """Start the initial program; ConfigError (one line, which a child also reports
    to its parent) if it cannot be run."""
    exe = shutil.which(argv[0], path=env.get("PATH")) if "/" not in argv[0] else argv[0]
    if exe is None:
        raise ConfigError(f"{argv[0]}: command not found")
    try:
        return os.posix_spawn(exe, argv, env)
    except OSError as exc:  # not executable, not a program (no '#!'), ...
        raise ConfigError(f"{argv[0]}: {exc.strerror}") from None


class _Program:
    """What the instance lives for: its initial program, (``--exit-with``) another
    process on this host, or (no command: ``--no-program``) nothing but ``strato
    shutdown`` or a signal, which end any of them. ``done`` gets a wait status."""

    def __init__(self, inst: Instance, command: list[str], exit_with: int | None) -> None:
        loop = asyncio.get_running_loop()
        self.done: asyncio.Future = loop.create_future()
        self.pid = 0
        if command:
            env = initial_environment(dict(os.environ), inst.uri)
            self.pid = _spawn_initial(command, env)
            inst.reaper.watch(self.pid, self._finish)
        elif exit_with is not None:
            try:
                fd = os.pidfd_open(exit_with)
            except OSError as exc:
                raise ConfigError(f"--exit-with {exit_with}: {exc.strerror}") from None
            loop.add_reader(fd, self._watched_exited, loop, fd)
        inst.broker.register("broker.shutdown", self._shutdown)

    def _finish(self, status: int) -> None:
        if not self.done.done():
            self.done.set_result(status)

    def _watched_exited(self, loop: asyncio.AbstractEventLoop, fd: int) -> None:
        loop.remove_reader(fd)
        os.close(fd)
        self._finish(0)

    def signal(self, signum: int) -> None:
        """Pass a signal on to the initial program (or stop, if there is none)."""
        if not self.pid:
            self._finish(signum)
            return
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            pass

    def _shutdown(self, req) -> None:
        """``broker.shutdown {exit}``: end the initial program, or exit with ``exit``."""
        code = (req.body or {}).get("exit", 0)
        if not isinstance(code, int) or not 0 <= code <= 255:
            raise RPCError("exit must be an integer from 0 to 255")
        req.respond()
        if self.pid:
            self.signal(signal.SIGTERM)
        else:
            self._finish(code << 8)


async def _serve(inst: Instance, command: list[str], exit_with: int | None = None,
                 dump: str | None = None, forked: dict[int, int] | None = None) -> int:
    launcher = None
    try:
        inst.setup()
        await inst.start_modules()
        sock = f"{inst.rundir}/local"
        if len(sock.encode()) > 107:
            raise ConfigError(f"rundir {inst.rundir} is too long: a socket path has at most"
                              " 107 bytes")
        try:
            inst.broker.listen(sock)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {sock}: {exc.strerror}") from None
        if inst.overlay is not None:
            inst.overlay.start()
            if inst.bootstrap.mode == "test":
                launcher = TestLauncher(inst, inst.overlay, forked or {})
                await launcher.join.wait()
            elif inst.bootstrap.mode == "pmi":  # the launcher started them all
                await JoinWatch(inst.overlay).wait()
        if inst.parent is not None:
            post_uri(inst.parent, inst.uri)
        gcpolicy.tune_service()
        program = _Program(inst, command, exit_with)
        inst.exec.warm_up()  # the shell host starts alongside the initial program
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, program.signal, signal.SIGTERM)
        loop.add_signal_handler(signal.SIGHUP, program.signal, signal.SIGHUP)
        loop.add_signal_handler(signal.SIGINT, lambda: None)  # the program handles ^C itself
        status = await program.done
        # what is left is cancelled, and gone, before the dump and before this
        # instance's own job (if it is a child) can end
        await inst.jobs.shutdown(keep_pending=inst.statedir is not None,
                                 keep_running=inst.exec.keep_running)
        if inst.overlay is not None:
            inst.overlay.shutdown()
            if launcher is not None:
                await launcher.stop()
            else:  # brokers started by PMI or from [bootstrap]: not ours to wait for
                await inst.overlay.children_left(timeout=CHILDREN_LEAVE_TIMEOUT)
        if dump:
            path = _dump_path(dump, inst)
            try:
                dump_kvs(inst.kvs, path)
            except OSError as exc:
                log.error("cannot write the dump %s: %s", path, exc.strerror)
    finally:
        # after a failed start, the brokers forked go before the overlay closes, so
        # that none lives to report its lost parent (after a normal end all are gone)
        end_brokers(forked or {})
        inst.shutdown()  # closes the reaper: SIGCHLD
        release_signals(asyncio.get_running_loop(), signal.SIGTERM, signal.SIGHUP,
                        signal.SIGINT)
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _dump_path(template: str, inst: Instance) -> str:
    jobid = ids.f58(inst.parent.jobid) if inst.parent else "0"
    return template.replace("{{id}}", jobid).replace("{{jobid}}", jobid)


def run_instance(config: dict, command: list[str], statedir: str | None = None,
                 rundir: str | None = None, exit_with: int | None = None,
                 dump: str | None = None, test_size: int | None = None,
                 test_hosts: list[str] | None = None, no_program: bool = False) -> int:
    """Run an instance in this process until `command` exits (or process `exit_with`,
    or a shutdown request); returns the exit code. Without a command, the user's
    shell is run, unless `no_program` (then only a shutdown or a signal ends it).
    With `dump`, the KVS is archived there at the end. An instance started as a
    job that cannot start tells its parent why, as an exception on the job, before
    it fails."""
    if not command and exit_with is None and not no_program:
        command = [os.environ.get("SHELL", "/bin/sh")]
    owned = rundir is None
    if owned:
        rdir = Path(tempfile.mkdtemp(prefix="strato-"))
    else:
        rdir = Path(rundir).resolve()
        try:
            rdir.mkdir(parents=True, exist_ok=True)
            os.chmod(rdir, 0o700)
        except OSError as exc:
            raise ConfigError(f"cannot use rundir {rdir}: {exc.strerror}") from None
    parent = None
    forked: dict[int, int] = {}
    try:
        parent = parent_from_environment(os.environ)
        boot = choose_bootstrap(config, parent, test_size, rdir, test_hosts)
        forget_pmi(os.environ)
        state = Path(statedir).resolve() if statedir else None
        if boot.rank != 0:  # a [bootstrap] config names this host, not as rank 0
            return run_peer(boot, rdir, config, statedir=state)
        lock = None
        if boot.mode == "test" and boot.size > 1:
            # the statedir is held before the other brokers start, so that they never
            # re-adopt the shell hosts of an instance that still holds it
            lock = lock_statedir(state) if state is not None else None
            forked = fork_test_brokers(boot, rdir, config, state)
        inst = Instance(config, rdir, state, parent, boot, statelock=lock)
        code = asyncio.run(_serve(inst, command, exit_with, dump, forked))
    except StratoError as exc:
        if parent is not None:
            # The parent answers with SIGTERM; the exit code must stay this error's.
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            report_failure(parent, str(exc))
        raise
    finally:
        end_brokers(forked)  # those left if startup failed
        if owned:
            shutil.rmtree(rdir, ignore_errors=True)
        else:
            try:
                os.unlink(rdir / "local")
            except OSError:
                pass
    sys.stdout.flush()
    return code
