"""The sampling loop: every sampler at a fixed rate on one thread, rows on the run's epoch clock.

Each tick produces one row: `t` (epoch seconds, `time.time()`, the same clock as the request
rows' `t_start`), every sampler's columns, and `sample_cpu_s`, the CPU time the tick itself
took on this thread (so every run records what its own sampling cost). Ticks are scheduled on a
fixed grid (`t0 + k / hz`); a tick that overruns skips the grid points it missed rather than
bunching up. The loop is bounded: `max_rows` (default: 24 hours' worth) and `stop()`.

pandas is imported only by `frame()` (a run writes `loop.rows` through the samples schema,
`vvbench.artifacts.schemas`): the watchdog ticks the same samplers through
`tick()` for days and never builds a frame, and pandas would triple its resident memory.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from vvbench.monitor.samplers import Sampler

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_HZ = 5.0


class SampleLoop:
    """Runs samplers at `hz` until stopped; `frame()` gives the rows as a DataFrame."""

    def __init__(self, samplers: Sequence[Sampler], hz: float = DEFAULT_HZ, max_rows: int | None = None):
        if hz <= 0:
            raise ValueError("hz must be positive")
        self.samplers = list(samplers)
        self.hz = hz
        self.max_rows = max_rows or int(24 * 3600 * hz)
        self.rows: list[dict] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def columns(self) -> list[str]:
        return ["t", *[c for s in self.samplers for c in s.columns], "sample_cpu_s"]

    def tick(self) -> dict:
        """One row now (also usable without the thread)."""
        c0 = time.thread_time()
        row: dict = {"t": time.time()}
        for s in self.samplers:
            row.update(s.sample())
        row["sample_cpu_s"] = time.thread_time() - c0
        return row

    def _run(self) -> None:
        period = 1.0 / self.hz
        t0 = time.monotonic()
        k = 0
        while not self._stop.is_set() and len(self.rows) < self.max_rows:
            self.rows.append(self.tick())
            k = max(k + 1, int((time.monotonic() - t0) / period) + 1)
            self._stop.wait(max(0.0, t0 + k * period - time.monotonic()))

    def start(self) -> SampleLoop:
        self._thread = threading.Thread(target=self._run, name="vvbench-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for s in self.samplers:
            s.close()

    @property
    def notes(self) -> list[str]:
        return [n for s in self.samplers for n in s.notes]

    def frame(self) -> pd.DataFrame:
        """The rows so far (a snapshot), with every column present."""
        import pandas as pd

        return pd.DataFrame(list(self.rows), columns=self.columns)
