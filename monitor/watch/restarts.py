"""When to restart and how long to wait: exponential backoff and the crash-loop guard, as plain arithmetic.

- The n-th restart in a row waits `backoff × factor^(n−1)`, at most `backoff_max`, before the
  service starts again. "In a row" ends once the service has stayed ready for `stable` seconds.
- The crash-loop guard: when a restart is needed and `crash_loop.restarts` restarts already
  happened within the last `crash_loop.window` seconds, there is no restart — the watchdog gives up.

No clock inside: every method takes `now`, so the policy is tested with plain numbers.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from vvbench.monitor.watch.config import Restart


@dataclass(frozen=True)
class RestartDecision:
    """Whether to restart, and if so which restart in a row it is and how long to wait first."""

    allowed: bool
    attempt: int
    backoff_s: float
    recent_restarts: int
    window_s: float


class RestartPolicy:
    """Backoff and crash-loop accounting over the watchdog's life (see the module docstring)."""

    def __init__(self, cfg: Restart):
        self.cfg = cfg
        self.times: deque[float] = deque(maxlen=cfg.crash_loop.restarts + 1)
        self.in_a_row = 0

    def decide(self, now: float) -> RestartDecision:
        """Decide on a restart needed at `now`; an allowed restart is recorded."""
        window = self.cfg.crash_loop.window
        recent = sum(1 for t in self.times if now - t <= window)
        if recent >= self.cfg.crash_loop.restarts:
            return RestartDecision(False, self.in_a_row, 0.0, recent, window)
        self.times.append(now)
        self.in_a_row += 1
        backoff = min(self.cfg.backoff_max, self.cfg.backoff * self.cfg.backoff_factor ** (self.in_a_row - 1))
        return RestartDecision(True, self.in_a_row, backoff, recent + 1, window)

    def running(self, now: float, ready_t: float | None) -> None:
        """The service is running: once it has been ready for `stable` seconds, the backoff starts over."""
        if self.in_a_row and ready_t is not None and now - ready_t >= self.cfg.stable:
            self.in_a_row = 0
