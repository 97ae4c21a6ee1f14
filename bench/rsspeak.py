"""Peak resident memory of the current process, sampled by a thread (the memory benchmarks' children use it).

A child starts `PeakRSS()` after its baseline; `peak` is the largest RSS seen since, sampled every
`period_s` (20 ms: short enough to catch an allocation burst, cheap enough not to disturb it).
"""

from __future__ import annotations

import threading
import time

import psutil


class PeakRSS:
    """Samples this process's RSS in a daemon thread until `stop()`; `peak` is the largest seen."""

    def __init__(self, period_s: float = 0.02):
        self._proc = psutil.Process()
        self.base = self._proc.memory_info().rss
        self.peak = self.base
        self._period_s = period_s
        self._stop = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            time.sleep(self._period_s)

    def current(self) -> int:
        """RSS now."""
        return self._proc.memory_info().rss

    def stop(self) -> int:
        """Stop sampling; returns the peak."""
        self._stop.set()
        time.sleep(2 * self._period_s)
        return self.peak
