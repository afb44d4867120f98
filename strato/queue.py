"""Queue verbs over a handle, named after Flux's ``flux queue``: status, start,
stop, enable, disable, drain, idle.

`queue` names one queue; None means all of them (or the single anonymous queue
of an instance configured without named queues). An unknown queue raises
`strato.core.errors.RPCError` ``queue 'NAME' does not exist``.
"""

from __future__ import annotations

from strato.core.errors import RPCError
from strato.handle import Handle


def status(h: Handle, queue: str | None = None) -> dict:
    """The queues and whether they take submissions and schedule.

    A dict: ``queues``, a list with per queue ``name``, ``enabled``,
    ``disable_reason``, ``started``, ``stop_reason``, ``requires``,
    ``duration_default``, ``duration_limit``, ``max`` (size limits) and ``counts``
    (active jobs by state name); ``default``, the default queue's name; and
    ``inactive``, how many jobs have ended. With `queue`, ``queues`` holds that
    queue alone.
    """
    st = h.rpc("queue.status")
    if queue:
        st["queues"] = [q for q in st["queues"] if q["name"] == queue]
        if not st["queues"]:
            raise RPCError(f"queue '{queue}' does not exist", "ENOENT")
    return st


def _control(h: Handle, action: str, queue: str | None, reason: str = "") -> None:
    h.rpc("queue.control", {"action": action, "queue": queue, "reason": reason})


def start(h: Handle, queue: str | None = None) -> None:
    """Start scheduling the queue's jobs."""
    _control(h, "start", queue)


def stop(h: Handle, queue: str | None = None, reason: str = "") -> None:
    """Stop scheduling (submissions are still taken; running jobs go on)."""
    _control(h, "stop", queue, reason)


def enable(h: Handle, queue: str | None = None) -> None:
    """Take submissions again."""
    _control(h, "enable", queue)


def disable(h: Handle, queue: str | None = None, reason: str = "") -> None:
    """Refuse new submissions; `reason` is what a submitter is told."""
    _control(h, "disable", queue, reason)


def drain(h: Handle, queue: str | None = None) -> None:
    """Wait until the queue is empty: no job of it is active (Flux's ``queue drain``)."""
    h.rpc("queue.wait", {"what": "empty", "queue": queue})


def idle(h: Handle, queue: str | None = None) -> None:
    """Wait until no job of the queue is running (pending ones may remain)."""
    h.rpc("queue.wait", {"what": "idle", "queue": queue})
