"""The job shell: one per job on a node, an object inside the shell host driven by callbacks.

It lays the job's tasks out over its slots, builds each task's environment, spawns
the tasks, sends their output to the job's output eventlog in the KVS, up to the
job's ``output.limit`` per stream (or to files named by ``--output``/``--error``
templates, unlimited), enforces the time limit, and reports
the job's wait status (the largest of its tasks') when the last task has exited.
Everything it tells the instance goes through its host's messages (`ShellHost`).
"""

from __future__ import annotations

import asyncio
import codecs
import functools
import logging
import os
import resource
import select
import shutil
import signal
import time

from strato.core import ids
from strato.core.plugins import call_hook
from strato.jobspec.idset import decode_idset_cached
from strato.jobspec.taskmap import order_tasks
from strato.shell.output_limit import OutputLimit, job_output_limit
from strato.shell.pmi import TASK_FD, ShellPMI, pmi_wanted

log = logging.getLogger("strato.shell-host")


_utf8_decoder = codecs.getincrementaldecoder("utf-8")


class _Reader:
    """One output stream of one task: decodes UTF-8 across reads and, for
    --label-io, holds a partial line until its end so labels start lines."""

    __slots__ = ("stream", "fd", "decoder", "partial")

    def __init__(self, stream: str, fd: int) -> None:
        self.stream = stream
        self.fd = fd
        self.decoder = None  # made at the first data: most tasks' stderr has none
        self.partial = b""

    def decode(self, data: bytes, final: bool) -> str:
        """`data` as text, a character split across reads kept for the next."""
        if self.decoder is None:
            if not data:
                return ""
            self.decoder = _utf8_decoder("replace")
        return self.decoder.decode(data, final=final)

    def labelled(self, rank: int, data: bytes, final: bool = False) -> bytes:
        """Complete lines of `data` (all of it if `final`) prefixed with ``RANK: ``."""
        data = self.partial + data
        if final:
            self.partial = b""
            if data and not data.endswith(b"\n"):
                data += b"\n"
        else:
            cut = data.rfind(b"\n") + 1
            data, self.partial = data[:cut], data[cut:]
        prefix = f"{rank}: ".encode()
        return b"".join(prefix + ln + b"\n" for ln in data.split(b"\n")[:-1])


def _rlimits(options: dict) -> list[tuple[int, int]]:
    """``-o rlimit``/``--rlimit`` as (RLIMIT_x, soft) pairs; ValueError on a bad one."""
    out = []
    for name, value in (options.get("rlimit") or {}).items():
        res = getattr(resource, f"RLIMIT_{str(name).upper()}", None)
        if res is None or isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"invalid rlimit {name}={value}")
        out.append((res, resource.RLIM_INFINITY if value < 0 else value))
    return out


class Task:
    """One task of a job: what to run and, once run, its pid and wait status."""

    __slots__ = ("rank", "local_id", "node_rank", "argv", "env", "pid", "pgid", "status",
                 "open", "stderr_midline")

    def __init__(self, rank: int, local_id: int, node_rank: int, argv: list[str]) -> None:
        self.rank = rank
        self.local_id = local_id
        self.node_rank = node_rank
        self.argv = argv
        self.env: dict[str, str] = {}
        self.pid = 0
        self.pgid = 0  # the task's own process group (its pid at spawn)
        self.status: int | None = None
        self.open = 0  # output pipes still open plus one for the process itself
        self.stderr_midline = False  # its stderr in the KVS ends within a line


def shell_options(jobspec: dict) -> dict:
    """The job's shell options (``attributes.system.shell.options``), {} if none."""
    return jobspec.get("attributes", {}).get("system", {}).get("shell", {}) \
        .get("options", {})


