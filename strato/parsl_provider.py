"""Parsl's `StratoProvider`: Parsl blocks (pilot jobs of workers) as strato jobs.

``pip install strato[parsl]``, then give a Parsl executor (``HighThroughputExecutor``)
``provider=StratoProvider()``: each block Parsl asks for is one job in the strato
instance at `uri` (else ``$STRATO_URI``), on ``nodes_per_block`` nodes, with a
time limit of ``walltime``, in ``queue``. As Parsl's `SlurmProvider` does with
``sbatch``/``sacct``/``scancel``, `submit`, `status` and `cancel` map onto
`strato.job`'s verbs; each call is one request to the instance.

Who starts the workers on a block's nodes is the ``launcher``:

- `StratoLauncher` (the default): strato itself, as ``srun`` would. The block's
  job has ``tasks_per_node`` tasks on each of its nodes, each running
  ``worker_init`` then Parsl's command.
- any Parsl launcher (``SingleNodeLauncher``, ``SimpleLauncher``, ...): the block's
  job runs one script on its first node, ``worker_init`` then the command as that
  launcher wraps it, as Slurm runs a batch script.

A block strato refuses (an unknown queue, more nodes than the instance has)
raises `StratoSubmitError` with strato's one-line reason, which Parsl reports as
the block's failure. If the instance goes away, `status` reports every block that
had not ended as FAILED with one line saying so (no traceback), so that Parsl's
error handling stops the executor.
"""

from __future__ import annotations

import logging
import math
import os

from parsl.jobs.states import JobState, JobStatus
from parsl.launchers.base import Launcher
from parsl.providers.base import ExecutionProvider
from parsl.providers.errors import SubmitException
from parsl.utils import RepresentationMixin

import strato
from strato import job as jobapi
from strato.core import ids
from strato.core.errors import RPCError, StratoError
from strato.core.states import ALL
from strato.handle import resolve_uri

log = logging.getLogger(__name__)

#: the note of the exception that cancels a block (Parsl scales in)
CANCEL_NOTE = "canceled by Parsl (scale in)"

_PENDING = {"NEW", "DEPEND", "PRIORITY", "SCHED"}
_ENDED = {"COMPLETED": JobState.COMPLETED, "FAILED": JobState.FAILED,
          "CANCELED": JobState.CANCELLED, "TIMEOUT": JobState.TIMEOUT}


class StratoLauncher(Launcher):
    """strato starts the workers: a block's job has ``tasks_per_node`` tasks on
    each of its ``nodes_per_block`` nodes, each running the command as it is.
    `StratoProvider` sees this launcher and asks strato for those tasks."""

    def __init__(self, debug: bool = True) -> None:
        super().__init__(debug=debug)

    def __call__(self, command: str, tasks_per_node: int, nodes_per_block: int,
                 script_dir: str = "") -> str:
        return command


class StratoSubmitError(SubmitException):
    """strato refused a block, or could not be reached: one line, strato's reason."""

    def __str__(self) -> str:
        return f"strato: cannot start block {self.job_name}: {self.message}"


def walltime_seconds(walltime: str | float) -> float:
    """Seconds from Parsl's ``HH:MM:SS`` (or ``MM:SS``), a number of seconds, or an
    RFC 23 duration (``90s``, ``10m``, ``2h``). ValueError (one line) otherwise."""
    if isinstance(walltime, (int, float)) and not isinstance(walltime, bool):
        seconds = float(walltime)
    elif isinstance(walltime, str) and ":" in walltime:
        parts = walltime.split(":")
        if len(parts) > 3 or not all(p.strip().isdigit() for p in parts):
            raise ValueError(f"walltime '{walltime}': expected HH:MM:SS")
        seconds = float(sum(int(p) * 60 ** i for i, p in enumerate(reversed(parts))))
    elif isinstance(walltime, str):
        from strato.jobspec.fsd import parse_fsd

        try:
            seconds = parse_fsd(walltime)
        except ValueError:
            raise ValueError(f"walltime '{walltime}': expected HH:MM:SS or a duration "
                             "such as 10m") from None
    else:
        raise ValueError(f"walltime {walltime!r}: expected HH:MM:SS or a duration such as 10m")
    if not 0 < seconds < math.inf:
        raise ValueError(f"walltime '{walltime}': must be more than zero")
    return seconds


