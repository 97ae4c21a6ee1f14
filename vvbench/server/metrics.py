"""Prometheus metrics of the service, on the app's own registry.

Two kinds: counters and histograms the service updates as requests happen (HTTP requests by
route and status, synthesis outcomes, time to first audio, audio seconds delivered, admission
rejections), and an `EngineCollector` that reads `Engine.stats()` at scrape time (queue depth,
active streams, batch sizes as a histogram, per-stage seconds, frames, memory and allocator
bytes, stall and hang state) plus the jobs table's counts. Nothing is pushed by a thread.
Names follow Prometheus conventions (base units, `_total` on counters) and pass
`promtool check metrics`. `/metrics` is served by a route (not a mounted app, which redirects).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from vvbench import __version__

TTFA_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 180.0, 600.0, 3600.0)
_MEMORY = {
    "weights_bytes": "model weights",
    "kv_cache_bytes": "KV caches of the active streams",
    "conv_cache_bytes": "streaming conv caches of every slot",
    "leak_bytes": "memory held by the leak fault",
    "cuda_allocated_bytes": "CUDA allocator: allocated",
    "cuda_reserved_bytes": "CUDA allocator: reserved",
    "cuda_max_allocated_bytes": "CUDA allocator: peak allocated",
}


class EngineCollector:
    """Engine and jobs figures computed at scrape time from `Engine.stats()` and the job store."""

    def __init__(self, service):
        self.service = service

    def describe(self):
        return []  # nothing to compute at registration

    def collect(self):
        svc = self.service
        yield GaugeMetricFamily("vvbench_service_ready", "1 once the model is loaded and warmed", value=float(svc.ready))
        yield GaugeMetricFamily("vvbench_service_draining", "1 while shutting down", value=float(svc.draining))
        yield GaugeMetricFamily("vvbench_service_active_streams", "HTTP synthesis responses in progress", value=svc.active_streams)
        if svc.jobs is not None:
            jobs = GaugeMetricFamily("vvbench_jobs", "Long-form jobs by state", labels=["state"])
            counts = svc.jobs.counts()
            for state, n in counts.items():
                if state != "streams":
                    jobs.add_metric([state], n)
            yield jobs
            yield GaugeMetricFamily("vvbench_job_streams", "Engine slots held by jobs", value=counts.get("streams", 0))
        engine = svc.engine
        if engine is None:
            return
        stats = engine.stats()
        info = GaugeMetricFamily("vvbench_build_info", "Version, preset and device", labels=["version", "preset", "device"])
        info.add_metric([__version__, stats["preset"], stats["device"]], 1)
        yield info
        yield from self._engine(stats)

    def _engine(self, stats: dict):
        for key, help_text in (("queue_depth", "Requests waiting for an engine slot"),
                               ("active_streams", "Streams holding an engine slot"),
                               ("prefilling_streams", "Streams still prefilling their prompt"),
                               ("max_batch", "Engine slots")):
            yield GaugeMetricFamily(f"vvbench_engine_{key}", help_text, value=stats[key])
        yield CounterMetricFamily("vvbench_engine_steps", "Frame steps run", value=stats["steps"])
        yield CounterMetricFamily("vvbench_engine_frames", "Frames produced over all streams", value=stats["frames"])
        yield CounterMetricFamily("vvbench_engine_audio_seconds", "Audio produced", value=stats["audio_s"])
        reqs = CounterMetricFamily("vvbench_engine_requests", "Requests the engine ended, by outcome", labels=["outcome"])
        for outcome, n in sorted(stats["requests"].items()):
            reqs.add_metric([outcome], n)
        yield reqs
        stages = CounterMetricFamily("vvbench_engine_stage_seconds", "Engine time per stage", labels=["stage"])
        for stage, sec in stats["stage_s"].items():
            stages.add_metric([stage], sec)
        yield stages
        yield self._batch_histogram(stats["batch_sizes"], stats["max_batch"])
        for key, help_text in _MEMORY.items():
            if stats.get(key) is not None:
                yield GaugeMetricFamily(f"vvbench_engine_{key}", f"Bytes: {help_text}", value=stats[key])
        yield GaugeMetricFamily("vvbench_engine_stalled_seconds", "Seconds without progress while work waits", value=stats["stalled_s"])
        yield GaugeMetricFamily("vvbench_engine_hung", "1 when the hang fault stopped the engine loop", value=float(bool(stats["hung"])))
        yield GaugeMetricFamily("vvbench_engine_uptime_seconds", "Seconds since the engine started", value=stats["uptime_s"])

    @staticmethod
    def _batch_histogram(sizes: dict[str, int], max_batch: int) -> HistogramMetricFamily:
        bounds = sorted({b for b in (1, 2, 4, 8, 16, 32, 64, 128, 256) if b < max_batch} | {max_batch})
        counts = {int(k): v for k, v in sizes.items()}
        buckets = [(str(float(b)), sum(n for s, n in counts.items() if s <= b)) for b in bounds]
        buckets.append(("+Inf", sum(counts.values())))
        total = float(sum(s * n for s, n in counts.items()))
        return HistogramMetricFamily("vvbench_engine_batch_size", "Streams stepped together per frame step",
                                     buckets=buckets, sum_value=total)


class ServiceMetrics:
    """The service's metrics on its own registry (a test or a second app gets a fresh one)."""

    def __init__(self, service, registry: CollectorRegistry | None = None):
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.http_requests = Counter("vvbench_http_requests", "HTTP requests by route, method and status",
                                     ["route", "method", "status"], registry=r)
        self.http_duration = Histogram("vvbench_http_request_duration_seconds", "HTTP request duration, to the last byte",
                                       ["route"], buckets=DURATION_BUCKETS, registry=r)
        self.synthesis = Counter("vvbench_synthesis_requests", "Synthesis requests by kind and outcome",
                                 ["kind", "outcome"], registry=r)
        self.synthesis_duration = Histogram("vvbench_synthesis_duration_seconds", "Synthesis time, request to last audio",
                                            ["kind"], buckets=DURATION_BUCKETS, registry=r)
        self.ttfa = Histogram("vvbench_speech_ttfa_seconds", "Time from request to first audio sent",
                              buckets=TTFA_BUCKETS, registry=r)
        self.audio = Counter("vvbench_audio_delivered_seconds", "Audio delivered to clients or persisted for jobs",
                             ["kind"], registry=r)
        self.job_audio = self.audio.labels(kind="job")
        self.rejections = Counter("vvbench_admission_rejections", "Requests refused by admission control, by reason",
                                  ["reason"], registry=r)
        r.register(EngineCollector(service))
        ProcessCollector(registry=r)

    def observe_synthesis(self, kind: str, outcome: str, ttfa_s: float | None, duration_s: float, audio_s: float) -> None:
        """Record one finished synthesis (speech response or job)."""
        self.synthesis.labels(kind=kind, outcome=outcome).inc()
        if outcome == "ok":
            self.synthesis_duration.labels(kind=kind).observe(duration_s)
            if ttfa_s is not None:
                self.ttfa.observe(ttfa_s)
        if audio_s:
            self.audio.labels(kind=kind).inc(audio_s)

    def observe_http(self, route: str, method: str, status: int, duration_s: float) -> None:
        self.http_requests.labels(route=route, method=method, status=str(status)).inc()
        self.http_duration.labels(route=route).observe(duration_s)

    def exposition(self) -> bytes:
        """The text exposition format of every metric."""
        return generate_latest(self.registry)
