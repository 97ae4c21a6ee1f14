"""The watchdog's view of the service's resources: the shared samplers, retargeted at every start.

One `SampleLoop` (the same samplers `vvbench run` uses: process tree, system CPU, NVML,
`/v1/stats`) is built for the current PID and URL and ticked by the supervisor's work loop — never
on a thread of its own, so a stalled loop is visible. Rows taken while the service runs are kept
in a bounded window for the rules; the first reading of each memory source after ready is kept
as the base of growth thresholds (`+150MB`), and the thresholds it resolves are published for the
exporter.
"""

from __future__ import annotations

from collections import deque

import psutil

from vvbench.monitor.nvml import NvmlSampler
from vvbench.monitor.sampleloop import SampleLoop
from vvbench.monitor.samplers import ProcessTreeSampler, ServiceStatsSampler, SystemCpuSampler
from vvbench.monitor.watch.config import WatchConfig
from vvbench.monitor.watch.rules import memory_value

SOURCES = ("rss", "gpu")


class ServiceSampling:
    """Samplers of the current incarnation, its recent rows and its memory at ready."""

    def __init__(self, cfg: WatchConfig):
        self.cfg = cfg
        self.ram_total_bytes = psutil.virtual_memory().total
        keep = int(cfg.memory.trend.window * cfg.sample_hz) + max(cfg.memory.rss.consecutive, cfg.memory.gpu.consecutive) + 10
        self.window: deque[dict] = deque(maxlen=keep)
        self.latest: dict | None = None
        self.at_ready: dict[str, float] = {}
        self.limits_bytes: dict[str, float] = {}
        self.loop: SampleLoop | None = None

    def retarget(self, pid: int | None, url: str | None, new_incarnation: bool) -> None:
        """Sample `pid` and `url` from now on (a new incarnation also forgets the old rows)."""
        self.close()
        samplers = [ProcessTreeSampler(pid), SystemCpuSampler(), NvmlSampler(pid)]
        if self.cfg.sample_stats:
            timeout = min(1.0, 0.5 / self.cfg.sample_hz + 0.25)  # a hung service must not stall the work loop
            samplers.append(ServiceStatsSampler(url, self.cfg.api_key, timeout_s=timeout))
        self.loop = SampleLoop(samplers, hz=self.cfg.sample_hz)
        if new_incarnation:
            self.window.clear()
            self.at_ready.clear()

    def tick(self, running: bool) -> dict | None:
        """One reading now; kept for the rules when the service is running."""
        if self.loop is None:
            return None
        self.latest = self.loop.tick()
        if running:
            self.window.append(self.latest)
            self._note_memory(self.latest)
        return self.latest

    def _note_memory(self, row: dict) -> None:
        limits = {}
        for source in SOURCES:
            used, total = memory_value(row, source, self.ram_total_bytes)
            if source not in self.at_ready and used is not None:
                self.at_ready[source] = float(used)
            limit = getattr(self.cfg.memory, source).max
            if limit is not None:
                limits[source] = limit.resolve(total, self.at_ready.get(source))
        self.limits_bytes = {k: v for k, v in limits.items() if v is not None}

    def close(self) -> None:
        if self.loop is not None:
            for s in self.loop.samplers:
                s.close()
            self.loop = None
