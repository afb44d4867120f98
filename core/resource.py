"""The instance's resources: R version 1 (RFC 20), built from config or discovered.

Config form (any number of entries; ranks are given to hosts in order)::

    [[resource.config]]
    hosts = "node[0-1023]"
    cores = "0-31"
    gpus = "0-3"
    properties = ["amd64"]

Without config the machine is discovered: the cores this process may run on, and
the GPUs named by CUDA_VISIBLE_DEVICES or present as /dev/nvidiaN.
"""

from __future__ import annotations

import functools
import glob
import os
import socket
from dataclasses import dataclass, field

from strato.core.errors import ConfigError
from strato.jobspec.hostlist import compress_hostlist, expand_hostlist
from strato.jobspec.idset import decode_idset, encode_idset, encode_idset_cached


@dataclass
class Node:
    """One node (broker rank) of R."""

    rank: int
    hostname: str
    cores: list[int]
    gpus: list[int] = field(default_factory=list)
    properties: list[str] = field(default_factory=list)


def discover() -> list[Node]:
    cores = sorted(os.sched_getaffinity(0))
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        gpus = list(range(len([g for g in visible.split(",") if g.strip()])))
    else:
        gpus = sorted(int(p[len("/dev/nvidia"):]) for p in glob.glob("/dev/nvidia[0-9]*"))
    return [Node(0, socket.gethostname(), cores, gpus)]


def from_config(entries: object) -> list[Node]:
    """Nodes from ``[[resource.config]]`` entries; ConfigError names a bad entry."""
    if not isinstance(entries, list) or not entries:
        raise ConfigError("resource.config must be a non-empty list of tables")
    nodes: list[Node] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        where = f"resource.config[{i}]"
        if not isinstance(entry, dict) or "hosts" not in entry:
            raise ConfigError(f"{where}: missing 'hosts'")
        try:
            hosts = expand_hostlist(str(entry["hosts"]))
            cores = decode_idset(str(entry.get("cores", "0")))
            gpus = decode_idset(str(entry.get("gpus", ""))) if entry.get("gpus") else []
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        props = entry.get("properties", [])
        if not isinstance(props, list) or not all(isinstance(p, str) for p in props):
            raise ConfigError(f"{where}: properties must be a list of strings")
        if not cores:
            raise ConfigError(f"{where}: no cores")
        for host in hosts:
            if host in seen:
                raise ConfigError(f"{where}: host {host} appears twice")
            seen.add(host)
            nodes.append(Node(len(nodes), host, cores, gpus, list(props)))
    return nodes


@functools.lru_cache(maxsize=256)
def _nodelist(hosts: tuple[str, ...]) -> str:
    """`compress_hostlist`, remembered: the R of every job on a node names it."""
    return compress_hostlist(hosts)


def make_R(parts: list[tuple[int, str, list[int], list[int]]], starttime: float = 0.0,
           expiration: float = 0.0, properties: dict[str, list[int]] | None = None) -> dict:
    """Build R version 1 from ``(rank, hostname, cores, gpus)`` in rank order.

    Consecutive ranks with the same cores and gpus share one R_lite entry. Its
    strings are remembered (`encode_idset_cached`): a scheduler makes the same
    ones for job after job.
    """
    rlite: list[dict] = []
    last_children = None
    ranks: list[int] = []
    for rank, _host, cores, gpus in parts:
        children = {"core": encode_idset_cached(tuple(cores))}
        if gpus:
            children["gpu"] = encode_idset_cached(tuple(gpus))
        if children != last_children:
            if ranks:
                rlite.append({"rank": encode_idset_cached(tuple(ranks)),
                              "children": last_children})
            ranks = []
            last_children = children
        ranks.append(rank)
    if ranks:
        rlite.append({"rank": encode_idset_cached(tuple(ranks)),
                      "children": last_children})
    ex = {"R_lite": rlite, "nodelist": [_nodelist(tuple([p[1] for p in parts]))],
          "starttime": starttime, "expiration": expiration}
    if properties:
        ex["properties"] = {k: encode_idset(v) for k, v in properties.items() if v}
    return {"version": 1, "execution": ex}


