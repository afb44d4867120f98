"""Task maps (RFC 34): which node each task of a job runs on.

Why this exists: ``--taskmap`` picks how task ranks are laid over a job's nodes, as
in Flux: ``block`` (the default: node 0 gets the first tasks, node 1 the next...),
``cyclic[:N]`` (N tasks at a time, round robin over the nodes) and
``manual:TASKMAP`` (an RFC 34 map: a JSON list of ``[nodeid, nnodes, ppn,
repeat]`` blocks). The job shell uses :func:`order_tasks` to number the tasks it
has laid out per node.
"""

from __future__ import annotations

import json

__all__ = ["decode_taskmap", "order_tasks"]


def decode_taskmap(text: str) -> list[int]:
    """The node of each task rank from an RFC 34 JSON taskmap; ValueError if malformed."""
    try:
        blocks = json.loads(text)
    except ValueError:
        raise ValueError(f"not JSON: {text!r}") from None
    if not isinstance(blocks, list) or not blocks:
        raise ValueError("a taskmap is a non-empty list of [nodeid, nnodes, ppn, repeat]")
    nodes: list[int] = []
    for block in blocks:
        if (not isinstance(block, list) or len(block) != 4
                or not all(type(n) is int for n in block)
                or block[0] < 0 or min(block[1:]) < 1):
            raise ValueError(f"invalid block {block!r} (want [nodeid>=0, nnodes, ppn,"
                             " repeat], counts >= 1)")
        nodeid, nnodes, ppn, repeat = block
        for _ in range(repeat):
            for node in range(nodeid, nodeid + nnodes):
                nodes.extend([node] * ppn)
    return nodes


def order_tasks(per_node: list[int], entry: dict | None) -> list[int]:
    """The node index of each task rank, given how many tasks each node runs.

    ``entry`` is the ``taskmap`` shell option (``{"scheme", "value"}``) or None for
    block. Raises ValueError when a manual map does not fit the tasks per node.
    """
    scheme = (entry or {}).get("scheme", "block")
    value = str((entry or {}).get("value", ""))
    if scheme == "block":
        return [i for i, n in enumerate(per_node) for _ in range(n)]
    if scheme == "cyclic":
        stride = int(value) if value else 1
        left = list(per_node)
        out: list[int] = []
        while any(left):
            for i, n in enumerate(left):
                take = min(stride, n)
                out.extend([i] * take)
                left[i] -= take
        return out
    if scheme == "manual":
        nodes = decode_taskmap(value)
        counts = [nodes.count(i) for i in range(len(per_node))]
        if len(nodes) != sum(per_node) or counts != list(per_node):
            raise ValueError(f"taskmap {value} does not match the tasks per node {per_node}")
        return nodes
    raise ValueError(f"unknown taskmap scheme {scheme!r}")
