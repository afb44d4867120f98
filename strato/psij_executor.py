"""PSI/J's ``strato`` executor: portable PSI/J jobs run as jobs of a strato instance.

``pip install strato[psij]``, then ``psij.JobExecutor.get_instance("strato",
url=URI)`` (without `url`: ``$STRATO_URI``). PSI/J finds this class through the
descriptor in ``psij-descriptors/strato_descriptor.py``. PSI/J loads this file on
its own (not through ``import``), so it imports only absolute names.

A `psij.JobSpec` becomes a strato jobspec (`jobspec_from_psij`), submitted through
a `strato.job.JobExecutor`, whose futures report the job's id, its ``start``
event (PSI/J's ACTIVE) and its end (COMPLETED, FAILED with the exit code and
strato's reason, CANCELED): no polling. A request the instance refuses (an
unknown queue, more nodes or cores than it has) raises `psij.InvalidJobException`
from `submit` with the instance's one-line reason, as PSI/J asks of executors
that can tell at once.
"""

from __future__ import annotations

import os
import shlex
import threading
import time
from collections.abc import Callable

from psij import (
    InvalidJobException,
    Job,
    JobExecutor,
    JobExecutorConfig,
    JobSpec,
    JobState,
    JobStatus,
    ResourceSpecV1,
    SubmitException,
)

import strato
from strato import job as jobapi
from strato.core import ids
from strato.core.errors import RPCError, StratoError
from strato.executor import JobExecutorFuture
from strato.handle import resolve_uri

#: custom attributes with this prefix are strato jobspec attributes (``strato.KEY``
#: as ``strato submit -S KEY=VALUE`` sets them); other prefixes are other executors'
CUSTOM_PREFIX = "strato."

#: the note of the exception that cancels a job through `StratoJobExecutor.cancel`
CANCEL_NOTE = "canceled through PSI/J"


def jobspec_from_psij(spec: JobSpec) -> strato.JobspecV1:
    """The strato jobspec that runs a PSI/J `JobSpec`.

    `ResourceSpecV1`: ``process_count`` tasks of ``cpu_cores_per_process`` cores
    (and ``gpu_cores_per_process`` gpus) each; with ``node_count`` or
    ``processes_per_node``, on that many nodes, the tasks spread evenly;
    ``exclusive_node_use`` asks for whole nodes. `JobAttributes`: ``duration``
    (the time limit), ``queue_name``, ``account`` (the bank, as ``flux submit
    --bank``), and custom attributes ``strato.KEY`` set as ``-S KEY=VALUE`` does.
    strato starts the processes itself (PSI/J's ``launcher`` is not used) and has
    no memory resource (``memory`` is not used).

    Raises `psij.InvalidJobException` (one line) for what strato cannot express:
    no executable, a reservation, another resource spec version, or counts
    from_command refuses. With ``pre_launch``/``post_launch`` scripts, the job
    is a child instance that sources them around the launch (`_launch_script`).
    """
    if not spec.executable:
        raise InvalidJobException("the job has no executable")
    res = spec.resources if spec.resources is not None else ResourceSpecV1()
    if not isinstance(res, ResourceSpecV1):
        raise InvalidJobException(f"resource spec version {res.version} is not supported "
                                  "(use ResourceSpecV1)")
    attrs = spec.attributes
    if attrs.reservation_id:
        raise InvalidJobException("strato has no reservations (reservation_id "
                                  f"{attrs.reservation_id!r})")
    nodes = None
    if res.node_count is not None or res.processes_per_node is not None \
            or res.exclusive_node_use:
        nodes = res.computed_node_count
    env = dict(os.environ) if spec.inherit_environment else {}
    env.update({k: str(v) for k, v in (spec.environment or {}).items()})
    directory = os.fspath(spec.directory) if spec.directory else os.getcwd()
    command = [spec.executable, *(str(a) for a in spec.arguments or ())]
    shape = {"cores_per_task": res.cpu_cores_per_process or 1,
             "gpus_per_task": res.gpu_cores_per_process, "num_nodes": nodes,
             "exclusive": res.exclusive_node_use}
    common = {"duration": attrs.duration.total_seconds(), "cwd": directory,
              "environment": env}
    stdin = os.fspath(spec.stdin_path) if spec.stdin_path else None
    try:
        if spec.pre_launch or spec.post_launch:
            script = _launch_script(spec, command, res.computed_process_count, shape, stdin)
            stdin = None  # the launch in the script reads it
            js = strato.JobspecV1.from_batch_command(
                script, num_slots=res.computed_process_count,
                cores_per_slot=shape["cores_per_task"], gpus_per_slot=shape["gpus_per_task"],
                num_nodes=nodes, exclusive=res.exclusive_node_use,
                name=spec.name or os.path.basename(spec.executable), **common)
        else:
            js = strato.JobspecV1.from_command(command, num_tasks=res.computed_process_count,
                                               name=spec.name, **shape, **common)
    except ValueError as exc:
        raise InvalidJobException(str(exc)) from None
    output = {}
    if spec.stdout_path:
        output["stdout"] = {"type": "file", "path": os.fspath(spec.stdout_path)}
    if spec.stderr_path:
        output["stderr"] = {"type": "file", "path": os.fspath(spec.stderr_path)}
    if output:
        js.setattr("system.shell.options.output", output)
    if stdin:
        js.setattr("system.shell.options.input", {"stdin": {"type": "file", "path": stdin}})
    if attrs.queue_name:
        js.setattr("system.queue", attrs.queue_name)
    if attrs.account:
        js.setattr("system.bank", attrs.account)
    for key, value in (attrs.custom_attributes or {}).items():
        if key.startswith(CUSTOM_PREFIX):
            try:
                js.setattr(key[len(CUSTOM_PREFIX):], value)
            except (TypeError, ValueError) as exc:
                raise InvalidJobException(f"custom attribute {key}: {exc}") from None
    return js


