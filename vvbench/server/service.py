"""The service's state: the engine's lifecycle, readiness, draining, and the service counters.

The engine is built and warmed in a background thread when the app starts, so the HTTP port is
open (and `/healthz` answers) while a large model loads; synthesis answers 503 with Retry-After
until then, and `/readyz` turns 200 once the warm-up request has finished. Jobs may be accepted
while loading: they are persisted and start when the engine is ready. The warm-up request counts
as one finished request for the `crash_after_requests` / `hang_after_requests` faults.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter

from vvbench.runtime.config import RuntimeConfig
from vvbench.server.admission import MemoryGuard, RateLimiter
from vvbench.server.engine import SpeechEngine
from vvbench.server.errors import unavailable
from vvbench.server.settings import ServiceSettings

log = logging.getLogger("vvbench.server")

MAX_MODEL_NAMES = 64


class Service:
    """Everything the route handlers share; one per app."""

    def __init__(self, config: RuntimeConfig, settings: ServiceSettings, engine: SpeechEngine | None = None):
        self.config = config
        self.settings = settings
        self.engine: SpeechEngine | None = None
        self._given = engine  # an engine the caller built and owns (tests, embedding): warmed, never closed
        self.ready = False
        self.draining = False
        self.load_error: str | None = None
        self.started_at = time.time()
        self.ready_at: float | None = None
        self.active_streams = 0
        self.outcomes: Counter = Counter()
        self.models: Counter = Counter()
        self.rejections: Counter = Counter()
        self.limiter = RateLimiter(settings.rate_limit_rps, settings.burst()) if settings.rate_limit_rps else None
        self.guard = MemoryGuard(settings.memory_guard) if settings.memory_guard else None
        self._lock = threading.Lock()
        self.jobs = None  # JobRunner, set by the app
        self.metrics = None  # ServiceMetrics, set by the app

    # -- lifecycle ------------------------------------------------------------------------
    def load_and_warm(self) -> None:
        """Build the engine and run the warm-up request (blocking; run it in a thread)."""
        t0 = time.perf_counter()
        try:
            if self._given is not None:
                engine = self._given
            else:
                from vvbench.runtime.engine import Engine

                engine = Engine(self.config, memory_budget_bytes=self.memory_budget_bytes())
            self.engine = engine
            log.info("model %s loaded in %.1f s; warming up", self.config.preset, time.perf_counter() - t0)
            engine.warmup()
        except Exception as exc:  # noqa: BLE001 - reported by /readyz and /healthz, not raised into the loop
            log.exception("engine failed to start")
            self.load_error = f"{type(exc).__name__}: {exc}"
            return
        self.ready = True
        self.ready_at = time.time()
        log.info("ready in %.1f s", time.perf_counter() - t0)

    def memory_budget_bytes(self) -> int | None:
        """Bytes the engine this service builds admits against (`ServiceSettings.admission_limit`)."""
        limit = self.settings.admission_limit()
        if limit is None:
            return None
        if limit.limit_bytes is not None:
            return limit.limit_bytes
        from vvbench.runtime.memory_budget import device_memory_bytes
        from vvbench.runtime.offload import resolve_placement

        return int((limit.fraction or 1.0) * device_memory_bytes(resolve_placement(self.config).device))

    async def start(self) -> None:
        """Load and warm in the background; start the job runner once ready."""
        await asyncio.to_thread(self.load_and_warm)
        if self.ready and self.jobs is not None and not self.draining:
            await self.jobs.start(self.engine)

    def begin_drain(self) -> None:
        """Stop admitting new work (SIGTERM received); in-flight requests go on."""
        if not self.draining:
            log.info("draining: new requests get 503, in-flight work goes on")
        self.draining = True
        if self.jobs is not None:
            self.jobs.pause()

    async def stop(self) -> None:
        """Persist jobs (they resume on the next start), then stop the engine."""
        self.draining = True
        if self.jobs is not None:
            await self.jobs.stop()
        if self.engine is not None and self._given is None:
            await asyncio.to_thread(self.engine.close)

    # -- what handlers ask ----------------------------------------------------------------
    def engine_failure(self) -> str | None:
        """Why the engine's loop stopped, when it stopped on a failure after starting; else None."""
        engine = self.engine
        if engine is not None and not engine.alive and engine.failure:
            return engine.failure
        return None

    def require_engine(self):
        """The engine, or a 503 (loading, failed, draining) the client may retry."""
        if self.draining:
            raise unavailable("the service is shutting down; try another instance or retry shortly", "draining", 5)
        if self.load_error is not None:
            raise unavailable(f"the engine failed to start: {self.load_error}", "engine_unavailable", 30)
        failure = self.engine_failure()
        if failure is not None:
            raise unavailable(f"{failure}; the service needs a restart", "engine_unavailable", 30)
        if self.engine is None or not self.ready:
            raise unavailable("the model is loading; retry shortly", "loading", 2)
        return self.engine

    def memory_over(self) -> str | None:
        """A message when memory use is over the guard, else None."""
        if self.guard is None or self.engine is None:
            return None
        device = str(self.engine.device)
        stats = self.engine.stats() if device.startswith("cuda") else None
        return self.guard.over(device, stats)

    def check_memory(self) -> None:
        """Raise 503 when memory use is over the guard."""
        message = self.memory_over()
        if message:
            self.count_rejection("memory_guard")
            raise unavailable(message, "memory_guard", 5)

    def count_rejection(self, reason: str) -> None:
        with self._lock:
            self.rejections[reason] += 1
        if self.metrics is not None:
            self.metrics.rejections.labels(reason=reason).inc()

    def record_model(self, model: str | None) -> None:
        """Count requests per `model` name (bounded; the rest count as `other`)."""
        name = model or "(none)"
        with self._lock:
            if name not in self.models and len(self.models) >= MAX_MODEL_NAMES:
                name = "other"
            self.models[name] += 1

    def record_outcome(self, outcome: str) -> None:
        with self._lock:
            self.outcomes[outcome] += 1

    def stream_opened(self) -> None:
        with self._lock:
            self.active_streams += 1

    def stream_closed(self) -> None:
        with self._lock:
            self.active_streams -= 1

    def health(self) -> tuple[bool, str]:
        """(healthy, why): the process is alive and the engine is not hung or dead."""
        if self.load_error is not None:
            return False, f"engine failed to start: {self.load_error}"
        engine = self.engine
        if engine is None:
            return True, "loading"
        if not engine.alive and (engine.failure or not self.draining):  # a drain stops it on purpose, a failure never is
            return False, engine.failure or "engine thread has stopped"
        stats = engine.stats()
        if stats.get("hung"):
            return False, "engine is hung (hang_after_requests fault)"
        if stats.get("stalled_s", 0.0) > self.settings.health_stall_s:
            return False, f"engine made no progress for {stats['stalled_s']:.0f} s with work waiting"
        return True, "ok"

    def service_stats(self) -> dict:
        """The service's own counters for /v1/stats."""
        with self._lock:
            out = {
                "ready": self.ready,
                "draining": self.draining,
                "load_error": self.load_error,
                "uptime_s": time.time() - self.started_at,
                "active_http_streams": self.active_streams,
                "outcomes": dict(self.outcomes),
                "rejections": dict(self.rejections),
                "models": dict(self.models),
                "short_first": self.settings.short_first,
                "max_job_streams": self.settings.job_streams(self.config.max_batch),
                "rate_limit_rps": self.settings.rate_limit_rps,
                "rate_burst": self.settings.burst() if self.settings.rate_limit_rps else None,
                "memory_guard": self.settings.memory_guard.model_dump() if self.settings.memory_guard else None,
                "memory_budget": self.settings.memory_budget.model_dump() if self.settings.memory_budget else None,
            }
        if self.jobs is not None:
            out["jobs"] = self.jobs.counts()
        return out
