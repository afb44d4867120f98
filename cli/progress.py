"""A one-line progress bar for --progress: state counts, a bar, and job/s."""

from __future__ import annotations

import sys
import time


def render(total: int, pending: int, running: int, complete: int, failed: int,
           width: int = 30, jps: float | None = None) -> str:
    """The bar as text, e.g. ``PD:3 R:2 CD:5 F:0 [#########.....]  50.0% 12.3 job/s``."""
    done = complete + failed
    frac = done / total if total else 1.0
    filled = int(frac * width)
    bar = "#" * filled + "." * (width - filled)
    text = f"PD:{pending} R:{running} CD:{complete} F:{failed} [{bar}] {frac * 100:5.1f}%"
    if jps is not None:
        text += f" {jps:.1f} job/s"
    return text


class Progress:
    """Redraws the bar in place on a terminal, at most ten times a second."""

    def __init__(self, total: int, show_jps: bool, stream=None) -> None:
        self.total = total
        self.show_jps = show_jps
        self.stream = stream or sys.stdout
        self.t0 = time.monotonic()
        self._last = 0.0
        self.enabled = self.stream.isatty()

    def due(self) -> bool:
        return self.enabled and time.monotonic() - self._last >= 0.1

    def update(self, pending: int, running: int, complete: int, failed: int,
               final: bool = False) -> None:
        if not self.enabled:
            return
        self._last = time.monotonic()
        elapsed = self._last - self.t0
        jps = (complete + failed) / elapsed if self.show_jps and elapsed > 0 else None
        line = render(self.total, pending, running, complete, failed, jps=jps)
        self.stream.write("\r" + line + ("\n" if final else ""))
        self.stream.flush()