def _launch_script(spec: JobSpec, command: list[str], ntasks: int, shape: dict,
                   stdin: str | None) -> str:
    """The script of a job with pre/post-launch scripts: PSI/J sources them on the
    job's first node before and after the launch, so the job is a child instance
    (as ``strato batch``) whose script sources ``pre_launch``, launches the tasks
    with ``strato run`` in the job's own resources, sources ``post_launch`` and
    exits with the tasks' exit code."""
    run = ["strato", "run", "-n", str(ntasks), "-c", str(shape["cores_per_task"])]
    if shape["gpus_per_task"]:
        run += ["-g", str(shape["gpus_per_task"])]
    if shape["num_nodes"] is not None:
        run += ["-N", str(shape["num_nodes"])]
    if stdin:
        run += ["--input", stdin]
    lines = ["#!/bin/bash"]
    if spec.pre_launch:
        lines.append(f". {shlex.quote(os.fspath(spec.pre_launch))} || exit")
    lines += [shlex.join([*run, "--", *command]), "rc=$?"]
    if spec.post_launch:
        lines.append(f". {shlex.quote(os.fspath(spec.post_launch))}")
    lines.append("exit $rc")
    return "\n".join(lines) + "\n"


def status_of(result: jobapi.JobResult) -> JobStatus:
    """The final PSI/J status of a strato job that ended with `result`.

    COMPLETED for exit code 0; CANCELED for a canceled job; FAILED otherwise,
    with the exit code and, when the instance ended the job (a time limit, a
    launch failure), its reason as the message (``timeout: resource allocation
    expired``).
    """
    exc = result.exception
    message = f"{exc.get('type')}: {exc.get('note')}" if exc else None
    meta = {"native_id": ids.f58(result.id), "result": result.result}
    if result.result == "COMPLETED":
        return JobStatus(JobState.COMPLETED, time=time.time(), exit_code=0, metadata=meta)
    if result.result == "CANCELED":
        return JobStatus(JobState.CANCELED, time=time.time(), message=message, metadata=meta)
    if message is None:
        message = f"exit code {result.returncode}"
    return JobStatus(JobState.FAILED, time=time.time(), exit_code=result.returncode,
                     message=message, metadata=meta)


