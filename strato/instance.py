"""Instance verbs over a handle: ping, info (uptime, size, job counts), plugins.

Flux's ``flux ping``, ``flux uptime`` and strato's ``strato plugins list`` are
these functions and a print.
"""

from __future__ import annotations

import time

from strato.handle import Handle


def ping(h: Handle, seq: int = 0) -> float:
    """Send one request to the broker and return the round trip in seconds."""
    t0 = time.perf_counter()
    h.rpc("broker.ping", {"seq": seq})
    return time.perf_counter() - t0


def info(h: Handle) -> dict:
    """The broker's facts: ``uri``, ``rundir``, ``statedir``, ``pid``, ``size``,
    ``nodes``, ``t_start``, ``uptime`` (seconds), ``jobs`` (all it knows) and
    ``active``."""
    return h.rpc("broker.info")


def plugins(h: Handle) -> list[dict]:
    """The loaded plugins in load order: ``{"name", "module", "hooks"}`` each."""
    return h.rpc("plugins.list")["plugins"]
