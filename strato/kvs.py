"""KVS access over a handle: get, put (atomic multi-key commit), ls, watch."""

from __future__ import annotations

from collections.abc import Iterator

from strato.handle import Handle


def get(h: Handle, key: str, namespace: str = "primary") -> object:
    return h.rpc("kvs.get", {"key": key, "namespace": namespace})["value"]


def put(h: Handle, key: str, value: object, namespace: str = "primary") -> None:
    commit(h, [("put", key, value)], namespace)


def commit(h: Handle, ops: list, namespace: str = "primary") -> None:
    """Apply ``[(op, key, value), ...]`` atomically (op: put, append, unlink)."""
    h.rpc("kvs.commit", {"ops": [list(o) for o in ops], "namespace": namespace})


def ls(h: Handle, key: str = ".", namespace: str = "primary") -> dict[str, bool]:
    """Entries of a directory: name -> True if it is a directory."""
    return h.rpc("kvs.ls", {"key": key, "namespace": namespace})["entries"]


def watch(h: Handle, key: str, namespace: str = "primary") -> Iterator[dict]:
    """Yield ``{"op", "value"}`` for the current value and every change."""
    yield from h.rpc_stream("kvs.watch", {"key": key, "namespace": namespace})
