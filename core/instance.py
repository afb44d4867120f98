"""An instance: broker, KVS, job manager, scheduler and exec wired together.

`run_instance` is what ``strato start`` does: it makes the run directory, starts
every part in this process, runs the initial program with ``STRATO_URI`` set, and
returns the program's exit code once the program exits and the instance has
shut down.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import zmq

from strato.core import job_services
from strato.core.broker import Broker
from strato.core.errors import ConfigError, PluginError, RPCError, StateError
from strato.core.jobmanager import JobManager
from strato.core.kvs import KVS
from strato.core.plugins import describe, make_plugin_manager, registry, unknown_name
from strato.core.queues import Queues
from strato.core.resource import instance_R
from strato.core.states import ACTIVE, INACTIVE, RUNNING
from strato.jobspec.hostlist import expand_hostlist
from strato.jobspec.idset import decode_idset, encode_idset
from strato.jobspec.model import summarize
from strato.shell.spawn import Reaper

log = logging.getLogger("strato.instance")


class Instance:
    """One running instance in this process (see module docstring)."""

    def __init__(self, config: dict, rundir: Path, statedir: Path | None) -> None:
        self.config = config
        self.rundir = rundir
        self.statedir = statedir
        self.uri = f"local://{rundir}/local"
        self.t_start = time.time()
        self.pm = make_plugin_manager(config)
        self.summarize = summarize
        self.drained: dict[int, dict] = {}

    def setup(self) -> None:
        """Build every part; errors here stop startup with a one-line message."""
        loop = asyncio.get_running_loop()
        self.reaper = Reaper(loop)
        statefile = None
        if self.statedir is not None:
            try:
                self.statedir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StateError(f"cannot use statedir {self.statedir}: {exc.strerror}") \
                    from None
            statefile = self.statedir / "content.sqlite"
        self.kvs = KVS(statefile)
        epoch = self.kvs.get("instance.fluid-epoch")
        if not isinstance(epoch, int):
            epoch = int(time.time() * 1000) - 1
            self.kvs.put("instance.fluid-epoch", epoch)
        self.fluid_epoch = epoch
        self.nodes, self.R = instance_R(self.config)
        self.kvs.put("resource.R", self.R)
        hook = self.pm.hook
        schedulers = registry(hook.sched_register_schedulers, "scheduler")
        name = self.config.get("sched", {}).get("plugin", "sched-simple")
        if name not in schedulers:
            raise ConfigError(unknown_name("scheduler", name, self.config,
                                           "sched_register_schedulers"))
        self.scheduler = schedulers[name](self, self.config.get(name, {}))
        self.scheduler.set_resources(self.nodes)
        self.queues = Queues(self.config)
        self.backend_factories = registry(hook.exec_register_backends, "exec backend")
        self.backends: dict = {}
        self.jobs = JobManager(self)
        if self.jobs.default_backend not in self.backend_factories:
            raise ConfigError(unknown_name("exec backend", self.jobs.default_backend,
                                           self.config, "exec_register_backends"))
        for backend in self.backend_factories:  # bad backend config fails startup, not a job
            self.backend(backend)
        self.broker = Broker()
        self.kvs.register_services(self.broker)
        job_services.register(self.broker, self.jobs, self.kvs)
        self._register_services()
        hook.core_register_services(register=self.broker.register)
        for impl in hook.core_configure.get_hookimpls():
            try:
                impl.function(instance=self, config=self.config.get(impl.plugin_name, {}))
            except Exception as exc:
                raise PluginError(f"plugin '{impl.plugin_name}': {exc}") from None
        self.jobs.recover()

    def backend(self, name: str):
        be = self.backends.get(name)
        if be is None:
            be = self.backends[name] = self.backend_factories[name](self,
                                                                    self.config.get("exec", {}))
        return be

    # -- exec glue ----------------------------------------------------------------------
    def start_exec(self, job) -> None:
        system = job.jobspec.get("attributes", {}).get("system", {})
        test = system.get("exec", {}).get("test") if isinstance(system.get("exec"), dict) \
            else None
        name = "sim" if test is not None else self.jobs.default_backend
        job.backend = self.backend(name)
        job.backend.start(job)

    def kill_exec(self, job, signum: int) -> None:
        if job.backend is not None:
            job.backend.kill(job, signum)

    def job_ended(self, job) -> None:
        hook = self.pm.hook.acct_job_end
        if hook.get_hookimpls():
            s = job.summary
            usage = {"t_submit": job.t_submit, "t_run": job.t_run, "t_inactive": job.t_inactive,
                     "nnodes": s["nnodes"] or 1, "ncores": s["nslots"] * s["cores_per_slot"],
                     "ngpus": s["nslots"] * s["gpus_per_slot"],
                     "runtime": (job.t_cleanup - job.t_run) if job.t_run else 0.0,
                     "result": job.result}
            try:
                hook(job=job, usage=usage)
            except Exception:
                log.exception("acct_job_end hook failed")

    # -- instance services -----------------------------------------------------------------
    def _register_services(self) -> None:
        b = self.broker
        b.register("resource.status", lambda req: req.respond(self._resource_status()))
        b.register("resource.R", lambda req: req.respond({"R": self.R}))
        b.register("resource.drain", self._drain)
        b.register("resource.undrain", self._undrain)
        b.register("queue.status", self._queue_status)
        b.register("queue.control", self._queue_control)
        b.register("queue.wait", self._queue_wait)
        b.register("plugins.list", lambda req: req.respond({"plugins": describe(self.pm)}))
        b.register("broker.info", lambda req: req.respond(self._info()))

    def _info(self) -> dict:
        return {"uri": self.uri, "rundir": str(self.rundir), "pid": os.getpid(),
                "statedir": str(self.statedir) if self.statedir else None,
                "size": 1, "nodes": len(self.nodes), "t_start": self.t_start,
                "uptime": time.time() - self.t_start, "jobs": len(self.jobs.jobs),
                "active": len(self.jobs.active)}

    def _resource_status(self) -> dict:
        status = self.scheduler.resource_status()
        status["drained"] = {str(r): d for r, d in self.drained.items()}
        return status

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
        self.scheduler.drain(ranks, True)
        req.respond({"ranks": encode_idset(ranks)})

    def _undrain(self, req) -> None:
        body = req.body or {}
        ranks = self._targets(body.get("targets"))
        notdrained = [r for r in ranks if r not in self.drained]
        if notdrained:
            raise RPCError(f"rank {notdrained[0]} is not drained")
        for r in ranks:
            del self.drained[r]
        self.scheduler.drain(ranks, False)
        self.jobs.request_schedule()
        req.respond({"ranks": encode_idset(ranks)})

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
        for backend in self.backends.values():
            stop = getattr(backend, "shutdown", None)
            if stop is not None:
                stop()
        self.broker.close()
        self.kvs.close()


def _spawn_initial(argv: list[str], env: dict[str, str]) -> int:
    exe = shutil.which(argv[0], path=env.get("PATH")) if "/" not in argv[0] else argv[0]
    if exe is None:
        raise ConfigError(f"{argv[0]}: command not found")
    return os.posix_spawn(exe, argv, env)


async def _serve(inst: Instance, command: list[str]) -> int:
    inst.setup()
    sock = f"{inst.rundir}/local"
    if len(sock.encode()) > 107:
        raise ConfigError(f"rundir {inst.rundir} is too long: a socket path has at most"
                          " 107 bytes")
    try:
        inst.broker.bind(f"ipc://{sock}")
    except zmq.ZMQError as exc:
        raise ConfigError(f"cannot listen on {inst.rundir}/local: {exc}") from None
    loop = asyncio.get_running_loop()
    env = dict(os.environ)
    env["STRATO_URI"] = inst.uri
    done: asyncio.Future = loop.create_future()
    pid = _spawn_initial(command, env)
    inst.reaper.watch(pid, lambda status: done.done() or done.set_result(status))

    def terminate(signum: int) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    loop.add_signal_handler(signal.SIGTERM, terminate, signal.SIGTERM)
    loop.add_signal_handler(signal.SIGHUP, terminate, signal.SIGHUP)
    loop.add_signal_handler(signal.SIGINT, lambda: None)  # the program handles ^C itself
    try:
        status = await done
    finally:
        inst.shutdown()
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def run_instance(config: dict, command: list[str], statedir: str | None = None,
                 rundir: str | None = None) -> int:
    """Run an instance in this process until `command` exits; returns its exit code."""
    if not command:
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
    try:
        inst = Instance(config, rdir, Path(statedir).resolve() if statedir else None)
        code = asyncio.run(_serve(inst, command))
    finally:
        if owned:
            shutil.rmtree(rdir, ignore_errors=True)
        else:
            try:
                os.unlink(rdir / "local")
            except OSError:
                pass
    sys.stdout.flush()
    return code
