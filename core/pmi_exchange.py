"""The PMI key-value exchange of jobs spread over several brokers (rank 0).

Each job shell's PMI server (`strato.shell.pmi`) sends ``pmi.exchange {id,
rank, kvs}`` once all of its tasks have entered a barrier: ``rank`` is the
broker its part runs on, ``kvs`` what its tasks put since the last barrier.
When every shell of the job that runs tasks has sent its part, each one gets
the same answer, ``{kvs}``, with all the keys; a job's barriers follow one
another, so a job has at most one open here. A shell whose task broke the
protocol sends ``{id, rank, error}`` instead (one-way): the open barrier and
every later one of that job fail with that error. What is left of a job is
dropped when it finishes (`forget`).
"""

from __future__ import annotations

from strato.core.errors import RPCError

#: the most keys one barrier of one job may carry (all shells together)
MAX_KEYS = 1 << 20


class _Barrier:
    __slots__ = ("kvs", "waiting")

    def __init__(self) -> None:
        self.kvs: dict[str, str] = {}
        self.waiting: dict[int, object] = {}  # broker rank -> its shell's request


class PmiExchange:
    """``pmi.exchange`` on rank 0 (see module docstring)."""

    def __init__(self, broker, jobs: dict) -> None:
        """`jobs`: exec's running jobs (id -> `ExecJob`), whose R and jobspec say
        which ranks run tasks."""
        self.jobs = jobs
        self.barriers: dict[int, _Barrier] = {}
        self.broken: dict[int, str] = {}
        self._shells: dict[int, frozenset[int]] = {}
        broker.register("pmi.exchange", self._exchange)

    def _ranks(self, jobid: int) -> frozenset[int]:
        """The brokers that run tasks of a running job (RPCError if it is not one)."""
        ranks = self._shells.get(jobid)
        if ranks is None:
            from strato.shell.shell import task_layout

            job = self.jobs.get(jobid)
            if job is None:
                raise RPCError(f"pmi.exchange: job {jobid} is not running here", "ENOENT")
            ranks = self._shells[jobid] = frozenset(r for r, _ in task_layout(job))
        return ranks

    def _exchange(self, req) -> None:
        body = req.body if isinstance(req.body, dict) else {}
        jobid, rank = body.get("id"), body.get("rank")
        if not isinstance(jobid, int) or not isinstance(rank, int):
            raise RPCError("pmi.exchange needs a job id and a broker rank")
        if rank not in self._ranks(jobid):
            raise RPCError(f"pmi.exchange: rank {rank} runs no task of job {jobid}")
        error = body.get("error")
        if error is not None:
            self._break(jobid, str(error))
            req.respond()
            return
        if jobid in self.broken:
            raise RPCError(self.broken[jobid], "EIO")
        kvs = body.get("kvs")
        if not isinstance(kvs, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                for k, v in kvs.items()):
            raise RPCError("pmi.exchange: kvs must map strings to strings")
        barrier = self.barriers.setdefault(jobid, _Barrier())
        if rank in barrier.waiting:
            raise RPCError(f"pmi.exchange: rank {rank} is already in this barrier", "EEXIST")
        if len(barrier.kvs) + len(kvs) > MAX_KEYS:
            self._break(jobid, f"a PMI barrier of more than {MAX_KEYS} keys")
            raise RPCError(self.broken[jobid], "E2BIG")
        barrier.kvs.update(kvs)
        barrier.waiting[rank] = req
        if len(barrier.waiting) == len(self._ranks(jobid)):
            del self.barriers[jobid]
            for waiting in barrier.waiting.values():
                waiting.respond({"kvs": barrier.kvs})

    def _break(self, jobid: int, why: str) -> None:
        self.broken.setdefault(jobid, why)
        barrier = self.barriers.pop(jobid, None)
        if barrier is not None:
            for waiting in barrier.waiting.values():
                waiting.error(self.broken[jobid], "EIO")

    def forget(self, jobid: int) -> None:
        """The job has finished: fail what still waits and drop its state."""
        self._shells.pop(jobid, None)
        self.broken.pop(jobid, None)
        barrier = self.barriers.pop(jobid, None)
        if barrier is not None:
            for waiting in barrier.waiting.values():
                waiting.error("the job has ended", "ENOENT")
