"""When Python's cyclic garbage collector runs in strato's long-lived processes.

A broker or shell host allocates many long-lived, mostly acyclic objects (jobs,
eventlogs, a scheduler's resource graph) and frees them by reference counting.
With CPython's default thresholds the cyclic collector rescans them every few
thousand allocations: building the resource graph of 1024x32 virtual nodes took
3-5x longer with it than without, and every job paid for a share of young- and
old-generation scans. Two remedies, both standard for Python services:

- ``paused()`` around a burst of long-lived allocations (building a graph,
  booking a thousand held allocations), as a bulk loader would;
- ``tune_service()`` once a process has finished starting: what was allocated at
  start-up (imported modules, plugin registries, config) moves to the permanent
  generation (``gc.freeze``) so later full collections skip it, and the young
  generation is collected after more allocations, so each collection does more
  useful work per call.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

#: Allocations (minus deallocations) between young-generation collections in a
#: service process; CPython's default is 700. Cycles still get collected, only in
#: larger batches: memory held by garbage cycles stays a small fraction of the heap.
SERVICE_GEN0_THRESHOLD = 20_000


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """Suspend the cyclic collector for the block (restored as it was, even on error)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def tune_service() -> None:
    """Collector settings for a long-running service process, called once started.

    No collection first: it would cost start-up time to reclaim the few cycles
    that importing leaves behind."""
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(SERVICE_GEN0_THRESHOLD, gen1, gen2)
