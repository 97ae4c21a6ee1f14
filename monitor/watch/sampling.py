"""The watchdog's view of the service's resources: the shared samplers, retargeted at every start.

One `SampleLoop` (the same samplers `vvbench run` uses: process tree, system CPU, NVML,
`/v1/stats`) is built for the current PID and URL and ticked by the supervisor's work loop — never
on a thread of its own, so a stalled loop is visible. Rows taken while the service runs are kept
in a bounded window for the rules; the first reading of each memory source once the service has
settled (`memory.settle` after ready: the warm-up's growth is not the leak a growth limit is
about) is kept as the base of growth thresholds (`+150MB`), and the thresholds it resolves are
published for the exporter.
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


def rows_kept(cfg: WatchConfig) -> int:
    """How many recent rows the rules need: the trend's window, or the threshold rules' run, with room to spare."""
    return int(cfg.memory.trend.window * cfg.sample_hz) + max(cfg.memory.rss.consecutive, cfg.memory.gpu.consecutive) + 10


class SettledMemory:
    """The first reading of each memory source taken `settle_s` after ready or later: the base of growth limits."""

    def __init__(self, settle_s: float, ram_total_bytes: int | None):
        self.settle_s = settle_s
        self.ram_total_bytes = ram_total_bytes
        self.bytes: dict[str, float] = {}

    def note(self, row: dict, ready_t: float | None) -> None:
        """Keep `row`'s reading of each source still without a base, once the service has settled."""
        if ready_t is None or row.get("t") is None or row["t"] < ready_t + self.settle_s:
            return
        for source in SOURCES:
            used, _ = memory_value(row, source, self.ram_total_bytes)
            if source not in self.bytes and used is not None:
                self.bytes[source] = float(used)

    def clear(self) -> None:
        self.bytes.clear()


class ServiceSampling:
    """Samplers of the current incarnation, its recent rows and its settled memory."""

    def __init__(self, cfg: WatchConfig):
        self.cfg = cfg
        self.ram_total_bytes = psutil.virtual_memory().total
        self.window: deque[dict] = deque(maxlen=rows_kept(cfg))
        self.latest: dict | None = None
        self.baseline = SettledMemory(cfg.memory.settle, self.ram_total_bytes)
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
            self.baseline.clear()

    def tick(self, running: bool, ready_t: float | None = None) -> dict | None:
        """One reading now; kept for the rules when the service is running (ready since `ready_t`)."""
        if self.loop is None:
            return None
        self.latest = self.loop.tick()
        if running:
            self.window.append(self.latest)
            self.baseline.note(self.latest, ready_t)
            self._publish_limits(self.latest)
        return self.latest

    def _publish_limits(self, row: dict) -> None:
        limits = {}
        for source in SOURCES:
            _, total = memory_value(row, source, self.ram_total_bytes)
            limit = getattr(self.cfg.memory, source).max
            if limit is not None:
                limits[source] = limit.resolve(total, self.baseline.bytes.get(source))
        self.limits_bytes = {k: v for k, v in limits.items() if v is not None}

    def close(self) -> None:
        if self.loop is not None:
            for s in self.loop.samplers:
                s.close()
            self.loop = None
