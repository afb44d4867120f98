"""An instance started as a job of another: what it learns from its parent and tells it.

A job's tasks have ``STRATO_URI`` (the instance that runs the job) and
``STRATO_JOB_ID`` in their environment, so ``strato start`` run as a job (what
``strato batch`` and ``strato alloc`` submit, or a user's own ``strato run
strato start ...``) knows it is a child. At start it asks its parent for the
job's R, which becomes its whole resource set (it can never use more: it has
nothing else to schedule), and for the parent's ``instance-level``; once it
listens, it posts its own URI to the job's eventlog as a ``memo`` event, which is
how ``strato uri JOBID`` and ``strato proxy JOBID`` find it. After that the child
needs nothing from its parent: it ends when its initial program does, and its
job ends with it.
"""

from __future__ import annotations

from dataclasses import dataclass

from strato.core import ids
from strato.core.errors import ConfigError, RPCError, StratoError


@dataclass
class Parent:
    """The instance this one runs in as a job."""

    uri: str
    jobid: int
    level: int  # the parent's instance-level
    R: dict  # what the parent granted the job


def parent_from_environment(env: dict[str, str]) -> Parent | None:
    """The parent named by a job's environment, with the job's R; None outside a job.

    A child's initial program keeps its job's ``STRATO_JOB_ID`` (scripts name
    files after it) beside the child's own ``STRATO_URI``; a ``strato start`` it
    runs directly finds no such job in the child and is a new instance, not a
    second child of the job. Raises ConfigError with one line if the parent
    cannot be asked or the job has no resources (it is not running).
    """
    uri, jobid_text = env.get("STRATO_URI"), env.get("STRATO_JOB_ID")
    if not uri or not jobid_text:
        return None
    try:
        jobid = ids.parse(jobid_text)
    except ValueError:
        raise ConfigError(f"STRATO_JOB_ID={jobid_text} is not a job id") from None
    from strato.handle import Handle

    try:
        with Handle(uri) as h:
            info_tag = h.send("job-list.info", {"id": jobid})
            level_tag = h.send("attr.get", {"name": "instance-level"})
            info = _answer(h, info_tag)
            level = _answer(h, level_tag)["value"]
    except TimeoutError:
        raise ConfigError(f"cannot start as job {jobid_text} of {uri}: it does not answer")\
            from None
    except RPCError as exc:
        if exc.errnum == "ENOENT":
            return None
        raise ConfigError(f"cannot start as job {jobid_text} of {uri}: {exc}") from None
    except StratoError as exc:
        raise ConfigError(f"cannot start as job {jobid_text} of {uri}: {exc}") from None
    if info.get("state") != "RUN" or not info.get("R"):
        raise ConfigError(f"cannot start as job {jobid_text} of {uri}: the job is"
                          f" {info.get('state', 'unknown')}, not running")
    return Parent(uri, jobid, int(level), info["R"])


def _answer(h, tag: int) -> dict:
    from strato.handle import _raise

    body, err, _ = h.recv(tag, timeout=30.0)
    if err is not None:
        _raise(body, err)
    return body


def post_uri(parent: Parent, uri: str) -> None:
    """Tell the parent where this instance listens (a ``memo`` event of the job)."""
    from strato.handle import Handle

    try:
        with Handle(parent.uri) as h:
            h.rpc("job-manager.memo", {"id": parent.jobid, "memo": {"uri": uri}})
    except StratoError as exc:
        raise ConfigError(f"cannot post this instance's URI to {parent.uri}: {exc}") \
            from None


def report_failure(parent: Parent, message: str) -> None:
    """This child cannot start: end its job in the parent with `message` as the
    exception's note, so the user sees the child's own error. Best effort: if the
    parent cannot be told, the job still fails by its exit code."""
    from strato.handle import Handle

    try:
        with Handle(parent.uri) as h:
            h.rpc("job-manager.cancel", {"ids": [parent.jobid], "type": "exec",
                                         "note": f"child instance: {message}"})
    except StratoError:
        pass


def initial_environment(env: dict[str, str], uri: str) -> dict[str, str]:
    """The initial program's environment: this instance's URI, the rest as given."""
    return dict(env, STRATO_URI=uri)
