"""Key-value store with namespaces, atomic multi-key commits and watches.

Keys are dotted paths (``job.0000.0004.b200.0000.eventlog``); directories are
implicit. The store lives in memory, so readers and watchers never touch storage;
when the instance has a state directory, every key changed during one event-loop
turn is written to SQLite (WAL) in a single transaction at the end of that turn,
which is what lets thousands of jobs a second be recorded durably.

A directory that will not change any more (an inactive job's) can be *sealed*
(`KVS.seal`) with a small record that describes it: from then on it is
read-only, and in the statedir its keys are kept whole, apart from the live
ones. A restart reads only the records of sealed directories; their keys are
read from disk the first time something looks inside (`SealedDir`), so an
instance with 100,000 inactive jobs starts without reading their eventlogs.

When a save fails (the disk is full, the statedir became read-only or gives I/O
errors), the transaction is rolled back, nothing in memory is lost, and
`KVS.failure` says why, in one line, until a save succeeds again: the job
manager refuses new jobs meanwhile, and the KVS tries again every
`RETRY_SECONDS`, so the instance takes jobs again as soon as the statedir can
be written.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from strato.core import ids, proto
from strato.core.errors import RPCError, StateError

PRIMARY = "primary"
#: the statedir's format (SQLite ``user_version``): a newer one is refused, unread.
#: 2 added sealed directories (tables ``sealed`` and ``cold``); a format 1 statedir
#: is read as it is, and its inactive jobs are sealed by the job manager's recovery.
STATE_VERSION = 2
Watcher = Callable[[str, object], None]
#: how often a KVS whose last save failed tries again, with nothing new to save
RETRY_SECONDS = 1.0
#: a sealed directory whose keys take more than this (a job that printed
#: gigabytes) keeps them in the live tables: one value that large could pass
#: SQLite's limit on a value, and a restart would read it anyway
COLD_MAX = 64 << 20

log = logging.getLogger("strato.kvs")


class KvsDir(dict):
    """A directory: a dict whose values are sub-directories or stored values."""

    __slots__ = ()


class SealedKvsDir(KvsDir):
    """A sealed directory in memory: nothing below it can be changed, only the whole
    directory removed (a purge)."""

    __slots__ = ()


class SealedDir:
    """A sealed directory whose keys are still only in the statedir (after a
    restart): its ``record`` is what its owner said about it when sealing it (None
    if the statedir's copy cannot be decoded). The first lookup inside it reads its
    keys and puts a `SealedKvsDir` in its place."""

    __slots__ = ("record",)

    def __init__(self, record: object) -> None:
        self.record = record


class KVS:
    """The store of one instance (see module docstring).

    Storage layout: table ``kvs`` holds whole values; table ``log`` holds entries
    appended to list values (eventlogs, output) since the value was last written
    whole, so appending to a long eventlog writes one row, not the whole list.
    """

    def __init__(self, statefile: Path | None = None) -> None:
        self.namespaces: dict[str, KvsDir] = {PRIMARY: KvsDir()}
        self.watchers: dict[tuple[str, str], list[Watcher]] = {}
        self._puts: set[tuple[str, str]] = set()  # write the whole value
        self._dels: set[tuple[str, str]] = set()  # delete the key and its subtree first
        self._appends: dict[tuple[str, str], int] = {}  # entries appended since
        self._seals: dict[tuple[str, str], object] = {}  # directories sealed -> records
        # (ns, directory key) -> that writable directory, as last walked to
        # (`_dir`); forgotten when it leaves the tree or is sealed
        self._dirs: dict[tuple[str, str], KvsDir] = {}
        self._corrupt: set[str] = set()  # sealed directories found damaged (logged)
        self._flush_pending = False
        self._db: sqlite3.Connection | None = None
        self.commits = 0
        self.statedir = statefile.parent if statefile is not None else None
        #: why the last save failed, e.g. "statedir /x: No space left on device"
        #: (None: it did not); the errno name is in `failure_errno`
        self.failure: str | None = None
        self.failure_errno = ""
        self._retry: asyncio.TimerHandle | None = None
        #: called after every flush that wrote something (exec-local acknowledges
        #: its shell host's messages once they are on disk)
        self.on_flush: list[Callable[[], None]] = []
        if statefile is not None:
            self._open(statefile)

    # -- storage ---------------------------------------------------------------------
    def _open(self, path: Path) -> None:
        try:
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > STATE_VERSION:  # read nothing, write nothing: it is not ours
                db.close()
                raise StateError(f"cannot use state database {path}: it has format {version},"
                                 f" written by a newer strato (this one reads up to"
                                 f" {STATE_VERSION})")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("CREATE TABLE IF NOT EXISTS kvs (ns TEXT, key TEXT, value BLOB,"
                       " PRIMARY KEY (ns, key)) WITHOUT ROWID")
            db.execute("CREATE TABLE IF NOT EXISTS log (ns TEXT, key TEXT, seq INTEGER,"
                       " entry BLOB, PRIMARY KEY (ns, key, seq)) WITHOUT ROWID")
            # sealed directories: their records, and their keys (one row per directory:
            # a map of each key below it to its whole value)
            db.execute("CREATE TABLE IF NOT EXISTS sealed (ns TEXT, key TEXT, record BLOB,"
                       " PRIMARY KEY (ns, key)) WITHOUT ROWID")
            db.execute("CREATE TABLE IF NOT EXISTS cold (ns TEXT, key TEXT, content BLOB,"
                       " PRIMARY KEY (ns, key)) WITHOUT ROWID")
            self._load(db)
            if version < STATE_VERSION:
                db.execute(f"PRAGMA user_version = {STATE_VERSION}")
        except sqlite3.Error as exc:
            if (getattr(exc, "sqlite_errorname", "") or "").startswith(_STORAGE_ERRORS):
                raise StateError(f"cannot use {describe_failure(exc, path.parent)[0]}") \
                    from None
            raise StateError(f"cannot use state database {path}: {exc}") from None
        except (ValueError, TypeError) as exc:
            raise StateError(f"cannot use state database {path}: {exc}") from None
        self._db = db

    def _load(self, db: sqlite3.Connection) -> None:
        """Read the whole store (a restart: 100,000 jobs are a million rows).

        Keys come in order, so a job's keys share the directory found for the first
        one; a log's entries are appended to the list found once. Jobspecs are
        decoded once per distinct encoding (jobs submitted together share theirs,
        as they do when submitted): nothing changes a stored jobspec in place."""
        decode = proto.decode
        dirs: dict[tuple[str, str], KvsDir] = {}

        def directory(ns: str, path: str) -> KvsDir:
            d = dirs.get((ns, path))
            if d is None:
                if not path:
                    d = self._root(ns, create=True)
                else:
                    head, _, name = path.rpartition(".")
                    up = directory(ns, head)
                    d = up.get(name)
                    if not isinstance(d, KvsDir):
                        d = up[name] = KvsDir()
                dirs[(ns, path)] = d
            return d

        jobspecs: dict[bytes, object] = {}
        last = (None, None, None)  # (ns, head, its directory): a job's keys are adjacent
        for ns, key, blob in db.execute("SELECT ns, key, value FROM kvs ORDER BY ns, key"):
            head, _, name = key.rpartition(".")
            if not name:
                raise ValueError(f"invalid key '{key}'")
            if name == "jobspec":
                value = jobspecs.get(blob)
                if value is None:
                    value = jobspecs[blob] = decode(blob)
            else:
                value = decode(blob)
            if head != last[1] or ns != last[0]:
                last = (ns, head, directory(ns, head))
            last[2][name] = value
        current = None
        for ns, key, entry in db.execute("SELECT ns, key, entry FROM log"
                                         " ORDER BY ns, key, seq"):
            if current is None or key != current[0] or ns != current[1]:
                value = self.get(key, ns)
                if not isinstance(value, list):
                    raise ValueError(f"log entries for {key}, which is not a list")
                current = (key, ns, value.append)
            current[2](decode(entry))
        last = (None, None, None)
        for ns, key, record in db.execute("SELECT ns, key, record FROM sealed"
                                          " ORDER BY ns, key"):
            head, _, name = key.rpartition(".")
            if head != last[1] or ns != last[0]:
                last = (ns, head, directory(ns, head))
            try:
                record = decode(record)
            except ValueError:  # one damaged row costs its directory's record only
                record = None
            last[2][name] = SealedDir(record)
        self._dirs.clear()

    def _thaw(self, ns: str, key: str) -> SealedKvsDir:
        """Read the keys of the sealed directory `key` from the statedir. RPCError
        (EIO) if they cannot be read or decoded: a damaged row fails what looks
        inside that one directory, and the rest of the store goes on."""
        try:
            row = self._db.execute("SELECT content FROM cold WHERE ns = ? AND key = ?",
                                   (ns, key)).fetchone()
        except sqlite3.Error as exc:
            raise RPCError(f"{name_of_dir(key)}: cannot read its KVS directory from "
                           f"statedir {self.statedir}: {exc}", "EIO") from None
        try:
            if row is None:
                raise ValueError("it is missing")
            return _sealed_tree(proto.decode(row[0]))
        except (ValueError, TypeError, AttributeError) as exc:
            why = (f"{name_of_dir(key)}: its KVS directory in statedir {self.statedir} is "
                   f"corrupt ({exc})")
            if key not in self._corrupt:  # said once in the log, each time to the asker
                self._corrupt.add(key)
                log.error("%s", why)
            raise RPCError(why, "EIO") from None

    def close(self) -> None:
        """Save what is left and close; if that save fails, say so (one line) and
        close anyway: what it held is lost, what was saved before is intact."""
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        try:
            self.flush()
        except (sqlite3.Error, OSError) as exc:
            log.error("%s; the changes not saved since are lost",
                      describe_failure(exc, self.statedir)[0])
        if self._db is not None:
            self._db.close()
            self._db = None

    def _schedule_flush(self) -> None:
        if not self._flush_pending:
            self._flush_pending = True
            asyncio.get_running_loop().call_soon(self.save)

    def save(self) -> bool:
        """`flush`, for the event loop: a failure is not raised but kept in
        `failure` (logged once, when it starts) and retried every `RETRY_SECONDS`;
        the first save that succeeds after it clears it (logged too)."""
        try:
            self.flush()
        except (sqlite3.Error, OSError) as exc:
            why, name = describe_failure(exc, self.statedir)
            if self.failure is None:
                log.error("%s; the instance refuses new jobs until it can save its"
                          " state again (nothing already recorded is lost)", why)
            self.failure, self.failure_errno = why, name
            if self._retry is None:
                self._retry = asyncio.get_running_loop().call_later(RETRY_SECONDS,
                                                                    self._try_again)
            return False
        if self.failure is not None:
            log.warning("statedir %s: saved again; new jobs are accepted", self.statedir)
            self.failure = None
        return True

    def _try_again(self) -> None:
        self._retry = None
        if self.failure is not None:
            self.save()

    @property
    def unsaved(self) -> bool:
        """True while changes wait for the end-of-turn flush (the broker holds its
        answers back until then: `strato.core.broker.Broker.store`)."""
        return self._flush_pending

    def _mark(self, ns: str, key: str, present: bool, replaced_dir: bool = False) -> None:
        """Record a whole write (present) or a removal of `key` for the next flush."""
        if self._db is None:
            return
        k = (ns, key)
        self._appends.pop(k, None)
        if present:
            self._puts.add(k)
            if replaced_dir:
                self._dels.add(k)
        else:
            self._puts.discard(k)
            self._dels.add(k)
        self._schedule_flush()

    def _mark_append(self, ns: str, key: str, count: int) -> None:
        if self._db is None:
            return
        k = (ns, key)
        if k not in self._puts:
            self._appends[k] = self._appends.get(k, 0) + count
        self._schedule_flush()

    def flush(self) -> None:
        """Write every change since the last flush in one transaction.

        If that fails (the database is locked past its timeout, the disk is full),
        the transaction is rolled back and the changes stay marked, so the next
        flush writes them; the error goes to the caller. Before, the changes were
        forgotten and the transaction left open, so no later flush could write
        anything either."""
        pending = (set(self._puts), set(self._dels), dict(self._appends), dict(self._seals))
        try:
            self._write()
        except Exception:
            if self._db is not None and self._db.in_transaction:
                self._db.execute("ROLLBACK")
            self._puts, self._dels, self._appends, self._seals = pending
            raise

    def _write(self) -> None:
        """`flush` without the recovery from a failed write."""
        self._flush_pending = False
        db = self._db
        if db is None or not (self._puts or self._dels or self._appends or self._seals):
            return
        encode = proto.encode
        # a key's subtree is [key + ".", key + "/"): "/" sorts right after "."
        dels = [(ns, key, key + ".", key + "/") for ns, key in self._dels]
        seals = []
        for (ns, key), record in self._seals.items():
            d = self._peek(ns, key)
            if type(d) is SealedKvsDir:  # else removed or replaced within this turn
                content = encode(dict(_leaves(d, "")))
                if len(content) <= COLD_MAX:
                    seals.append((ns, key, encode(record), content, key + ".", key + "/"))
        sealing = {(s[0], s[1]) for s in seals}
        puts, logs = [], []
        for ns, key in self._puts:
            if sealing and _under(ns, key, sealing):
                continue  # written whole with its sealed directory
            try:
                value = self.lookup(key, ns)
            except (KeyError, RPCError):
                continue  # replaced by a directory or gone again within this turn
            if not isinstance(value, KvsDir):
                puts.append((ns, key, encode(value)))
        for (ns, key), count in self._appends.items():
            if sealing and _under(ns, key, sealing):
                continue
            value = self.get(key, ns)
            if isinstance(value, list):
                first = len(value) - count
                logs.extend((ns, key, first + i, encode(e))
                            for i, e in enumerate(value[first:]))
        self._puts.clear()
        self._dels.clear()
        self._appends.clear()
        self._seals.clear()
        db.execute("BEGIN")
        if dels:
            # Two statements, not one with OR: each is a search of the primary key,
            # where "key = ? OR key BETWEEN ..." makes SQLite scan the whole table
            # (a purge of a few jobs then cost as much as the whole statedir).
            for table in ("kvs", "log", "sealed", "cold"):
                db.executemany(f"DELETE FROM {table} WHERE ns = ?1 AND key = ?2",
                               [d[:2] for d in dels])
                db.executemany(f"DELETE FROM {table} WHERE ns = ?1 AND key >= ?2 AND key < ?3",
                               [(d[0], d[2], d[3]) for d in dels])
        if puts:
            db.executemany("DELETE FROM log WHERE ns = ? AND key = ?", [p[:2] for p in puts])
            db.executemany("INSERT OR REPLACE INTO kvs VALUES (?, ?, ?)", puts)
        if logs:
            db.executemany("INSERT OR REPLACE INTO log VALUES (?, ?, ?, ?)", logs)
        if seals:  # the live rows of a sealed directory give way to its whole values
            for table in ("kvs", "log"):
                db.executemany(f"DELETE FROM {table} WHERE ns = ?1 AND key >= ?5 AND key < ?6",
                               seals)
            db.executemany("INSERT OR REPLACE INTO sealed VALUES (?, ?, ?)",
                           [s[:3] for s in seals])
            db.executemany("INSERT OR REPLACE INTO cold VALUES (?, ?, ?)",
                           [(s[0], s[1], s[3]) for s in seals])
        db.execute("COMMIT")
        self.commits += 1
        for fn in self.on_flush:
            fn()

    # -- tree access -----------------------------------------------------------------
    def _root(self, ns: str, create: bool = False) -> KvsDir:
        root = self.namespaces.get(ns)
        if root is None:
            if not create:
                raise RPCError(f"namespace '{ns}' does not exist", "ENOTSUP")
            root = self.namespaces[ns] = KvsDir()
        return root

    @staticmethod
    def _split(key: str) -> list[str]:
        parts = key.split(".")
        if not key or "" in parts:
            raise RPCError(f"invalid key '{key}'")
        return parts

    def _writable_parent(self, ns: str, key: str,
                         create: list[str] | None = None) -> tuple[KvsDir | None, str]:
        """The directory that holds `key` (None if one on the way is missing or is
        a value) and the key's last part; RPCError if `key` is malformed or a
        directory above it is sealed. With `create` (a list), the directories
        missing on the way are made, a value in the way replaced (`_dir`).

        Directories found are remembered until the tree's shape changes: a job's
        keys are written or read about a dozen times in its life, each time six
        levels down (``job.0000.0004.2a00.0000.eventlog``), and a new job's
        directory sits beside the previous job's."""
        dirkey, dot, last = key.rpartition(".")
        if last and (dirkey or not dot):  # else malformed: _split says so
            hit = self._dirs.get((ns, dirkey))
            if hit is not None:
                return hit, last
        self._split(key)
        return self._dir(ns, dirkey, key, create), last

    def _dir(self, ns: str, dirkey: str, key: str,
             create: list[str] | None = None) -> KvsDir | None:
        """The writable directory at `dirkey` ("" is the namespace's root), found
        from the nearest directory above it that is remembered, and remembered
        with every one on the way down; None if one is missing or a value is in
        the way, unless `create`: then those are made (the namespace too), and
        each directory that replaced a value is added to `create`. RPCError if
        one on the way is sealed (`key` is the key being written, for the message).
        A remembered directory is writable and in the tree (`_forget_dirs`), and
        so is every one above it."""
        d = self._dirs.get((ns, dirkey))
        if d is not None:
            return d
        if not dirkey:
            d = self.namespaces.get(ns) if create is None else self._root(ns, create=True)
            if d is None:
                return None
        else:
            head, dot, name = dirkey.rpartition(".")
            up = self._dir(ns, head, key, create)
            if up is None:
                return None
            d = up.get(name)
            if type(d) is not KvsDir:
                if type(d) in _SEALED:
                    raise _read_only(key, dirkey)
                if create is None:
                    return None
                if d is not None or name in up:  # a value becomes a directory
                    self._mark(ns, dirkey, False)
                    create.append(dirkey)
                d = up[name] = KvsDir()
        if len(self._dirs) >= _DIRS_REMEMBERED:
            self._dirs.clear()
        self._dirs[(ns, dirkey)] = d
        return d

    def _forget_dirs(self, ns: str, key: str, removed: object) -> None:
        """`removed`, what was at `key`, left the tree or was sealed: forget it and
        every directory below it (a walk of that subtree: a job's directory has a
        handful)."""
        if not self._dirs or not isinstance(removed, KvsDir):
            return
        stack = [(key, removed)]
        while stack:
            here, d = stack.pop()
            self._dirs.pop((ns, here), None)
            for name, sub in d.items():
                # nothing below a sealed directory is remembered: only KvsDir is walked
                if type(sub) is KvsDir:
                    stack.append((f"{here}.{name}", sub))

    def _set(self, ns: str, key: str, value: object) -> bool:
        """Store `value` at `key`, making the directories above it; returns True if
        that replaced something stored below it or above it (a directory by a value
        or a value by a directory)."""
        replaced: list[str] = []
        parent, last = self._writable_parent(ns, key, replaced)
        old = parent.get(last)
        parent[last] = value
        if isinstance(old, (KvsDir, SealedDir)):
            self._forget_dirs(ns, key, old)
            return True
        return bool(replaced)

    def lookup(self, key: str, ns: str = PRIMARY) -> object:
        """Return the value or directory at `key`; KeyError if absent. A sealed
        directory on the way is read from the statedir first (`SealedDir`)."""
        if key == ".":
            return self._root(ns)
        dirkey, dot, last = key.rpartition(".")
        hit = self._dirs.get((ns, dirkey)) if last and (dirkey or not dot) else None
        if hit is not None:
            if last not in hit:
                raise KeyError(key)
            value = hit[last]
            if type(value) is SealedDir:
                value = hit[last] = self._thaw(ns, key)
            return value
        d: object = self._root(ns)
        parts = self._split(key)
        for i, p in enumerate(parts):
            if not isinstance(d, KvsDir) or p not in d:
                raise KeyError(key)
            nxt = d[p]
            if type(nxt) is SealedDir:
                nxt = d[p] = self._thaw(ns, ".".join(parts[: i + 1]))
            d = nxt
        return d

    def _peek(self, ns: str, key: str) -> object:
        """The value or directory at `key` as it is in memory (a sealed directory is
        not read from the statedir); None if absent."""
        d: object = self.namespaces.get(ns)
        for p in key.split("."):
            if not isinstance(d, KvsDir):
                return None
            d = d.get(p)
        return d

    def _check_writable(self, ns: str, key: str) -> None:
        """RPCError if a directory above `key` is sealed."""
        self._writable_parent(ns, key)

    def seal(self, key: str, record: object, ns: str = PRIMARY) -> bool:
        """Declare the directory at `key` finished: nothing below it may change any
        more (it may still be removed whole), and `record`, a small value, describes
        it to whoever reads the statedir next (a restart: `SealedDir.record`).
        `record` may be a function that returns it, called at once if there is a
        statedir, else not at all: without one nothing reads it.
        False, and nothing done, if there is no directory at `key` (a client
        removed it)."""
        d = self._dirs.get((ns, key)) if key else None  # a job's is usually remembered
        if d is None:
            d = self._peek(ns, key)
            if not isinstance(d, KvsDir):
                return False
        d.__class__ = SealedKvsDir  # the same dict, now read-only
        self._forget_dirs(ns, key, d)  # none of them is writable any more
        if self._db is not None:
            self._seals[(ns, key)] = record() if callable(record) else record
            self._schedule_flush()
        return True

    def get(self, key: str, ns: str = PRIMARY, default: object = None) -> object:
        try:
            return self.lookup(key, ns)
        except KeyError:
            return default

    # -- updates ---------------------------------------------------------------------
    def put(self, key: str, value: object, ns: str = PRIMARY) -> None:
        self._mark(ns, key, True, self._set(ns, key, value))
        self._notify(ns, key, "put", value)

    def put_quiet(self, key: str, value: object, ns: str = PRIMARY) -> None:
        """Store a value nobody can be watching yet (a new job's key): no notify."""
        replaced = self._set(ns, key, value)
        if self._db is not None:  # three per job: `_mark` only when it does something
            self._mark(ns, key, True, replaced)

    def notify_append(self, key: str, value: list, entries: tuple,
                      ns: str = PRIMARY) -> None:
        """Record that `entries` were appended in place to the list `value` at `key`.

        The job manager keeps each eventlog list and appends to it directly; this
        marks it for the next flush and feeds the watchers, without a key lookup.
        """
        if self._db is not None:
            self._mark_append(ns, key, len(entries))
        if self.watchers:  # usually nobody watches any key
            lst = self.watchers.get((ns, key))
            if lst:
                for cb in list(lst):
                    cb("append", entries)

    def append(self, key: str, entries: Iterable, ns: str = PRIMARY) -> None:
        """Append entries to the list stored at `key` (an eventlog)."""
        entries = list(entries)
        replaced: list[str] = []
        parent, last = self._writable_parent(ns, key, replaced)
        value = parent.get(last)
        if value is None:  # a new list, in directories made for it if need be (`_set`)
            value = parent[last] = []
            self._mark(ns, key, True, bool(replaced))
        elif not isinstance(value, list):
            raise RPCError(f"{key}: cannot append to a value that is not a list")
        value.extend(entries)
        if self._db is not None:
            self._mark_append(ns, key, len(entries))
        if self.watchers:  # as in notify_append
            self._notify(ns, key, "append", entries)

    def unlink(self, key: str, ns: str = PRIMARY, prune: bool = False) -> None:
        """Remove `key` and everything below it. With `prune`, directories left
        empty above it go too: purging jobs one by one must not leave a trail of
        empty ``job.*`` directories behind (directories are never stored)."""
        parts = self._split(key)
        self._check_writable(ns, key)
        d: object = self._root(ns)
        path = []
        for p in parts[:-1]:
            if not isinstance(d, KvsDir) or p not in d:
                return
            path.append(d)
            d = d[p]
        if isinstance(d, KvsDir) and parts[-1] in d:
            self._forget_dirs(ns, key, d.pop(parts[-1]))
            self._mark(ns, key, False)
            self._notify(ns, key, "unlink", None)
            if prune:
                for i in range(len(path) - 1, -1, -1):
                    if d:
                        break
                    del path[i][parts[i]]
                    self._dirs.pop((ns, ".".join(parts[: i + 1])), None)
                    d = path[i]

    def commit(self, ops: list, ns: str = PRIMARY) -> None:
        """Apply a list of ``[op, key, value]`` atomically: every operation is checked,
        in order and against the effect of the ones before it, before any is applied."""
        if not isinstance(ops, list):
            raise RPCError("ops must be a list")
        is_list: dict[str, bool | None] = {}  # key -> holds a list (None: absent)
        for op in ops:
            if not (isinstance(op, (list, tuple)) and len(op) == 3):
                raise RPCError("malformed commit operation")
            kind, key, value = op
            if not isinstance(key, str):
                raise RPCError("commit keys must be strings")
            parent, last = self._writable_parent(ns, key)  # RPCError if not writable
            if kind == "put":
                is_list[key] = isinstance(value, list)
            elif kind == "unlink":
                is_list[key] = None
            elif kind == "append":
                if key in is_list:
                    ok = is_list[key] is not False
                else:
                    cur = None if parent is None else parent.get(last)
                    ok = cur is None or isinstance(cur, list)
                if not ok:
                    raise RPCError(f"{key}: cannot append to a value that is not a list")
                is_list[key] = True
            else:
                raise RPCError(f"unknown commit operation '{kind}'")
        for kind, key, value in ops:
            if kind == "put":
                self.put(key, value, ns)
            elif kind == "append":
                self.append(key, value if isinstance(value, list) else [value], ns)
            else:
                self.unlink(key, ns)

    # -- watches ---------------------------------------------------------------------
    def watch(self, key: str, callback: Watcher, ns: str = PRIMARY) -> Callable[[], None]:
        """Call ``callback(op, value)`` on every change of `key`; returns the canceller."""
        lst = self.watchers.setdefault((ns, key), [])
        lst.append(callback)

        def cancel() -> None:
            if callback in lst:
                lst.remove(callback)
            if not lst:
                self.watchers.pop((ns, key), None)

        return cancel

    def _notify(self, ns: str, key: str, op: str, value: object) -> None:
        lst = self.watchers.get((ns, key)) if self.watchers else None
        if lst:
            for cb in list(lst):
                cb(op, value)

    # -- services --------------------------------------------------------------------
    def register_services(self, broker) -> None:
        if self._db is not None:  # the broker's answers wait until their state is saved
            broker.store = self
        broker.register("kvs.get", self._svc_get)
        broker.register("kvs.commit", self._svc_commit)
        broker.register("kvs.ls", self._svc_ls)
        broker.register("kvs.watch", self._svc_watch)
        broker.register("kvs.namespace-create", self._svc_ns_create)

    @staticmethod
    def _key_ns(body: dict, default_key: str = "") -> tuple[str, str]:
        """The key and namespace a request names (RPCError unless both are strings)."""
        key = body.get("key") or default_key
        ns = body.get("namespace", PRIMARY)
        if not isinstance(key, str) or not isinstance(ns, str):
            raise RPCError("the key and namespace must be strings", "EPROTO")
        return key, ns

    def _svc_get(self, req) -> None:
        key, ns = self._key_ns(req.body or {})
        try:
            value = self.lookup(key, ns)
        except KeyError:
            raise RPCError(f"{key}: no such key", "ENOENT") from None
        if isinstance(value, KvsDir):
            raise RPCError(f"{key}: is a directory", "EISDIR")
        req.respond({"value": value})

    def _svc_ls(self, req) -> None:
        key, ns = self._key_ns(req.body or {}, ".")
        try:
            value = self.lookup(key, ns)
        except KeyError:
            raise RPCError(f"{key}: no such key", "ENOENT") from None
        if not isinstance(value, KvsDir):
            raise RPCError(f"{key}: not a directory", "ENOTDIR")
        req.respond({"entries": {k: isinstance(v, (KvsDir, SealedDir))
                                 for k, v in sorted(value.items())}})

    def _svc_commit(self, req) -> None:
        body = req.body or {}
        self.commit(body.get("ops", []), body.get("namespace", PRIMARY))
        req.respond()

    def _svc_ns_create(self, req) -> None:
        name = (req.body or {}).get("namespace")
        if not isinstance(name, str) or not name:
            raise RPCError("namespace-create needs a namespace name")
        self._root(name, create=True)
        req.respond()

    def _svc_watch(self, req) -> None:
        key, ns = self._key_ns(req.body or {})
        self._split(key)
        self._root(ns)
        value = self.get(key, ns)
        if value is not None:
            req.send({"op": "put", "value": value})

        def on_change(op: str, v: object) -> None:
            req.send({"op": op, "value": v})

        req.on_cancel = self.watch(key, on_change, ns)


_SEALED = (SealedDir, SealedKvsDir)
#: directories `KVS._writable_parent` remembers at most (then it starts afresh)
_DIRS_REMEMBERED = 1 << 16
#: SQLite errors that say the statedir cannot be written or read, not that the
#: database is damaged
_STORAGE_ERRORS = ("SQLITE_FULL", "SQLITE_READONLY", "SQLITE_IOERR", "SQLITE_CANTOPEN")


def describe_failure(exc: BaseException, statedir: Path | None) -> tuple[str, str]:
    """("statedir DIR: what went wrong", errno name) for an error saving to the
    statedir, in the system's words (SQLite says "database or disk is full", or "disk
    I/O error" when it cannot grow its WAL index, for ENOSPC)."""
    code, text = "EIO", str(exc)
    name = getattr(exc, "sqlite_errorname", "") or ""
    if isinstance(exc, OSError) and exc.errno:
        code, text = errno.errorcode.get(exc.errno, "EIO"), exc.strerror or text
    elif name == "SQLITE_FULL":
        code, text = "ENOSPC", os.strerror(errno.ENOSPC)
    elif name.startswith("SQLITE_READONLY"):
        code = "EROFS"
        if statedir is not None and _read_only_fs(statedir):
            text = os.strerror(errno.EROFS)
    elif name.startswith("SQLITE_IOERR"):  # e.g. growing the WAL index on a full disk
        if statedir is not None and _free_blocks(statedir) == 0:
            code, text = "ENOSPC", os.strerror(errno.ENOSPC)
        else:
            text = os.strerror(errno.EIO)
    return f"statedir {statedir}: {text}", code


def _read_only_fs(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _free_blocks(path: Path) -> int | None:
    try:
        return os.statvfs(path).f_bavail
    except OSError:
        return None


def _sealed_tree(content: object) -> SealedKvsDir:
    """A sealed directory from its stored form: a map of each key below it (dotted,
    relative) to its value. ValueError, TypeError or AttributeError if it is not one."""
    if not isinstance(content, dict):
        raise ValueError(f"a {type(content).__name__} where a map of its keys belongs")
    d = SealedKvsDir()
    for sub, value in content.items():
        parts = sub.split(".")
        here: KvsDir = d
        for p in parts[:-1]:
            here = here.setdefault(p, KvsDir())
        here[parts[-1]] = value
    return d


def name_of_dir(key: str) -> str:
    """How an error names the KVS directory `key`: a job's by its job id."""
    if key.startswith("job."):
        try:
            return f"job {ids.f58(ids.parse(key))}"
        except ValueError:
            pass
    return key


def _read_only(key: str, sealed: str) -> RPCError:
    return RPCError(f"cannot change {key}: {sealed} is sealed (read-only)", "EPERM")


def _leaves(d: KvsDir, prefix: str):
    """(key, value) of every value below the directory `d`, keys relative to it
    (`prefix` is the path so far: "" at the top)."""
    for name, value in d.items():
        key = f"{prefix}.{name}" if prefix else name
        if isinstance(value, KvsDir):
            yield from _leaves(value, key)
        else:
            yield key, value


def _under(ns: str, key: str, dirs: set[tuple[str, str]]) -> bool:
    """Whether `key` is below one of the directories `dirs`."""
    head = key
    while True:
        head, dot, _ = head.rpartition(".")
        if not dot:
            return False
        if (ns, head) in dirs:
            return True


def dump_kvs(kvs: KVS, path: str) -> None:
    """Archive the primary namespace as a gzipped tar with one JSON file per key
    (``job/<dirs>/eventlog``, ``resource/R``, ...), as Flux's ``flux dump`` keeps
    an instance's content after it is gone (``strato batch --dump``)."""
    import io
    import json
    import tarfile

    def walk(d: KvsDir, prefix: str):
        for name, value in sorted(d.items()):
            key = f"{prefix}/{name}" if prefix else name
            if type(value) is SealedDir:  # read from the statedir
                value = kvs.lookup(key.replace("/", "."))
            if isinstance(value, KvsDir):
                yield from walk(value, key)
            else:
                yield key, value

    now = time.time()
    with tarfile.open(path, "w:gz") as tar:
        for key, value in walk(kvs.lookup("."), ""):
            data = json.dumps(value).encode()
            info = tarfile.TarInfo(key)
            info.size, info.mtime = len(data), now
            tar.addfile(info, io.BytesIO(data))
