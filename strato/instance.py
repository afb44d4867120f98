"""Instance verbs over a handle: ping, info (uptime, size, job counts), plugins,
attributes, shutdown; and `resolve`, which finds an instance in the hierarchy.

Flux's ``flux ping``, ``flux uptime``, ``flux getattr``, ``flux uri`` and strato's
``strato plugins list`` are these functions and a print.
"""

from __future__ import annotations

import time

from strato.core.errors import StratoError
from strato.handle import Handle, resolve_uri


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


def attr_get(h: Handle, name: str) -> object:
    """One broker attribute (``rank``, ``size``, ``instance-level``, ``parent-uri``,
    ``jobid``, ``local-uri``, ...); RPCError for an unknown one."""
    return h.rpc("attr.get", {"name": name})["value"]


def attributes(h: Handle) -> dict:
    """Every broker attribute and its value (``strato lsattr -v``)."""
    return h.rpc("attr.list")["attrs"]


def shutdown(h: Handle, exit_code: int = 0) -> None:
    """Stop the instance: its initial program is ended (SIGTERM), or, if it has
    none, it exits with `exit_code`; its jobs end with it."""
    h.rpc("broker.shutdown", {"exit": exit_code})


def resolve(target: str | None = None, wait: bool = False, uri: str | None = None) -> str:
    """The URI of an instance named by `target`, looked up from the instance at `uri`
    (default: ``$STRATO_URI``).

    `target` is a URI (``local://...``, returned as it is), a job id, or a path of
    job ids ``ID/ID2/...`` (each a child instance of the one before; a leading
    ``/`` starts at the root instance), as Flux's ``flux uri`` takes them. With
    `wait`, wait for each instance on the path to start. StratoError (one line)
    if a step is not an instance.
    """
    from strato import job as jobapi

    here = resolve_uri(uri)
    if not target:
        return here
    if "://" in target:
        return target
    if target.startswith("/"):
        while True:  # up to the root
            with Handle(here) as h:
                up = attr_get(h, "parent-uri")
            if not up:
                break
            here = up
    for step in (s for s in target.split("/") if s):
        try:
            jobid = jobapi.id_parse(step)
        except ValueError:
            raise StratoError(f"{step}: not a job id or URI") from None
        with Handle(here) as h:
            here = jobapi.uri(h, jobid, wait=wait)
    return here
