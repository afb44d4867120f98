"""Job verbs over a handle, named as in Flux's ``flux.job``: submit, wait,
event_watch, cancel, kill, list, urgency; the ``*_async`` forms take an
`AsyncHandle`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from strato.core import ids
from strato.core.states import ACTIVE, PENDING, RUNNING, STATES  # noqa: F401 (public names)
from strato.handle import Handle

if TYPE_CHECKING:
    from strato.async_handle import AsyncHandle



@dataclass
class JobResult:
    """How a job ended."""

    id: int
    result: str
    status: int | None
    success: bool
    exception: dict | None = None

    @property
    def returncode(self) -> int:
        """The shell-style exit code (128+signal for a signalled job)."""
        if self.status is None:
            return 1 if not self.success else 0
        if self.status & 0x7F:
            return 128 + (self.status & 0x7F)
        return (self.status >> 8) & 0xFF


def _jobspec_dict(jobspec) -> dict:
    if hasattr(jobspec, "jobspec"):
        return jobspec.jobspec
    if isinstance(jobspec, (str, bytes)):
        return json.loads(jobspec)
    return jobspec


def submit(h: Handle, jobspec, urgency: int = 16, flags: int = 0) -> int:
    """Submit one job; returns its id."""
    return submit_many(h, jobspec, 1, urgency, flags)[0]


def submit_many(h: Handle, jobspec, count: int, urgency: int = 16, flags: int = 0) -> list[int]:
    """Submit `count` copies of one jobspec in one request; returns their ids."""
    body = {"jobspec": _jobspec_dict(jobspec), "count": count, "urgency": urgency,
            "flags": flags}
    return h.rpc("job-manager.submit", body)["ids"]


def submit_list(h: Handle, jobspecs: Iterable, urgency: int = 16, flags: int = 0) -> list[int]:
    """Submit different jobspecs in one request (all or none are accepted)."""
    body = {"jobspecs": [_jobspec_dict(j) for j in jobspecs], "urgency": urgency,
            "flags": flags}
    return h.rpc("job-manager.submit", body)["ids"]


def _result(r: dict) -> JobResult:
    return JobResult(r["id"], r["result"], r["status"], r["success"], r.get("exception"))


def wait(h: Handle, jobid: int | str) -> JobResult:
    """Wait for a job to become inactive."""
    return _result(h.rpc("job-manager.wait", {"ids": [jobid]})["results"][0])


def wait_all(h: Handle, jobids: list) -> list[JobResult]:
    """Wait for every job in `jobids`; returns their results in the order they ended."""
    tag = h.send("job-manager.wait", {"ids": [*jobids]}, stream=True)
    out: list[JobResult] = []
    while True:
        body, err, more = h.recv(tag)
        if err is not None:
            from strato.core.errors import RPCError

            raise RPCError(err)
        out.extend(_result(r) for r in body["results"])
        if not more:
            return out


def event_watch(h: Handle, jobid: int | str, output: bool = False) -> Iterator[dict]:
    """Yield ``{"log": "eventlog"|"output", "entry": {...}}`` until the job is clean."""
    yield from h.rpc_stream("job-manager.events", {"id": jobid, "output": output})


def cancel(h: Handle, jobid: int | str, note: str = "") -> None:
    h.rpc("job-manager.cancel", {"ids": [jobid], "note": note})


def raise_exception(h: Handle, jobid: int | str, etype: str, severity: int = 0,
                    note: str = "") -> None:
    h.rpc("job-manager.cancel", {"ids": [jobid], "type": etype, "severity": severity,
                                 "note": note})


def kill(h: Handle, jobid: int | str, signum: int = 15) -> None:
    h.rpc("job-manager.kill", {"ids": [jobid], "signum": signum})


def urgency(h: Handle, jobid: int | str, value: int) -> int:
    """Change a pending job's urgency; returns the old one."""
    return h.rpc("job-manager.urgency", {"id": jobid, "urgency": value})["old_urgency"]


def list_jobs(h: Handle, states: int = ACTIVE, results: list[str] | None = None,
              name: str | None = None, max_entries: int = 0) -> list[dict]:
    """Job records, newest first."""
    body = {"states": states, "max": max_entries}
    if results:
        body["results"] = results
    if name:
        body["name"] = name
    return h.rpc("job-list.list", body)["jobs"]


# Flux's name for this verb; defined last in the module, after every use of the builtin.
list = list_jobs  # noqa: A001


def info(h: Handle, jobid: int | str) -> dict:
    """The job's record plus its jobspec, R and eventlog."""
    return h.rpc("job-list.info", {"id": jobid})


def id_parse(text: str) -> int:
    return ids.parse(text)


# -- asyncio ---------------------------------------------------------------------------------
async def submit_async(h: AsyncHandle, jobspec, urgency: int = 16, flags: int = 0) -> int:
    body = {"jobspec": _jobspec_dict(jobspec), "count": 1, "urgency": urgency, "flags": flags}
    return (await h.rpc("job-manager.submit", body))["ids"][0]


async def wait_async(h: AsyncHandle, jobid: int | str) -> JobResult:
    return _result((await h.rpc("job-manager.wait", {"ids": [jobid]}))["results"][0])


async def event_watch_async(h: AsyncHandle, jobid: int | str,
                            output: bool = False) -> AsyncIterator[dict]:
    async for body in h.rpc_stream("job-manager.events", {"id": jobid, "output": output}):
        yield body


async def cancel_async(h: AsyncHandle, jobid: int | str, note: str = "") -> None:
    await h.rpc("job-manager.cancel", {"ids": [jobid], "note": note})
