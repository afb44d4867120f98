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
"""

from __future__ import annotations

import bisect
import os
from collections import deque
from collections.abc import Iterator

#: bytes of unacknowledged messages kept in memory before they go to the spool file
MEMORY_LIMIT = 32 << 20


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
        self.acked = 0

    @property
    def empty(self) -> bool:
        return not self.memory and self.spool is None

    def add(self, seq: int, payload: bytes) -> None:
        """Keep message `seq` until it is acknowledged."""
        if self.spool is None and self.memory_bytes + len(payload) <= self.memory_limit:
            self.memory.append((seq, payload))
            self.memory_bytes += len(payload)
            return
        if self.spool is None:  # spill: the file takes everything, in order
            self.spool = open(self.spool_path, "wb")  # noqa: SIM115 (kept open)
            os.chmod(self.spool_path, 0o600)
            for s, p in self.memory:
                self._write(s, p)
            self.memory.clear()
            self.memory_bytes = 0
        self._write(seq, payload)

    def _write(self, seq: int, payload: bytes) -> None:
        self.spool_seqs.append(seq)
        self.spool_offsets.append(self.spool.tell())
        self.spool.write(seq.to_bytes(8, "little") + len(payload).to_bytes(4, "little"))
        self.spool.write(payload)
        self.spool_last = seq

    def ack(self, seq: int) -> None:
        """The broker has recorded every message up to `seq`: forget them."""
        if seq <= self.acked:
            return
        self.acked = seq
        memory = self.memory
        while memory and memory[0][0] <= seq:
            self.memory_bytes -= len(memory.popleft()[1])
        if self.spool is not None and self.spool_last <= seq:
            self.drop_spool()

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
            self.spool.flush()
            first = bisect.bisect_right(self.spool_seqs, seq)
            if first == len(self.spool_seqs):
                return
            with open(self.spool_path, "rb") as f:
                f.seek(self.spool_offsets[first])
                while head := f.read(12):
                    s = int.from_bytes(head[:8], "little")
                    payload = f.read(int.from_bytes(head[8:], "little"))
                    if s > seq:
                        yield s, payload
        for s, p in list(self.memory):
            if s > seq:
                yield s, p
