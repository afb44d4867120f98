"""The bound on a job's output kept in the KVS (``-o output.limit=SIZE``, as Flux).

What a job's tasks write to stdout and stderr goes to the job's ``guest.output``
in the KVS, so into the broker's memory and its statedir, where it stays until
the job is purged. A job printing gigabytes would exhaust both, so each stream
(stdout, stderr) of a job keeps at most the limit there: what comes after is
dropped, and the shell says so once, in one line on the job's stderr, when a
stream first overflows. Output sent to files (``--output``/``--error``) does not
pass through here and is never limited.

The default is `SINGLE_USER_LIMIT` when the job's owner is the instance's owner
and `MULTI_USER_LIMIT` for anyone else's job (multi-user instances are a later
issue); a job may ask for any size up to 1G.
"""

from __future__ import annotations

import os

from strato.jobspec.size import format_size, output_limit

SINGLE_USER_LIMIT = 1 << 30
MULTI_USER_LIMIT = 10 << 20


def job_output_limit(options: dict, userid: int, owner: int | None = None) -> int:
    """The limit in bytes for a job with shell `options`, owned by `userid`
    (ValueError, naming the option, for a bad one). `owner` is the instance
    owner's uid, if the caller knows it (else this process's: a system call)."""
    out = options.get("output")
    value = out.get("limit") if isinstance(out, dict) else None
    if value is None:
        if owner is None:
            owner = os.getuid()
        return SINGLE_USER_LIMIT if userid == owner else MULTI_USER_LIMIT
    try:
        return output_limit(value)
    except ValueError as exc:
        raise ValueError(f"output.limit: {exc}") from None


class OutputLimit:
    """How much of each stream of one job has been kept, against the limit."""

    __slots__ = ("limit", "kept", "full")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.kept = {"stdout": 0, "stderr": 0}
        self.full: set[str] = set()  # streams that overflowed: the rest is dropped

    def admit(self, stream: str, data: bytes) -> tuple[bytes, str | None]:
        """The part of `data` (raw bytes of `stream`) to keep, and the warning to
        write if the stream overflows with this data (None otherwise). A cut is
        made before a UTF-8 continuation byte, so no character is split."""
        if stream in self.full:
            return b"", None
        kept = self.kept[stream]
        if kept + len(data) <= self.limit:
            self.kept[stream] = kept + len(data)
            return data, None
        cut = self.limit - kept
        while cut > 0 and data[cut] & 0xC0 == 0x80:
            cut -= 1
        self.kept[stream] = kept + cut
        self.full.add(stream)
        limit = format_size(self.limit)
        return data[:cut], (f"strato-shell: {stream} reached output.limit={limit}; the rest"
                            f" of it is dropped (use --output=FILE to keep it all)\n")