def task_layout(job, options: dict | None = None) -> list[tuple[int, int]]:
    """``(node_rank, local_id)`` for each task, in task-rank order.

    Slots are laid out over the allocated nodes in rank order; a ``total`` task
    count is spread over the slots in blocks, earlier slots taking the remainder.
    The ``per-resource`` shell option (``--tasks-per-node``/``--tasks-per-core``)
    instead runs its count of tasks on each allocated node or core, and the
    ``taskmap`` option (``--taskmap``) numbers the tasks over the nodes.
    `options` are the job's `shell_options`, if the caller has them already.
    """
    s = job.summary
    if options is None:
        options = shell_options(job.jobspec)
    per_resource = options.get("per-resource")
    slots: list[int] = []
    per_node = s["nslots"] // s["nnodes"] if s["nnodes"] else 0
    cores: dict[int, int] = {}
    for entry in job.R["execution"]["R_lite"]:
        ncores = len(decode_idset_cached(entry["children"].get("core", "")))
        for rank in decode_idset_cached(entry["rank"]):
            cores[rank] = cores.get(rank, 0) + ncores
            n = per_node or (ncores // s["cores_per_slot"] if s["cores_per_slot"] else 1)
            slots.extend([rank] * n)
    if isinstance(per_resource, dict) and per_resource.get("type") in ("node", "core"):
        count = int(per_resource.get("count", 1))
        ranks = list(cores)
        counts = [count * (cores[r] if per_resource["type"] == "core" else 1) for r in ranks]
    else:
        slots = slots[: s["nslots"]] or [0]
        count = job.jobspec["tasks"][0]["count"]
        if "total" in count:
            base, extra = divmod(count["total"], len(slots))
            per_slot = [base + (1 if i < extra else 0) for i in range(len(slots))]
        else:
            per_slot = [count["per_slot"]] * len(slots)
        per_rank: dict[int, int] = {}  # in the order of the slots
        for rank, n in zip(slots, per_slot, strict=True):
            per_rank[rank] = per_rank.get(rank, 0) + n
        ranks, counts = list(per_rank), list(per_rank.values())
    layout = []
    local: dict[int, int] = {}
    for index in order_tasks(counts, options.get("taskmap")):
        rank = ranks[index]
        lid = local.get(rank, 0)
        local[rank] = lid + 1
        layout.append((rank, lid))
    return layout


def render_template(template: str, job) -> str:
    """Expand mustache fields of an output path: {{id}}, {{id.f58}}, {{name}}, ..."""
    if "{{" not in template:
        return template
    out = template
    for key, form in (("id.dec", "dec"), ("id.hex", "hex"), ("id.dothex", "dothex"),
                      ("id.words", "words"), ("id.f58", "f58"), ("id", "f58")):
        tag = "{{" + key + "}}"
        if tag in out:
            out = out.replace(tag, ids.encode(job.id, form))
    out = out.replace("{{name}}", job.name)
    if "{{cc}}" in out:
        out = out.replace("{{cc}}", "" if job.cc is None else str(job.cc))
    return out


def _file_bytes(spec: dict) -> bytes:
    """The content of an RFC 37 file entry: text, base64, or a JSON object."""
    data = spec.get("data", "")
    if isinstance(data, (dict, list)):
        import json

        return json.dumps(data).encode()
    if spec.get("encoding") == "base64":
        import base64

        return base64.b64decode(data)
    return str(data).encode()


class JobShell:
    """Runs one job's tasks on this node (see module docstring)."""

    def __init__(self, host, job) -> None:
        self.host = host
        self.job = job
        self.jobid = job.id
        self.jobspec = job.jobspec
        kvsdir = job.kvsdir  # the job's KVS lists this shell appends to:
        self.output_key = kvsdir + ".guest.output"
        self.eventlog_key = kvsdir + ".exec.eventlog"
        self.tasks: list[Task] = []
        self.remaining = 0
        self._starting = True  # in start(): an end found meanwhile waits for its return
        self.finished = False
        self.killed = False
        self.timed_out = False
        system = job.jobspec.get("attributes", {}).get("system", {})
        self.system = system
        self.options = shell_options(job.jobspec)
        self.env: dict[str, str] = {}
        self._output_started = False
        self._timer: asyncio.TimerHandle | None = None
        self._warning: asyncio.TimerHandle | None = None  # --signal before the limit
        self.label = False
        self.sinks: dict[str, int | None] = {}
        self.rlimits: list[tuple[int, int]] = []
        self.output_limit: OutputLimit | None = None
        self.tmpdir: str | None = None
        self.pmi = None  # the PMI-1 server of the tasks (strato.shell.pmi), if on
        self._pmi_failed = False
        self.ntasks = 0  # of the whole job (a job spread over brokers runs a part here)
        try:
            self.layout = task_layout(job, self.options)
            self.layout_error = ""
        except (ValueError, TypeError) as exc:
            self.layout = []
            self.layout_error = str(exc)
        # the shell that writes the job's exec eventlog: the only one, or rank 0's part
        self.leader = job.rank is None or not self.layout \
            or job.rank == min(r for r, _ in self.layout)

    # -- output --------------------------------------------------------------------------
    def write_output(self, stream: str, rank: int, data: str) -> None:
        entry = {"timestamp": time.time(), "name": "data",
                 "context": {"stream": stream, "rank": str(rank), "data": data}}
        if not self._output_started:
            self._output_started = True
            if not self.leader:  # one header per job, from the leader
                self.host.append(self.output_key, [entry])
                return
            header = {"timestamp": entry["timestamp"], "name": "header",
                      "context": {"version": 1, "encoding": {"stdout": "UTF-8",
                                                             "stderr": "UTF-8"},
                                  "count": {"stdout": self.ntasks,
                                            "stderr": self.ntasks}}}
            self.host.append(self.output_key, [header, entry])
        else:
            self.host.append(self.output_key, [entry])

    def _open_files(self) -> tuple[int | None, int | None]:
        """File descriptors for --output/--error (None: output goes to the KVS)."""
        out = self.options.get("output")
        if not out:  # most jobs: nothing to open or label
            return None, None
        self.label = bool(out.get("label") or any(
            isinstance(out.get(k), dict) and out[k].get("label") for k in ("stdout", "stderr")))

        def open_tmpl(spec: dict | None) -> int | None:
            if not spec or not spec.get("path"):
                return None
            path = self._job_path(spec["path"])
            flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC
            flags |= os.O_APPEND if spec.get("mode") == "append" else os.O_TRUNC
            return os.open(path, flags, 0o644)

        fout = open_tmpl(out.get("stdout"))
        ferr = open_tmpl(out.get("stderr")) if out.get("stderr") else fout
        return fout, ferr

    def _input_path(self) -> str | None:
        """The file every task reads as its stdin (``--input``), if any."""
        spec = self.options.get("input", {}).get("stdin")
        if not spec or not spec.get("path"):
            return None
        return self._job_path(spec["path"])

    def _job_path(self, template: str) -> str:
        """The path an output or input template names, relative to the job's cwd."""
        cwd = self.system.get("cwd") or os.getcwd()
        return os.path.join(cwd, render_template(template, self.job))

    # -- running -------------------------------------------------------------------------
    def start(self) -> None:
        """Spawn every task. When all have exited (or none could start) the host's
        `shell_finished` gets the job's wait status, never before this returns: a
        job's ``start`` event always precedes its end.

        No coroutine per job: a job of one short task costs the host a few hundred
        microseconds in all, and a task and future per job were a good part of it.
        """
        try:
            failed = self._start()
        except Exception as exc:  # a plugin's, or a bug: the job fails, not the host
            log.exception("job shell failed")
            self.write_output("stderr", 0, f"strato-shell: {exc}\n")
            self.host.event(self.jobid, "exception", {"type": "exec",
                                                      "note": f"job shell: {exc}"})
            self.kill(signal.SIGKILL)  # what it started has no shell left to end it
            failed = 1 << 8
        self._starting = False
        if failed is not None:
            self._finish(failed, ran=False)
        elif self.remaining == 0:
            self._finish(self._status())

    def _status(self) -> int:
        """The job's wait status: the largest of its tasks'."""
        return max((t.status or 0) for t in self.tasks) if self.tasks else 0

    def _finish(self, status: int, ran: bool = True) -> None:
        if self.finished:
            return
        self.finished = True
        for timer in (self._timer, self._warning):
            if timer:
                timer.cancel()
        if ran and "shell_exit" in self.host.shell_hooks:
            call_hook(self.host.hook, "shell_exit", shell=self)
        self.host.shell_finished(self, status)

    def _start(self) -> int | None:
        """Everything `start` does; the wait status if the job failed before any
        task ran, else None."""
        loop = self.host.loop
        job = self.job
        host = self.host
        argv = [str(a) for a in job.jobspec["tasks"][0]["command"]]
        if self.layout_error:
            return self._fail_all(f"cannot lay out the tasks: {self.layout_error}")
        layout = self.layout
        nnodes = len({r for r, _ in layout})
        env = self.system.get("environment")
        base = dict(os.environ if env is None else env)
        base.update({"STRATO_URI": host.uri, "STRATO_JOB_ID": ids.f58(job.id),
                     "STRATO_JOB_SIZE": str(len(layout)), "STRATO_JOB_NNODES": str(nnodes)})
        if job.cc is not None:
            base["STRATO_JOB_CC"] = str(job.cc)
        self.env = base
        try:
            argv = self._materialize(argv)
        except OSError as exc:
            return self._fail_all(f"cannot write job files: {exc.strerror}")
        self.tasks = [Task(i, lid, nrank, argv) for i, (nrank, lid) in enumerate(layout)
                      if job.rank is None or nrank == job.rank]
        self.ntasks = len(layout)
        if self.leader:
            host.exec_event(self, "shell.init", {"ntasks": self.ntasks})
        if "shell_init" in host.shell_hooks:
            call_hook(host.hook, "shell_init", shell=self)
        options = self.options
        try:
            self.rlimits = _rlimits(options)
            self.output_limit = OutputLimit(job_output_limit(options, job.userid, host.uid))
            if self.tasks and pmi_wanted(options.get("pmi"), self.ntasks):
                self.pmi = ShellPMI(self, layout)
        except ValueError as exc:
            return self._fail_all(str(exc))
        try:
            fout, ferr = self._open_files()
        except OSError as exc:
            return self._fail_all(f"cannot open output file: {exc.strerror}: {exc.filename}")
        # Each task opens the input for itself: on one shared descriptor the tasks
        # would share its offset, and the first reader would take all the data.
        fin_path = self._input_path()
        try:
            fin = None if fin_path is None else os.open(fin_path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            for fd in {fout, ferr} - {None}:
                os.close(fd)
            return self._fail_all(f"cannot open input file: {exc.strerror}: {exc.filename}")
        if self.label:
            # Labelled lines are written by the shell, so tasks get pipes, not the files.
            self.sinks = {"stdout": fout, "stderr": ferr}
            spawn_out = spawn_err = None
        else:
            spawn_out, spawn_err = fout, ferr
        self.remaining = len(self.tasks)
        cwd = self.system.get("cwd")
        expand = options.get("env-expand") or {}
        task_init = "shell_task_init" in host.shell_hooks
        try:
            for task in self.tasks:
                if fin is not None and task.rank > 0:  # the last task's copy is spawned
                    os.close(fin)
                    fin = None
                    fin = os.open(fin_path, os.O_RDONLY | os.O_CLOEXEC)
                stdin = self.host.devnull if fin is None else fin
                env = dict(base)
                env["STRATO_TASK_RANK"] = str(task.rank)
                env["STRATO_TASK_LOCAL_ID"] = str(task.local_id)
                for var, template in expand.items():
                    env[var] = self._expand(template, task)
                pmi_fd = None
                if self.pmi is not None:
                    pmi_fd, pmi_env = self.pmi.connect(task.rank)
                    env.update(pmi_env)
                task.env = env
                try:
                    if task_init:
                        call_hook(host.hook, "shell_task_init", shell=self, task=task)
                    if self.killed:
                        self._task_exited(task, 15)
                        continue
                    self._spawn(task, cwd, stdin, spawn_out, spawn_err, pmi_fd)
                finally:
                    if pmi_fd is not None:  # the task has its copy
                        os.close(pmi_fd)
        finally:
            if not self.label:
                for fd in {fout, ferr} - {None}:
                    os.close(fd)
            if fin is not None:
                os.close(fin)
        # the task groups, so that the broker can kill them if this host dies (and,
        # recorded in the exec eventlog, after a restart that finds this host gone)
        pgids = [t.pgid for t in self.tasks if t.pgid]
        host.part_event(self, "shell.start", {"pgids": pgids})
        host.event(job.id, "start", {"pgids": pgids})
        duration = job.summary["duration"]
        if duration > 0:
            self._timer = loop.call_later(duration, self._timeout)
            warn = options.get("signal")
            if isinstance(warn, dict):
                self._warning = loop.call_later(
                    max(0.0, duration - float(warn.get("timeleft", 60))),
                    self._signal_tasks, int(warn.get("signum", signal.SIGUSR1)))
        return None

    def _materialize(self, argv: list[str]) -> list[str]:
        """Write ``attributes.system.files`` (e.g. a batch script) into the job's
        temporary directory and put its path where the command says ``{{tmpdir}}``."""
        files = self.system.get("files") or {}
        if not files and not any("{{tmpdir}}" in a for a in argv):
            return argv
        self.tmpdir = os.path.join(self.host.rundir, f"jobtmp-{ids.f58(self.jobid)}")
        os.makedirs(self.tmpdir, mode=0o700, exist_ok=True)
        for name, spec in files.items():
            if "/" in name or name in (".", ".."):
                raise OSError(22, f"invalid file name {name!r}")
            path = os.path.join(self.tmpdir, name)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC,
                         int(spec.get("mode", 0o600)) & 0o777)
            with os.fdopen(fd, "wb") as f:
                f.write(_file_bytes(spec))
        self.env["STRATO_JOB_TMPDIR"] = self.tmpdir
        return [a.replace("{{tmpdir}}", self.tmpdir) for a in argv]

    def cleanup(self) -> None:
        """Close the output files and PMI connections, and remove the job's
        temporary directory."""
        if self.pmi is not None:
            self.pmi.close()
        for fd in set(self.sinks.values()) - {None}:
            os.close(fd)
        self.sinks = {}
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None

    def _fail_all(self, message: str) -> int:
        self.write_output("stderr", 0, f"strato-shell: {message}\n")
        self.host.event(self.jobid, "exception", {"type": "exec", "note": message})
        return 127 << 8

    def pmi_exception(self, note: str) -> None:
        """The tasks' PMI failed (a task aborted, garbled the protocol, or left a
        barrier that cannot complete): end the job, once, saying why."""
        if self._pmi_failed:
            return
        self._pmi_failed = True
        self.host.event(self.jobid, "exception", {"type": "exec", "note": note})

    def _spawn(self, task: Task, cwd: str | None, devnull: int, fout: int | None,
               ferr: int | None, pmi_fd: int | None = None) -> None:
        pipes = []
        out_w = err_w = None
        # Only the shell's end is non-blocking: the task must see ordinary blocking
        # stdout/stderr, or its writes fail with EAGAIN once a pipe fills up.
        if fout is None:
            out_r, out_w = os.pipe2(os.O_CLOEXEC)
            os.set_blocking(out_r, False)
            pipes.append(("stdout", out_r))
        if ferr is None:
            err_r, err_w = os.pipe2(os.O_CLOEXEC)
            os.set_blocking(err_r, False)
            pipes.append(("stderr", err_r))
        try:
            task.pid = self.host.spawn(task.argv, task.env, cwd, devnull,
                                       fout if out_w is None else out_w,
                                       ferr if err_w is None else err_w, self.rlimits,
                                       () if pmi_fd is None else ((pmi_fd, TASK_FD),))
        except OSError as exc:
            for _, fd in pipes:
                os.close(fd)
            what = exc.filename or task.argv[0]
            self.write_output("stderr", task.rank,
                              f"strato-shell: task {task.rank}: start failed: {what}:"
                              f" {exc.strerror}\n")
            if self.pmi is not None:
                self.pmi.task_failed(task.rank, "could not start")
            self._task_exited(task, 127 << 8)
            return
        finally:
            for fd in (out_w, err_w):
                if fd is not None:
                    os.close(fd)
        task.pgid = task.pid
        task.open = 1 + len(pipes)
        watch = self.host.tasks.watch
        for stream, fd in pipes:
            watch(fd, functools.partial(self._read, task, _Reader(stream, fd)))
        self.host.tasks.watch_exit(task.pid, functools.partial(self._task_exited, task))

    def _read(self, task: Task, reader: _Reader, events: int) -> None:
        if events == select.EPOLLHUP:  # closed with nothing left (TaskPoller.watch)
            if reader.decoder is None and not reader.partial:
                # nor anything held back (a split character, a line to label): the
                # usual end of a quiet stream, with nothing to pass on
                self.host.tasks.close_fd(reader.fd)
                self._close_one(task)
                return
            data = b""
        else:
            try:
                data = os.read(reader.fd, 65536)
            except BlockingIOError:
                return
        eof = not data
        sink = self.sinks.get(reader.stream)
        if sink is not None:
            out = reader.labelled(task.rank, data, final=eof)
            if out:
                os.write(sink, out)
        else:
            data, warning = self.output_limit.admit(reader.stream, data)
            text = reader.decode(data, eof)
            if text:
                self.write_output(reader.stream, task.rank, text)
                if reader.stream == "stderr":
                    task.stderr_midline = not text.endswith("\n")
            if warning:  # on a line of its own
                self.write_output("stderr", task.rank,
                                  "\n" + warning if task.stderr_midline else warning)
                task.stderr_midline = False
        if eof:
            self.host.tasks.close_fd(reader.fd)
            self._close_one(task)

    def _task_exited(self, task: Task, status: int) -> None:
        task.status = status
        task.pid = -task.pid if task.pid else 0
        if os.WIFSIGNALED(status) and task.pgid and not self.killed:
            # A task killed by a signal (not one this shell sent: that one reaches
            # the whole group, SIGKILL following after the kill timeout) takes its
            # process group with it: what it started there (a child instance's
            # initial program, when its broker was killed) would otherwise live on
            # as orphans and could hold its output open, so the job never ended.
            try:
                os.killpg(task.pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if task.open:
            self._close_one(task)
        else:
            self._task_done(task)

    def _close_one(self, task: Task) -> None:
        task.open -= 1
        if task.open == 0:
            self._task_done(task)

    def _task_done(self, task: Task) -> None:
        if "shell_task_exit" in self.host.shell_hooks:
            call_hook(self.host.hook, "shell_task_exit", shell=self, task=task)
        self.remaining -= 1
        if self.remaining == 0 and not self._starting:
            self._finish(self._status())

    def _timeout(self) -> None:
        self._timer = None
        self.timed_out = True
        self.host.timed_out(self)

    def _expand(self, template: str, task: Task) -> str:
        """An ``--env=VAR={{...}}`` value for one task: {{rank}}, {{size}},
        {{nnodes}}, {{tmpdir}} and the job's own fields ({{id}}, {{name}}...)."""
        out = template
        for key, value in (("taskid", task.rank), ("task.id", task.rank), ("rank", task.rank),
                           ("task.index", task.rank), ("task.localid", task.local_id),
                           ("size", len(self.tasks)), ("tmpdir", self.tmpdir or ""),
                           ("nnodes", self.env.get("STRATO_JOB_NNODES", "1"))):
            out = out.replace("{{" + key + "}}", str(value))
        return render_template(out, self.job)

    def _signal_tasks(self, signum: int) -> None:
        """--signal: warn the tasks (their process groups) that the limit is near."""
        self._warning = None
        for task in self.tasks:
            if task.pgid and task.status is None:
                try:
                    os.killpg(task.pgid, signum)
                except ProcessLookupError:
                    pass

    def kill(self, signum: int) -> None:
        """Signal the process group of every task not yet done, including tasks whose
        main process has exited while a background child still holds its output."""
        self.killed = True
        for task in self.tasks:
            if task.pgid and (task.status is None or task.open):
                try:
                    os.killpg(task.pgid, signum)
                except ProcessLookupError:
                    pass