class StratoProvider(ExecutionProvider, RepresentationMixin):
    """A Parsl execution provider whose blocks are jobs of a strato instance.

    Parameters are Parsl's usual ones (as `SlurmProvider` takes them):
    ``nodes_per_block``, ``init_blocks``, ``min_blocks``, ``max_blocks``,
    ``parallelism``, ``walltime`` (``HH:MM:SS`` or ``10m``), ``worker_init``
    (shell lines run before the workers), ``launcher``; and strato's: ``uri``
    (the instance; default ``$STRATO_URI``, read when a block is submitted),
    ``queue``, ``account`` (the bank), ``cores_per_node`` and ``gpus_per_node``
    (what each node of a block asks for; without them, and with ``exclusive``,
    whole nodes), ``exclusive`` (whole nodes, the default, as SlurmProvider),
    and ``status_polling_interval`` (seconds between Parsl's `status` calls).
    """

    def __init__(self, uri: str | None = None, nodes_per_block: int = 1,
                 cores_per_node: int | None = None, gpus_per_node: int | None = None,
                 init_blocks: int = 1, min_blocks: int = 0, max_blocks: int = 1,
                 parallelism: float = 1, walltime: str = "00:10:00",
                 queue: str | None = None, account: str | None = None,
                 exclusive: bool = True, worker_init: str = "",
                 launcher: Launcher | None = None,
                 status_polling_interval: float = 5) -> None:
        if not isinstance(nodes_per_block, int) or nodes_per_block < 1:
            raise ValueError(f"nodes_per_block {nodes_per_block!r}: must be an integer >= 1")
        if launcher is not None and not isinstance(launcher, Launcher):
            raise ValueError(f"launcher {launcher!r}: not a Parsl launcher")
        self._label = "strato"
        self.uri = uri
        self.nodes_per_block = nodes_per_block
        self.cores_per_node = cores_per_node
        self.gpus_per_node = gpus_per_node
        self.mem_per_node = None
        self.init_blocks = init_blocks
        self.min_blocks = min_blocks
        self.max_blocks = max_blocks
        self.parallelism = parallelism
        self.walltime = walltime
        self._seconds = walltime_seconds(walltime)
        self.queue = queue
        self.account = account
        self.exclusive = exclusive
        self.worker_init = worker_init
        self.launcher = launcher if launcher is not None else StratoLauncher()
        self._polling_interval = status_polling_interval
        self.script_dir: str | None = None  # set by the Parsl executor
        #: job id -> {"job_id", "status", "job_stdout_path", "job_stderr_path"}
        self.resources: dict[str, dict] = {}

    @property
    def label(self) -> str:
        return self._label

    @property
    def status_polling_interval(self) -> float:
        return self._polling_interval

    def _handle(self) -> strato.Handle:
        return strato.Handle(resolve_uri(self.uri))

    # -- submit ------------------------------------------------------------------------
    def jobspec(self, command: str, tasks_per_node: int, job_name: str,
                stdout: str | None = None, stderr: str | None = None) -> strato.JobspecV1:
        """The strato jobspec of one block running `command` (what `submit` sends)."""
        nodes = self.nodes_per_block
        per_node = max(1, tasks_per_node)
        env = dict(os.environ)
        cores = 1
        if self.cores_per_node:
            cores = max(1, self.cores_per_node // per_node)
            env["PARSL_CORES"] = str(cores)
        gpus = self.gpus_per_node // per_node if self.gpus_per_node else None
        strato_launches = isinstance(self.launcher, StratoLauncher)
        script = command if strato_launches else \
            self.launcher(command, tasks_per_node, nodes, self.script_dir or "")
        script = f"{self.worker_init}\n{script}\n" if self.worker_init else script
        js = strato.JobspecV1.from_command(
            ["/bin/bash", "-c", script], num_tasks=nodes * per_node, cores_per_task=cores,
            gpus_per_task=gpus, num_nodes=nodes, exclusive=self.exclusive,
            duration=self._seconds, environment=env, name=job_name,
            cwd=self.script_dir or os.getcwd())
        if not strato_launches:  # one script on the first node, as a batch script
            js.jobspec["tasks"][0]["count"] = {"total": 1}
        output = {}
        if stdout:
            output["stdout"] = {"type": "file", "path": stdout}
        if stderr:
            output["stderr"] = {"type": "file", "path": stderr}
        if output:
            js.setattr("system.shell.options.output", output)
        if self.queue:
            js.setattr("system.queue", self.queue)
        if self.account:
            js.setattr("system.bank", self.account)
        return js

    def submit(self, command: str, tasks_per_node: int, job_name: str = "parsl.strato") -> str:
        """Submit one block running `command`; returns its strato job id (F58).

        Raises StratoSubmitError with strato's one-line reason if the instance
        refuses the block or cannot be reached."""
        stdout = stderr = None
        if self.script_dir:
            base = os.path.join(os.path.abspath(self.script_dir), job_name)
            stdout, stderr = base + ".stdout", base + ".stderr"
        try:
            js = self.jobspec(command, tasks_per_node, job_name, stdout, stderr)
            with self._handle() as h:
                jobid = ids.f58(jobapi.submit(h, js))
        except (StratoError, ValueError) as exc:
            raise StratoSubmitError(job_name, str(exc)) from None
        log.debug("block %s is strato job %s", job_name, jobid)
        self.resources[jobid] = {"job_id": jobid, "status": JobStatus(JobState.PENDING),
                                 "job_stdout_path": stdout, "job_stderr_path": stderr}
        return jobid

    # -- status, cancel ----------------------------------------------------------------
    def status(self, job_ids: list[str]) -> list[JobStatus]:
        """The status of each block, from one request for the blocks not yet ended.

        If the instance cannot be reached, each block not ended is FAILED with a
        message saying why (the instance is gone), so Parsl stops using it."""
        live = [j for j in job_ids if not self._known(j).terminal]
        if live:
            try:
                with self._handle() as h:
                    records = jobapi.list_jobs(h, states=ALL, ids=[ids.parse(j) for j in live])
            except StratoError as exc:
                log.warning("strato: %s", exc)
                for j in live:
                    self._set(j, JobStatus(JobState.FAILED, message=f"strato: {exc}"))
            else:
                for rec in records:
                    self._set(ids.f58(rec["id"]), self._status_of(rec))
        return [self._known(j) for j in job_ids]

    def _known(self, job_id: str) -> JobStatus:
        entry = self.resources.get(job_id)
        return entry["status"] if entry else JobStatus(JobState.UNKNOWN)

    def _set(self, job_id: str, status: JobStatus) -> None:
        entry = self.resources.setdefault(job_id, {"job_id": job_id, "job_stdout_path": None,
                                                   "job_stderr_path": None})
        status.stdout_path = entry["job_stdout_path"]
        status.stderr_path = entry["job_stderr_path"]
        entry["status"] = status

    @staticmethod
    def _status_of(rec: dict) -> JobStatus:
        state = rec["state"]
        if state in _PENDING:
            return JobStatus(JobState.PENDING)
        if state != "INACTIVE":
            return JobStatus(JobState.RUNNING)
        result = jobapi.JobResult(rec["id"], rec["result"], rec.get("waitstatus"),
                                  rec.get("success", False), rec.get("exception"))
        exc = result.exception
        message = f"{exc['type']}: {exc.get('note', '')}" if exc else None
        if result.result == "FAILED" and message is None:
            message = f"exit code {result.returncode}"
        exit_code = None if result.result == "CANCELED" else result.returncode
        return JobStatus(_ENDED.get(result.result, JobState.FAILED), message=message,
                         exit_code=exit_code)

    def cancel(self, job_ids: list[str]) -> list[bool]:
        """Cancel blocks; True for each one this ended (False: it had already
        ended, or the instance cannot be reached)."""
        done = []
        try:
            with self._handle() as h:
                for j in job_ids:
                    try:
                        jobapi.cancel(h, j, note=CANCEL_NOTE)
                    except RPCError:
                        done.append(False)
                    else:
                        self._set(j, JobStatus(JobState.CANCELLED))
                        done.append(True)
        except StratoError as exc:
            log.warning("strato: %s", exc)
            done += [False] * (len(job_ids) - len(done))
        return done
