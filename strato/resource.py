"""Resource verbs over a handle, named after Flux's ``flux resource``: status,
info, R, drain, undrain.

Targets are ranks as an idset (``0-3,7``) or hostnames as a hostlist
(``node[0-3]``). Errors from the instance (bad targets, undraining a rank that is
not drained) raise `strato.core.errors.RPCError` with a one-line message.
"""

from __future__ import annotations

from strato.handle import Handle

STATES = ("free", "allocated", "down")


def status(h: Handle) -> dict:
    """What the instance's resources are doing.

    A dict with one row per state in `STATES` (``{"nnodes", "ncores", "ngpus",
    "nodelist", "ranks"}``) and ``drained``: rank (as text) -> ``{"timestamp",
    "reason"}``.
    """
    return h.rpc("resource.status")


def info(h: Handle) -> dict[str, int]:
    """How much the instance has in all: ``{"nodes", "cores", "gpus"}``."""
    st = status(h)
    return {"nodes": len(set().union(*(set(st[s]["ranks"]) for s in STATES))),
            "cores": sum(st[s]["ncores"] for s in STATES),
            "gpus": sum(st[s]["ngpus"] for s in STATES)}


def R(h: Handle) -> dict:  # noqa: N802 - Flux's name
    """The instance's R (RFC 20): every resource it owns, busy or not."""
    return h.rpc("resource.R")["R"]


def drain(h: Handle, targets: str, reason: str = "") -> str:
    """Drain `targets` so the scheduler gives them no new jobs (running ones go on).

    Returns the drained ranks as an idset. Raises RPCError for unknown targets.
    """
    return h.rpc("resource.drain", {"targets": targets, "reason": reason})["ranks"]


def undrain(h: Handle, targets: str) -> str:
    """Return drained `targets` to service; returns their ranks as an idset.

    Raises RPCError for unknown targets or a rank that is not drained.
    """
    return h.rpc("resource.undrain", {"targets": targets})["ranks"]
