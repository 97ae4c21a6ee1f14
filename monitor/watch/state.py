"""The watchdog's observable state: what the exporter reads at scrape time.

The supervisor's loop writes it, the metrics server's thread reads `snapshot()`; both go through
one lock, and every counter's keys exist from the start (restart reasons, canary checks), so a
dashboard sees zeros, not missing series, before the first restart.
"""

from __future__ import annotations

import copy
import threading
from collections import Counter
from dataclasses import dataclass, field

from vvbench.monitor.watch.canary import CANARY_CHECKS
from vvbench.monitor.watch.rules import RESTART_REASONS, Phase


@dataclass
class WatchState:
    """Counters and last values of one watchdog (see the module docstring)."""

    phase: Phase = Phase.STARTING
    service_up: bool = False
    started_t: float | None = None
    restarts: Counter = field(default_factory=lambda: Counter({r: 0 for r in RESTART_REASONS}))
    health_probes: Counter = field(default_factory=lambda: Counter({"ok": 0, "failed": 0}))
    canaries: Counter = field(default_factory=lambda: Counter({"passed": 0, "failed": 0}))
    canary_failures: Counter = field(default_factory=lambda: Counter({c: 0 for c in CANARY_CHECKS}))
    canary_checks: dict = field(default_factory=dict)
    canary_snr_db: float | None = None
    canary_baseline_snr_db: float | None = None
    canary_latency_s: float | None = None
    canary_last_t: float | None = None
    limits_bytes: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def update(self, **values) -> None:
        with self._lock:
            for k, v in values.items():
                setattr(self, k, v)

    def count(self, counter: str, key: str, n: int = 1) -> None:
        with self._lock:
            getattr(self, counter)[key] += n

    def record_canary(self, result) -> None:
        """Fold one canary result into the counters and last values."""
        with self._lock:
            self.canaries["passed" if result.ok else "failed"] += 1
            for check in result.failed:
                self.canary_failures[check] += 1
            self.canary_checks = dict(result.checks)
            self.canary_snr_db = result.snr_db
            self.canary_baseline_snr_db = result.baseline_snr_db
            self.canary_latency_s = result.latency_s
            self.canary_last_t = result.t

    def snapshot(self) -> WatchState:
        """A consistent copy for a scrape."""
        with self._lock:
            return copy.copy(self)._copied()

    def _copied(self) -> WatchState:
        for name in ("restarts", "health_probes", "canaries", "canary_failures"):
            setattr(self, name, Counter(getattr(self, name)))
        self.canary_checks = dict(self.canary_checks)
        self.limits_bytes = dict(self.limits_bytes)
        self._lock = threading.Lock()
        return self
