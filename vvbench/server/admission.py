"""Admission control: who gets in, in what order, and who is told to come back later.

The bounded priority queue itself is the engine's (`max_queue` pending requests, ordered by
priority then arrival; over it `submit` raises CapacityError -> 503 with Retry-After). This
module decides what goes into it:

- **short-first**: streaming requests get priority 0 and long-form jobs priority 1, and jobs
  hold at most `max_job_streams` slots, so a 90-minute job never takes the slots that short
  interactive requests need. With short-first off (`--no-short-first`) everything is priority 0
  (one FIFO queue) and jobs may hold every slot — the baseline the benchmark compares against.
- **memory guard**: new work is refused (503) while memory use is over the guard.
- **rate limit**: a token bucket per API key, or per client address without a key (429).
- **timeouts**: streaming requests carry the engine's `request_timeout_s` (queue + synthesis);
  jobs carry none (a long-form job runs longer than any sensible request timeout).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

import psutil

from vvbench.server.settings import MemoryLimit

STREAM_PRIORITY = 0
JOB_PRIORITY = 1
MAX_BUCKETS = 10_000


class TokenBucket:
    """`rate` tokens per second up to `burst`; `take()` says whether a request may go now."""

    def __init__(self, rate: float, burst: int, now: float | None = None):
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = time.monotonic() if now is None else now

    def take(self, now: float | None = None) -> tuple[bool, float]:
        """(allowed, seconds until a token is available when not allowed)."""
        now = time.monotonic() if now is None else now
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True, 0.0
        return False, (1.0 - self.tokens) / self.rate

    def full(self, now: float) -> bool:
        return self.tokens + (now - self.stamp) * self.rate >= self.burst


class RateLimiter:
    """Token buckets keyed by API key or client address (bounded: full buckets are forgotten first)."""

    def __init__(self, rate: float, burst: int):
        self.rate = rate
        self.burst = burst
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, key: str) -> tuple[bool, float]:
        """(allowed, retry_after_s) for one request from `key`."""
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, now)
                self._evict(now)
            self._buckets.move_to_end(key)
            return bucket.take(now)

    def _evict(self, now: float) -> None:
        while len(self._buckets) > MAX_BUCKETS:
            key, bucket = next(iter(self._buckets.items()))
            if not bucket.full(now) and len(self._buckets) < 2 * MAX_BUCKETS:
                break  # the oldest is still limited: keep it rather than reset its bucket
            self._buckets.pop(key)


class MemoryGuard:
    """Is memory use over the guard? CPU: process RSS vs bytes or a share of RAM; CUDA: reserved bytes."""

    def __init__(self, limit: MemoryLimit):
        self.limit = limit
        self._process = psutil.Process()

    def usage(self, device: str | None = None, engine_stats: dict | None = None) -> tuple[int, int, str]:
        """(bytes used, limit in bytes, what was measured)."""
        if device and device.startswith("cuda") and engine_stats and engine_stats.get("cuda_reserved_bytes") is not None:
            import torch

            total = torch.cuda.get_device_properties(torch.device(device)).total_memory
            used = int(engine_stats["cuda_reserved_bytes"])
            what = "CUDA reserved memory"
        else:
            total = psutil.virtual_memory().total
            used = self._process.memory_info().rss
            what = "resident memory"
        limit = self.limit.limit_bytes if self.limit.limit_bytes is not None else int(total * (self.limit.fraction or 1.0))
        return used, limit, what

    def over(self, device: str | None = None, engine_stats: dict | None = None) -> str | None:
        """A message when over the guard, else None."""
        used, limit, what = self.usage(device, engine_stats)
        if used > limit:
            return f"{what} {used / 2**20:.0f} MiB is over the memory guard of {limit / 2**20:.0f} MiB; try again later"
        return None


def request_priority(short_first: bool, *, job: bool) -> int:
    """Engine priority of a streaming request or a job (lower runs first)."""
    return JOB_PRIORITY if job and short_first else STREAM_PRIORITY