def nodes_from_R(R: dict) -> list[Node]:
    """The nodes of a granted R (a child instance's job), renumbered from rank 0.

    The parent's ranks are dropped and its hostnames kept: a child of size 1 runs
    every node it was granted, in the parent's rank order. ValueError if R is
    not R version 1.
    """
    try:
        ex = R["execution"]
        hosts = [h for part in ex.get("nodelist", []) for h in expand_hostlist(part)]
        entries = []
        for entry in ex["R_lite"]:
            children = entry["children"]
            cores = decode_idset(children.get("core", ""))
            gpus = decode_idset(children["gpu"]) if children.get("gpu") else []
            entries.extend((rank, cores, gpus) for rank in decode_idset(entry["rank"]))
        props: dict[int, list[str]] = {}
        for name, ranks in (ex.get("properties") or {}).items():
            for rank in decode_idset(ranks):
                props.setdefault(rank, []).append(name)
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"R is not R version 1 (no {exc})") from None
    entries.sort()
    if len(hosts) != len(entries):
        hosts = [f"{socket.gethostname()}-{rank}" for rank, _, _ in entries]
    return [Node(i, host, cores, gpus, props.get(rank, []))
            for i, ((rank, cores, gpus), host) in enumerate(zip(entries, hosts, strict=True))]


def instance_R(config: dict, granted: dict | None = None,
               hosts: list[str] | None = None) -> tuple[list[Node], dict]:
    """The nodes and R of a new instance: those `granted` by a parent (the R of
    the job it runs as), else from its config, else the machine: one node per
    broker of a multi-broker instance (its `hosts`, in rank order), each with
    the cores and gpus discovered here."""
    rconf = config.get("resource", {})
    if not isinstance(rconf, dict):
        raise ConfigError("[resource] must be a table")
    if granted is not None:
        if rconf:
            raise ConfigError("[resource]: an instance started as a job uses the resources"
                              " its job was granted; remove the [resource] table")
        try:
            nodes = nodes_from_R(granted)
        except ValueError as exc:
            raise ConfigError(f"the parent granted an invalid R: {exc}") from None
    else:
        nodes = from_config(rconf["config"]) if "config" in rconf else discover()
        if hosts is not None and "config" not in rconf:
            here = nodes[0]
            nodes = [Node(rank, host, here.cores, here.gpus) for rank, host in enumerate(hosts)]
    props: dict[str, list[int]] = {}
    for n in nodes:
        for p in n.properties:
            props.setdefault(p, []).append(n.rank)
    ex = (granted or {}).get("execution", {})
    R = make_R([(n.rank, n.hostname, n.cores, n.gpus) for n in nodes], properties=props,
               starttime=ex.get("starttime", 0.0), expiration=ex.get("expiration", 0.0))
    return nodes, R


def status_rows(usage) -> dict:
    """``resource list`` rows from ``(node, drained, used_cores, used_gpus)`` per node.

    A node appears under ``free`` (or ``down`` if drained) with what it has left
    and under ``allocated`` with what is in use, so a partly used node is in both.
    """
    rows = {k: {"ranks": [], "hosts": [], "ncores": 0, "ngpus": 0}
            for k in ("free", "allocated", "down")}
    for node, drained, used_c, used_g in usage:
        parts = (("down" if drained else "free", len(node.cores) - used_c,
                  len(node.gpus) - used_g), ("allocated", used_c, used_g))
        for state, nc, ng in parts:
            if nc or ng:
                row = rows[state]
                row["ranks"].append(node.rank)
                row["hosts"].append(node.hostname)
                row["ncores"] += nc
                row["ngpus"] += ng
    for row in rows.values():
        row["nnodes"] = len(row["ranks"])
        row["nodelist"] = compress_hostlist(row.pop("hosts"))
    return rows
