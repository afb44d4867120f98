"""Module verbs over a handle, named as Flux's ``flux module``: list the services of
an instance, and load, reload or remove its scheduler while jobs run."""

from __future__ import annotations

from strato.handle import Handle


def list_modules(h: Handle) -> dict:
    """``{modules: [{name, module, state, pending, memory, where}], broker_memory}``;
    memory is in KiB where known (a module in its own process), else None."""
    return h.rpc("module.list")


def load(h: Handle, name: str, args: list[str] | None = None) -> dict:
    """Load (or switch to) a scheduler by name, e.g. ``sched-graph``, with KEY=VAL
    settings for its config table; returns ``{module, seconds}``. The running
    jobs keep their resources and the queue moves to the new scheduler. RPCError
    (the old scheduler keeps running) if it cannot be built."""
    return h.rpc("module.load", {"name": name, "args": list(args or [])})


def reload(h: Handle, name: str = "sched", args: list[str] | None = None) -> dict:
    """Replace a module with a fresh one of the same kind (see `load`)."""
    return h.rpc("module.reload", {"name": name, "args": list(args or [])})


def remove(h: Handle, name: str = "sched") -> None:
    """Unload a module (only the scheduler can be): pending jobs wait for the next."""
    h.rpc("module.remove", {"name": name})