class StratoJobExecutor(JobExecutor):
    """A `psij.JobExecutor` for a strato instance (the one at `url`, else
    ``$STRATO_URI``).

    Each executor owns a `strato.job.JobExecutor` (one thread, one connection);
    status callbacks are called from that thread. `submit` returns once the job
    has its id in the instance (``job.native_id``, the F58 form ``ƒ2Xm...``).
    """

    def __init__(self, url: str | None = None, config: JobExecutorConfig | None = None) -> None:
        super().__init__(url=url, config=config or JobExecutorConfig())
        try:
            self.uri = resolve_uri(url)
            self._executor = jobapi.JobExecutor(uri=self.uri)
        except StratoError as exc:
            raise SubmitException(str(exc)) from None
        self._lock = threading.Lock()
        self._futures: dict[Job, JobExecutorFuture] = {}

    # -- submit, cancel -------------------------------------------------------------------
    def submit(self, job: Job) -> None:
        """Submit `job`; returns once it is QUEUED in the instance.

        Raises InvalidJobException with the instance's reason if it refuses the
        job, SubmitException if the instance cannot be reached.
        """
        spec = self._check_job(job)
        try:
            jobspec = jobspec_from_psij(spec)
        except InvalidJobException:
            job.executor = None
            raise
        try:
            fut = self._executor.submit(jobspec)
            jobid = fut.jobid()
        except RPCError as exc:
            job.executor = None
            raise InvalidJobException(str(exc)) from None
        except (StratoError, RuntimeError) as exc:
            job.executor = None
            raise SubmitException(str(exc)) from None
        self._follow(job, jobid, fut)

    def _follow(self, job: Job, jobid: int, fut: JobExecutorFuture) -> None:
        job._native_id = ids.f58(jobid)
        with self._lock:
            self._futures[job] = fut
        self._set_job_status(job, JobStatus(JobState.QUEUED, time=time.time(),
                                            metadata={"native_id": job._native_id}))
        fut.add_event_callback("start", lambda _f, entry: self._set_job_status(
            job, JobStatus(JobState.ACTIVE, time=entry["timestamp"])))
        fut.add_done_callback(lambda f: self._done(job, f))

    def _done(self, job: Job, fut: JobExecutorFuture) -> None:
        with self._lock:
            self._futures.pop(job, None)
        try:
            status = status_of(fut.result())
        except StratoError as exc:  # the instance was lost
            status = JobStatus(JobState.FAILED, time=time.time(), message=str(exc))
        self._set_job_status(job, status)

    def cancel(self, job: Job) -> None:
        """Cancel `job` in the instance; it becomes CANCELED when strato has ended
        it (or keeps its own end if it ended first). SubmitException if the
        instance cannot be reached."""
        with self._lock:
            fut = self._futures.get(job)
        if fut is None or fut.done() or job.native_id is None:
            return
        try:
            with strato.Handle(self.uri) as h:
                jobapi.cancel(h, job.native_id, note=CANCEL_NOTE)
        except RPCError:
            pass  # it ended meanwhile: its own end is reported
        except StratoError as exc:
            raise SubmitException(str(exc)) from None

    # -- other jobs of the instance ---------------------------------------------------
    def list(self) -> list[str]:
        """The ids (F58) of the instance's active jobs, whoever submitted them."""
        try:
            with strato.Handle(self.uri) as h:
                return [ids.f58(r["id"]) for r in jobapi.list_jobs(h)]
        except StratoError as exc:
            raise SubmitException(str(exc)) from None

    def attach(self, job: Job, native_id: str) -> None:
        """Follow a job of the instance that was not submitted through this
        executor (its id in any strato form); `job` must be NEW.

        Its statuses come from its eventlog, read by a thread of its own until
        the job ends. InvalidJobException for an unknown id.
        """
        if job.status.state != JobState.NEW:
            raise InvalidJobException("Job must be in NEW state")
        try:
            jobid = ids.parse(str(native_id))
            with strato.Handle(self.uri) as h:
                jobapi.info(h, jobid)
        except (ValueError, RPCError) as exc:
            raise InvalidJobException(f"{native_id}: {exc}") from None
        except StratoError as exc:
            raise SubmitException(str(exc)) from None
        job.executor = self
        job._native_id = ids.f58(jobid)
        threading.Thread(target=self._watch_attached, args=(job, jobid),
                         name=f"psij-strato-attach-{job._native_id}", daemon=True).start()

    def _watch_attached(self, job: Job, jobid: int) -> None:
        on_entry: dict[str, Callable[[dict], JobStatus]] = {
            "submit": lambda e: JobStatus(JobState.QUEUED, time=e["timestamp"]),
            "start": lambda e: JobStatus(JobState.ACTIVE, time=e["timestamp"]),
        }
        try:
            with strato.Handle(self.uri) as h:
                for item in jobapi.event_watch(h, jobid):
                    entry = item["entry"]
                    if entry["name"] in on_entry:
                        self._set_job_status(job, on_entry[entry["name"]](entry))
                status = status_of(jobapi.wait(h, jobid))
        except StratoError as exc:
            status = JobStatus(JobState.FAILED, time=time.time(), message=str(exc))
        self._set_job_status(job, status)
