"""Key-value store with namespaces, atomic multi-key commits and watches.

Keys are dotted paths (``job.0000.0004.b200.0000.eventlog``); directories are
implicit. The store lives in memory, so readers and watchers never touch storage;
when the instance has a state directory, every key changed during one event-loop
turn is written to SQLite (WAL) in a single transaction at the end of that turn,
which is what lets thousands of jobs a second be recorded durably.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path

from strato.core import proto
from strato.core.errors import RPCError, StateError

PRIMARY = "primary"
Watcher = Callable[[str, object], None]


class KvsDir(dict):
    """A directory: a dict whose values are sub-directories or stored values."""

    __slots__ = ()


class KVS:
    """The store of one instance (see module docstring)."""

    def __init__(self, statefile: Path | None = None) -> None:
        self.namespaces: dict[str, KvsDir] = {PRIMARY: KvsDir()}
        self.watchers: dict[tuple[str, str], list[Watcher]] = {}
        self._dirty: dict[tuple[str, str], bool] = {}  # (ns, key) -> True put / False unlink
        self._flush_pending = False
        self._db: sqlite3.Connection | None = None
        self.commits = 0
        if statefile is not None:
            self._open(statefile)

    # -- storage ---------------------------------------------------------------------
    def _open(self, path: Path) -> None:
        try:
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS kvs (ns TEXT, key TEXT, value BLOB,"
                " PRIMARY KEY (ns, key)) WITHOUT ROWID"
            )
            rows = db.execute("SELECT ns, key, value FROM kvs").fetchall()
            for ns, key, value in rows:
                self._set(ns, key, proto.decode(value))
        except (sqlite3.DatabaseError, ValueError, TypeError) as exc:
            raise StateError(f"cannot use state database {path}: {exc}") from None
        self._db = db

    def close(self) -> None:
        self.flush()
        if self._db is not None:
            self._db.close()
            self._db = None

    def _mark(self, ns: str, key: str, present: bool) -> None:
        if self._db is None:
            return
        self._dirty[(ns, key)] = present
        if not self._flush_pending:
            self._flush_pending = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Write every key changed since the last flush in one transaction."""
        self._flush_pending = False
        if self._db is None or not self._dirty:
            return
        puts = []
        dels = []
        for (ns, key), present in self._dirty.items():
            if present:
                puts.append((ns, key, proto.encode(self.get(key, ns))))
            else:
                dels.append((ns, key))
        self._dirty.clear()
        db = self._db
        db.execute("BEGIN")
        if dels:
            db.executemany("DELETE FROM kvs WHERE ns = ? AND key = ?", dels)
            db.executemany("DELETE FROM kvs WHERE ns = ? AND key LIKE ? || '.%'", dels)
        if puts:
            db.executemany("INSERT OR REPLACE INTO kvs VALUES (?, ?, ?)", puts)
        db.execute("COMMIT")
        self.commits += 1

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

    def _set(self, ns: str, key: str, value: object) -> None:
        parts = self._split(key)
        d = self._root(ns, create=True)
        for p in parts[:-1]:
            nxt = d.get(p)
            if not isinstance(nxt, KvsDir):
                nxt = d[p] = KvsDir()
            d = nxt
        d[parts[-1]] = value

    def lookup(self, key: str, ns: str = PRIMARY) -> object:
        """Return the value or directory at `key`; KeyError if absent."""
        d: object = self._root(ns)
        if key == ".":
            return d
        for p in self._split(key):
            if not isinstance(d, KvsDir) or p not in d:
                raise KeyError(key)
            d = d[p]
        return d

    def get(self, key: str, ns: str = PRIMARY, default: object = None) -> object:
        try:
            return self.lookup(key, ns)
        except KeyError:
            return default

    # -- updates ---------------------------------------------------------------------
    def put(self, key: str, value: object, ns: str = PRIMARY) -> None:
        self._set(ns, key, value)
        self._mark(ns, key, True)
        self._notify(ns, key, "put", value)

    def put_quiet(self, key: str, value: object, ns: str = PRIMARY) -> None:
        """Store a value nobody can be watching yet (a new job's key): no notify."""
        self._set(ns, key, value)
        self._mark(ns, key, True)

    def notify_append(self, key: str, value: list, entries: tuple,
                      ns: str = PRIMARY) -> None:
        """Record that `entries` were appended in place to the list `value` at `key`.

        The job manager keeps each eventlog list and appends to it directly; this
        marks it for the next flush and feeds the watchers, without a key lookup.
        """
        self._mark(ns, key, True)
        lst = self.watchers.get((ns, key))
        if lst:
            for cb in list(lst):
                cb("append", entries)

    def append(self, key: str, entries: Iterable, ns: str = PRIMARY) -> None:
        """Append entries to the list stored at `key` (an eventlog)."""
        entries = list(entries)
        value = self.get(key, ns)
        if value is None:
            value = []
            self._set(ns, key, value)
        elif not isinstance(value, list):
            raise RPCError(f"{key}: cannot append to a value that is not a list")
        value.extend(entries)
        self._mark(ns, key, True)
        self._notify(ns, key, "append", entries)

    def unlink(self, key: str, ns: str = PRIMARY) -> None:
        parts = self._split(key)
        d: object = self._root(ns)
        for p in parts[:-1]:
            if not isinstance(d, KvsDir) or p not in d:
                return
            d = d[p]
        if isinstance(d, KvsDir) and d.pop(parts[-1], None) is not None:
            self._mark(ns, key, False)
            self._notify(ns, key, "unlink", None)

    def commit(self, ops: list, ns: str = PRIMARY) -> None:
        """Apply a list of ``[op, key, value]`` atomically: all are checked first."""
        for op in ops:
            if not (isinstance(op, (list, tuple)) and len(op) == 3):
                raise RPCError("malformed commit operation")
            kind, key, _ = op
            self._split(key)
            if kind not in ("put", "append", "unlink"):
                raise RPCError(f"unknown commit operation '{kind}'")
            if kind == "append":
                cur = self.get(key, ns)
                if cur is not None and not isinstance(cur, list):
                    raise RPCError(f"{key}: cannot append to a value that is not a list")
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
        lst = self.watchers.get((ns, key))
        if lst:
            for cb in list(lst):
                cb(op, value)

    # -- services --------------------------------------------------------------------
    def register_services(self, broker) -> None:
        broker.register("kvs.get", self._svc_get)
        broker.register("kvs.commit", self._svc_commit)
        broker.register("kvs.ls", self._svc_ls)
        broker.register("kvs.watch", self._svc_watch)
        broker.register("kvs.namespace-create", self._svc_ns_create)

    def _svc_get(self, req) -> None:
        body = req.body or {}
        key = body.get("key", "")
        try:
            value = self.lookup(key, body.get("namespace", PRIMARY))
        except KeyError:
            raise RPCError(f"{key}: no such key", "ENOENT") from None
        if isinstance(value, KvsDir):
            raise RPCError(f"{key}: is a directory", "EISDIR")
        req.respond({"value": value})

    def _svc_ls(self, req) -> None:
        body = req.body or {}
        key = body.get("key") or "."
        try:
            value = self.lookup(key, body.get("namespace", PRIMARY))
        except KeyError:
            raise RPCError(f"{key}: no such key", "ENOENT") from None
        if not isinstance(value, KvsDir):
            raise RPCError(f"{key}: not a directory", "ENOTDIR")
        req.respond({"entries": {k: isinstance(v, KvsDir) for k, v in sorted(value.items())}})

    def _svc_commit(self, req) -> None:
        body = req.body or {}
        self.commit(body.get("ops", []), body.get("namespace", PRIMARY))
        req.respond()

    def _svc_ns_create(self, req) -> None:
        self._root(req.body["namespace"], create=True)
        req.respond()

    def _svc_watch(self, req) -> None:
        body = req.body or {}
        key = body.get("key", "")
        ns = body.get("namespace", PRIMARY)
        self._split(key)
        self._root(ns)
        value = self.get(key, ns)
        if value is not None:
            req.send({"op": "put", "value": value})

        def on_change(op: str, v: object) -> None:
            req.send({"op": op, "value": v})

        req.on_cancel = self.watch(key, on_change, ns)
