"""KVS: namespaces, atomic commits, watches, SQLite persistence."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from strato.core import proto
from strato.core.errors import RPCError, StateError
from strato.core.kvs import KVS, STATE_VERSION, KvsDir, SealedDir


def test_put_get_dirs_and_namespaces():
    k = KVS()
    k.put("a.b.c", 1)
    k.put("a.d", {"x": 1})
    assert k.get("a.b.c") == 1
    assert isinstance(k.lookup("a.b"), KvsDir)
    assert k.get("a.d") == {"x": 1}
    k.put("a.b", 5)  # a value replaces a directory
    assert k.get("a.b") == 5
    k.put("x", 1, ns="other")
    assert k.get("x") is None and k.get("x", ns="other") == 1
    with pytest.raises(RPCError, match="invalid key"):
        k.put("a..b", 1)
    with pytest.raises(RPCError, match="namespace"):
        k.lookup("x", ns="missing")


def test_commit_is_all_or_nothing():
    k = KVS()
    k.put("log", [1])
    k.put("scalar", 3)
    with pytest.raises(RPCError, match="cannot append"):
        k.commit([["put", "new", 1], ["append", "scalar", 2]])
    assert k.get("new") is None
    k.commit([["put", "new", 1], ["append", "log", 2], ["unlink", "scalar", None]])
    assert k.get("new") == 1 and k.get("log") == [1, 2] and k.get("scalar") is None


def test_watch_sees_puts_and_appends_until_cancelled():
    k = KVS()
    seen = []
    cancel = k.watch("w", lambda op, v: seen.append((op, list(v))))
    k.put("w", [])
    k.append("w", [1, 2])
    cancel()
    k.put("w", 9)
    assert seen == [("put", []), ("append", [1, 2])]


def test_persistence_batches_one_transaction_per_turn(tmp_path):
    path = tmp_path / "content.sqlite"

    async def work():
        k = KVS(path)
        for i in range(100):
            k.put(f"job.{i}.eventlog", [{"name": "submit"}])
            k.append(f"job.{i}.eventlog", [{"name": "clean"}])
        await asyncio.sleep(0)
        commits = k.commits
        k.close()
        return commits

    assert asyncio.run(work()) == 1
    k2 = KVS(path)
    assert k2.get("job.42.eventlog") == [{"name": "submit"}, {"name": "clean"}]
    assert len(sqlite3.connect(path).execute("SELECT * FROM kvs").fetchall()) == 100


def test_corrupt_database_is_a_state_error(tmp_path):
    path = tmp_path / "content.sqlite"
    path.write_bytes(b"garbage" * 1000)
    with pytest.raises(StateError, match="cannot use state database"):
        KVS(path)


def _reload(path):
    k = KVS(path)
    k.close()
    return k


def test_persistence_follows_dirs_replaced_by_values_and_back(tmp_path):
    path = tmp_path / "c.sqlite"

    async def turn(k, fn):
        fn(k)
        await asyncio.sleep(0)

    async def work():
        k = KVS(path)
        await turn(k, lambda k: k.put("a.b", 1))
        await turn(k, lambda k: k.put("a", 2))          # a directory becomes a value
        await turn(k, lambda k: k.put("v", 1))
        await turn(k, lambda k: k.put("v.w", 3))        # a value becomes a directory
        await turn(k, lambda k: (k.put("x.y", 1), k.put("x", 5)))  # both in one turn
        await turn(k, lambda k: k.put("n", None))
        await turn(k, lambda k: k.unlink("n"))
        await turn(k, lambda k: k.put("a_b.c", 1))
        await turn(k, lambda k: k.unlink("axb"))        # no LIKE wildcards
        k.close()

    asyncio.run(work())
    k = _reload(path)
    assert k.get("a") == 2 and k.get("v.w") == 3 and k.get("x") == 5
    assert "n" not in k.lookup(".") and k.get("a_b.c") == 1


def test_appends_are_stored_incrementally(tmp_path):
    path = tmp_path / "c.sqlite"

    async def work():
        k = KVS(path)
        k.put("log", [0])
        for i in range(1, 50):
            await asyncio.sleep(0)
            k.append("log", [i])
        await asyncio.sleep(0)
        rows = sqlite3.connect(path).execute("SELECT COUNT(*) FROM log").fetchone()[0]
        k.put("log", ["reset"])
        await asyncio.sleep(0)
        k.append("log", ["after"])
        k.close()
        return rows

    assert asyncio.run(work()) == 49
    assert _reload(path).get("log") == ["reset", "after"]


def test_commit_checks_each_operation_against_the_ones_before():
    k = KVS()
    with pytest.raises(RPCError, match="cannot append"):
        k.commit([["put", "k", "str"], ["append", "k", "x"]])
    assert k.get("k") is None
    k.commit([["put", "k", []], ["append", "k", "x"], ["unlink", "j", None]])
    assert k.get("k") == ["x"]
    with pytest.raises(RPCError, match="keys must be strings"):
        k.commit([["put", 3, 1]])


def test_a_failed_flush_keeps_its_changes_for_the_next(tmp_path):
    """A commit that fails (here: another process holds the write lock past the
    timeout) is rolled back and its changes are written by the next flush; before,
    they were dropped and the open transaction made every later flush fail too."""
    path = tmp_path / "content.sqlite"

    async def work():
        kvs = KVS(path)
        kvs._db.execute("PRAGMA busy_timeout = 50")
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        kvs.put("a.b", 1)
        kvs.append("log", [1, 2])
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            kvs.flush()
        other.execute("ROLLBACK")
        other.close()
        kvs.append("log", [3])
        kvs.put("c", "x")
        kvs.flush()
        kvs.close()

    asyncio.run(work())
    again = KVS(path)
    assert (again.get("a.b"), again.get("log"), again.get("c")) == (1, [1, 2, 3], "x")
    again.close()


def test_a_sealed_directory_is_read_only_kept_whole_and_read_lazily(tmp_path):
    """Sealing keeps a directory's keys whole (its eventlog one value, apart from the
    live rows) with the owner's record; a restart reads the record only, and the
    keys the first time something looks inside."""
    path = tmp_path / "c.sqlite"

    async def work():
        k = KVS(path)
        k.put("job.1.eventlog", [{"name": "submit"}])
        k.put("job.1.guest.output", ["a"])
        k.put("job.2.eventlog", [{"name": "submit"}])
        await asyncio.sleep(0)
        k.append("job.1.eventlog", [{"name": "clean"}])
        k.append("job.1.guest.output", ["b"])
        assert k.seal("job.1", ["the record"])
        assert not k.seal("job.9", "no such directory")
        await asyncio.sleep(0)
        for write in (lambda: k.put("job.1.x", 1), lambda: k.append("job.1.eventlog", [3]),
                      lambda: k.unlink("job.1.eventlog"),
                      lambda: k.commit([["put", "ok", 1], ["put", "job.1.guest.y", 2]])):
            with pytest.raises(RPCError, match="job.1 is sealed"):
                write()
        assert k.get("ok") is None  # the commit was refused whole
        k.close()

    asyncio.run(work())
    db = sqlite3.connect(path)
    assert db.execute("SELECT key FROM kvs ORDER BY key").fetchall() == [("job.2.eventlog",)]
    assert db.execute("SELECT COUNT(*) FROM log").fetchone()[0] == 0
    (content,) = db.execute("SELECT content FROM cold WHERE key = 'job.1'").fetchone()
    assert proto.decode(content) == {"eventlog": [{"name": "submit"}, {"name": "clean"}],
                                     "guest.output": ["a", "b"]}
    assert db.execute("PRAGMA user_version").fetchone()[0] == STATE_VERSION
    k = KVS(path)
    placeholder = k.lookup("job")["1"]
    assert isinstance(placeholder, SealedDir) and placeholder.record == ["the record"]
    assert k.get("job.1.eventlog") == [{"name": "submit"}, {"name": "clean"}]
    assert k.get("job.1.guest.output") == ["a", "b"]
    assert isinstance(k.lookup("job.1"), KvsDir)
    with pytest.raises(RPCError, match="sealed"):
        k.put("job.1.z", 1)
    k.close()


def test_a_seal_record_made_by_a_function_is_made_only_for_a_statedir(tmp_path):
    """The record may come from a function: with a statedir it is called at once
    (what it returns is the record a restart reads), without one never."""
    calls = []

    def record():
        calls.append(1)
        return ["made", len(calls)]

    k = KVS()
    k.put("job.1.eventlog", [])
    assert k.seal("job.1", record) and calls == []
    path = tmp_path / "c.sqlite"

    async def work():
        k = KVS(path)
        k.put("job.1.eventlog", [])
        assert k.seal("job.1", record) and calls == [1]
        calls.append(2)  # later changes are not the record's
        k.close()

    asyncio.run(work())
    assert KVS(path).lookup("job")["1"].record == ["made", 1]


def test_a_sealed_directory_can_be_removed_whole(tmp_path):
    """Removing a sealed directory (a purge) removes its record and keys from the
    statedir, also when it happens in the turn it was sealed, and when it was never
    read after a restart."""
    path = tmp_path / "c.sqlite"

    async def work():
        k = KVS(path)
        for i in (1, 2, 3):
            k.put(f"job.{i}.eventlog", [i])
        await asyncio.sleep(0)
        for i in (1, 2, 3):
            k.seal(f"job.{i}", i)
        k.unlink("job.1", prune=True)  # the same turn
        await asyncio.sleep(0)
        k.close()
        k = KVS(path)
        k.unlink("job.2")  # never read since the restart
        await asyncio.sleep(0)
        k.close()

    asyncio.run(work())
    k = KVS(path)
    assert sorted(k.lookup("job")) == ["3"] and k.get("job.3.eventlog") == [3]
    db = sqlite3.connect(path)
    assert db.execute("SELECT key FROM sealed").fetchall() == [("job.3",)]
    assert db.execute("SELECT key FROM cold").fetchall() == [("job.3",)]


def test_a_sealed_directory_too_large_to_keep_whole_keeps_its_live_rows(tmp_path,
                                                                         monkeypatch):
    """A sealed directory over COLD_MAX (a job that printed gigabytes) stays in the
    live tables: read-only in memory, read whole at a restart, nothing lost."""
    import strato.core.kvs as kvs_module

    monkeypatch.setattr(kvs_module, "COLD_MAX", 100)
    path = tmp_path / "c.sqlite"

    async def work():
        k = KVS(path)
        k.put("job.1.out", ["x" * 200])
        k.put("job.2.out", ["small"])
        await asyncio.sleep(0)
        k.append("job.1.out", ["y"])
        k.seal("job.1", "big")
        k.seal("job.2", "small")
        k.close()

    asyncio.run(work())
    db = sqlite3.connect(path)
    assert db.execute("SELECT key FROM sealed").fetchall() == [("job.2",)]
    k = KVS(path)
    assert k.get("job.1.out") == ["x" * 200, "y"] and k.get("job.2.out") == ["small"]


def test_remembered_directories_follow_every_change_of_the_tree():
    """Writes and reads find a key's directory from memory (`_writable_parent`):
    a directory removed, replaced by a value, or sealed since must not be written
    through; the next write walks the tree again."""
    k = KVS()
    k.put("job.a.eventlog", [1])
    k.append("job.a.eventlog", [2])  # now remembered: job.a
    k.unlink("job.a")
    k.append("job.a.eventlog", [3])  # a new job.a, not the removed one
    k.put("job.a.R", 1)  # remembered again
    assert k.get("job.a.eventlog") == [3]
    k.put("job.a", 7)  # the directory replaced by a value
    assert k.get("job.a.eventlog") is None
    k.append("job.a.eventlog", [4])  # the value replaced by a directory again
    assert k.get("job.a.eventlog") == [4] and isinstance(k.lookup("job.a"), KvsDir)
    k.put("job.b.R", {"x": 1})
    k.put("job", 1)  # a directory above both replaced by a value
    with pytest.raises(KeyError):
        k.lookup("job.b.R")
    k.put("job.c.jobspec", {})
    k.put("job.c.eventlog", [])
    k.append("job.c.guest.output", [0])  # a directory below it, remembered too
    assert k.seal("job.c", {"id": 3})
    with pytest.raises(RPCError, match="read-only|sealed"):
        k.append("job.c.guest.output", [1])
    with pytest.raises(RPCError, match="read-only|sealed"):
        k.append("job.c.eventlog", [5])
    with pytest.raises(RPCError, match="read-only|sealed"):
        k.commit([["append", "job.c.eventlog", 6]])
    assert k.get("job.c.eventlog") == []
    with pytest.raises(RPCError, match="invalid key"):
        k.put(".eventlog", 1)  # the root is remembered; the key is still malformed
    k.put("top", 1)
    assert k.get("top") == 1


def test_directories_above_a_key_are_remembered_and_follow_the_tree_too():
    """A key whose own directory is not remembered is found from the nearest one
    above it (a new job's directory beside the previous one's): a directory sealed,
    removed or replaced by a value between them must still be seen."""
    k = KVS()
    k.put("job.a.b.c.x", 1)  # job, job.a, job.a.b and job.a.b.c remembered
    assert k.seal("job.a.b", "rec")
    with pytest.raises(RPCError, match=r"job\.a\.b is sealed"):
        k.put("job.a.b.d.y", 2)  # from job.a, through the sealed job.a.b
    with pytest.raises(RPCError, match=r"job\.a\.b is sealed"):
        k.commit([["append", "job.a.b.c.log", [1]]])
    k.put("job.a.e.z", 3)  # beside it: writable
    k.unlink("job.a")
    k.put("job.a.b.c.x", 4)  # new directories, not the removed (sealed) ones
    assert k.get("job.a.b.c.x") == 4 and type(k.lookup("job.a.b")) is KvsDir
    k.put("job.a.b", 5)  # a value in the way of job.a.b.c
    k.append("job.a.b.c.log", [6])  # becomes a directory again
    assert k.get("job.a.b.c.log") == [6] and k.get("job.a.b.c.x") is None
    k.put("job", 7)
    assert k.get("job.a.e.z") is None and k.lookup("job") == 7


@pytest.mark.parametrize("damage, why", [
    (b"\xc1garbage", "MessagePack data is malformed"),
    (proto.encode(["not", "a", "map"]), "a list where a map of its keys belongs"),
    (proto.encode({"eventlog": 1, "eventlog.x": 2}), "object does not support item"),
    (None, "it is missing"),
])
def test_a_damaged_sealed_directory_fails_alone(tmp_path, caplog, damage, why):
    """A sealed directory whose row in the statedir is damaged (or gone): looking
    inside it is one EIO error naming the job and the statedir, each time, logged
    once; the other directories, and the record of the damaged one, read as before.
    A damaged record leaves its directory's record unknown (None), nothing else."""
    path = tmp_path / "c.sqlite"
    jobs = ["job.0000.0000.eb00.0000", "job.0000.0002.6100.0000"]

    async def work():
        k = KVS(path)
        for key in jobs:
            k.put(f"{key}.eventlog", [{"name": "submit"}])
            k.seal(key, ["record of", key])
        k.close()

    asyncio.run(work())
    db = sqlite3.connect(path)
    if damage is None:
        db.execute("DELETE FROM cold WHERE key = ?", (jobs[0],))
    else:
        db.execute("UPDATE cold SET content = ? WHERE key = ?", (damage, jobs[0]))
    db.execute("UPDATE sealed SET record = X'c1' WHERE key = ?", (jobs[1],))
    db.commit()
    k = KVS(path)
    assert k.lookup("job.0000.0000.eb00")["0000"].record == ["record of", jobs[0]]
    assert k.lookup("job.0000.0002.6100")["0000"].record is None
    for _ in range(2):
        with pytest.raises(RPCError) as err:
            k.get(f"{jobs[0]}.eventlog")
        assert err.value.errnum == "EIO"
        assert str(err.value).startswith(f"job ƒ71Q6E3: its KVS directory in statedir "
                                         f"{tmp_path} is corrupt (")
        assert why in str(err.value)
    assert k.get(f"{jobs[1]}.eventlog") == [{"name": "submit"}]
    assert [r.getMessage() for r in caplog.records] == [str(err.value)]
    k.close()
