"""Unlinking a KVS subtree (what a purge does): gone from memory and from the
statedir, nothing beside it touched, and no empty directories left behind."""

from __future__ import annotations

import asyncio
import sqlite3

from strato.core.kvs import KVS


def _stored(path) -> list[str]:
    db = sqlite3.connect(path)
    try:
        return sorted(k for (k,) in db.execute("SELECT key FROM kvs UNION SELECT key FROM log"))
    finally:
        db.close()


def test_unlink_removes_the_subtree_only_in_memory_and_on_disk(tmp_path):
    path = tmp_path / "content.sqlite"

    async def run() -> KVS:
        kvs = KVS(path)
        for key in ("job.a.b.eventlog", "job.a.b.R", "job.a.b-x", "job.a.b+y", "job.a.bb",
                    "job.a.c.eventlog"):
            kvs.put(key, [1])
        kvs.flush()
        kvs.append("job.a.b.eventlog", [2])  # appended in the turn it goes
        kvs.unlink("job.a.b", prune=True)
        kvs.flush()
        return kvs

    kvs = asyncio.run(run())
    assert _stored(path) == ["job.a.b+y", "job.a.b-x", "job.a.bb", "job.a.c.eventlog"]
    assert kvs.get("job.a.b") is None and kvs.get("job.a.c.eventlog") == [1]
    kvs.close()
    assert KVS(path).get("job.a.b.R") is None  # a restart does not bring it back


def test_prune_removes_directories_left_empty(tmp_path):
    async def run() -> KVS:
        kvs = KVS(tmp_path / "content.sqlite")
        kvs.put("job.a.b.c.eventlog", [])
        kvs.put("job.a.x", 1)
        kvs.put("other.d.e", 2)
        kvs.unlink("job.a.b.c", prune=True)
        kvs.unlink("other.d.e")  # without prune, as before: the directory stays
        return kvs

    kvs = asyncio.run(run())
    assert kvs.lookup("job") == {"a": {"x": 1}}
    assert kvs.lookup("other") == {"d": {}}
    asyncio.run(_unlink(kvs, "job.a.x"))
    assert kvs.get("job") is None


async def _unlink(kvs: KVS, key: str) -> None:
    kvs.unlink(key, prune=True)
