"""What a surviving shell host has sent or must send to its broker, kept until the
broker says it is recorded.

Every message the host sends carries a sequence number. The broker records, in
its statedir and in the same SQLite transaction as the message's effects, the
last sequence it applied, and acknowledges it after each flush
(``shell-host.ack``); the host then forgets what is acknowledged. While the
broker is away (stopped, killed, restarting) messages accumulate here: in memory
up to `memory_limit` bytes, then in a spool file, so that output written
meanwhile is bounded in memory and never lost. A broker that re-adopts the host
says which sequence it has, and the host replays everything after it, in order:
nothing is applied twice and nothing is missed.

**A full disk.** A write to the spool file that fails (no space left, an I/O
error) leaves no partial record behind: the file is cut back to its last whole
record and the message is kept in memory instead, after those in the file
(`overflow`), up to another `memory_limit` bytes. The file is tried again at
most once a second. Past that bound the outbox is `full`: the host then keeps a
job's output out of its messages (their events and eventlogs still go in) and
says on the job's stderr how much it had to drop (`strato.shell.host`).
"""

from __future__ import annotations

import bisect
import os
import time
from collections import deque
from collections.abc import Iterator

#: bytes of unacknowledged messages kept in memory before they go to the spool file
MEMORY_LIMIT = 32 << 20
#: seconds between tries of a spool file that could not be written
RETRY_INTERVAL = 1.0


class Outbox:
    """Sequence-numbered messages not yet acknowledged (see module docstring)."""

    def __init__(self, spool_path: str, memory_limit: int = MEMORY_LIMIT) -> None:
        self.spool_path = spool_path
        self.memory_limit = memory_limit
        self.memory: deque[tuple[int, bytes]] = deque()
        self.memory_bytes = 0
        self.spool = None  # open file: messages older than `memory`, once spilled
        self.spool_last = 0  # the highest sequence in the spool file
        self.spool_seqs: list[int] = []  # each spooled message's sequence ...
        self.spool_offsets: list[int] = []  # ... and where it starts in the file
        self.spool_size = 0  # bytes of whole records in the file
        # messages the spool file could not take (a full disk), in order after it
        self.overflow: deque[tuple[int, bytes]] = deque()
        self.overflow_bytes = 0
        self.write_error: OSError | None = None  # why the file could not take them
        self._retry_at = 0.0
        self.acked = 0

    @property
    def empty(self) -> bool:
        return not self.memory and self.spool is None and not self.overflow

    @property
    def full(self) -> bool:
        """The disk refused the spool and memory holds all it may: keep less."""
        return self.write_error is not None and self.overflow_bytes >= self.memory_limit

    def add(self, seq: int, payload: bytes) -> None:
        """Keep message `seq` until it is acknowledged."""
        if self.spool is None and not self.overflow \
                and self.memory_bytes + len(payload) <= self.memory_limit:
            self.memory.append((seq, payload))
            self.memory_bytes += len(payload)
            return
        if self.overflow or self.spool is None:
            self._spill()
        if self.overflow or not self._write(seq, payload):
            self.overflow.append((seq, payload))
            self.overflow_bytes += len(payload)

    def _spill(self) -> None:
        """Move what memory and the overflow hold to the spool file, in order, as far
        as the disk lets it (not more than once a second after it refused)."""
        if self.write_error is not None and time.monotonic() < self._retry_at:
            return
        if self.spool is None:
            try:
                fd = os.open(self.spool_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC
                             | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                self._refused(exc)
                return
            self.spool = open(fd, "wb", buffering=0)  # noqa: SIM115 (kept open)
            self.spool_size = 0
            self.memory.extend(self.overflow)  # memory's messages are the older
            self.overflow = self.memory
            self.overflow_bytes += self.memory_bytes
            self.memory, self.memory_bytes = deque(), 0
        while self.overflow:
            s, p = self.overflow[0]
            if not self._write(s, p):
                return
            self.overflow.popleft()
            self.overflow_bytes -= len(p)
        self.write_error = None

    def _write(self, seq: int, payload: bytes) -> bool:
        """Append one record to the spool file; False (the file cut back to its last
        whole record) if the disk refused it."""
        if self.spool is None or self.write_error is not None \
                and time.monotonic() < self._retry_at:
            return False
        record = seq.to_bytes(8, "little") + len(payload).to_bytes(4, "little") + payload
        try:
            view = memoryview(record)
            while view:
                view = view[self.spool.write(view):]
        except OSError as exc:
            try:
                self.spool.truncate(self.spool_size)
                self.spool.seek(self.spool_size)
            except OSError:
                pass
            self._refused(exc)
            return False
        self.spool_seqs.append(seq)
        self.spool_offsets.append(self.spool_size)
        self.spool_size += len(record)
        self.spool_last = seq
        self.write_error = None
        return True

    def _refused(self, exc: OSError) -> None:
        self.write_error = exc
        self._retry_at = time.monotonic() + RETRY_INTERVAL

    def ack(self, seq: int) -> None:
        """The broker has recorded every message up to `seq`: forget them."""
        if seq <= self.acked:
            return
        self.acked = seq
        memory = self.memory
        while memory and memory[0][0] <= seq:
            self.memory_bytes -= len(memory.popleft()[1])
        overflow = self.overflow
        while overflow and overflow[0][0] <= seq:
            self.overflow_bytes -= len(overflow.popleft()[1])
        if self.spool is not None and self.spool_last <= seq:
            self.drop_spool()
            if self.overflow:  # what is left is in memory, in order: spilled again later
                self.memory, self.memory_bytes = self.overflow, self.overflow_bytes
                self.overflow, self.overflow_bytes = deque(), 0

    def drop_spool(self) -> None:
        if self.spool is not None:
            self.spool.close()
            self.spool = None
        self.spool_seqs, self.spool_offsets = [], []
        try:
            os.unlink(self.spool_path)
        except FileNotFoundError:
            pass

    def after(self, seq: int) -> Iterator[tuple[int, bytes]]:
        """Every kept message with a sequence above `seq`, in order (spool first)."""
        if self.spool is not None:
            first = bisect.bisect_right(self.spool_seqs, seq)
            end = self.spool_size  # whole records only, whatever is written meanwhile
            if first < len(self.spool_seqs):
                with open(self.spool_path, "rb") as f:
                    f.seek(self.spool_offsets[first])
                    while f.tell() < end and (head := f.read(12)):
                        s = int.from_bytes(head[:8], "little")
                        payload = f.read(int.from_bytes(head[8:], "little"))
                        if s > seq:
                            yield s, payload
        for s, p in [*self.memory, *self.overflow]:
            if s > seq:
                yield s, p
