"""The Prometheus exporter: collectors that compute every value when Prometheus scrapes.

Two collectors, each registered on the registry it is given (a test builds a fresh
`CollectorRegistry`; nothing is registered on the default one, whose registration would call
`collect()` — and NVML — at import):

- `MonitorCollector`: the sampler's readings of the service — process-tree RSS and CPU, system
  CPU idle and iowait, GPU memory used/total and utilisation per device, and per service process
  (`vvbench_monitor_*`). Its `row()` is the watchdog's latest sample (at most one sampling period
  old; `vvbench_monitor_sample_age_seconds` says how old) or, standalone (`vvbench monitor
  export`), a `ScrapeTimeSource` that ticks the samplers at the scrape. Per-device GPU readings
  come from NVML at the scrape itself.
- `WatchCollector`: the watchdog's own state (`vvbench_watch_*`): phase, restarts by reason,
  health probes, canary SNR and check results, events, the configured memory limits.

Names follow Prometheus conventions (base units, `_total` on counters, `_ratio` for 0..1 shares;
`promtool check metrics` is clean, see the tests). A reading that is not available (no GPU, a
process gone) is left out — the family is still declared, so dashboards and the name check see
it — rather than exported as NaN. The service's own `/metrics` uses `vvbench_service_*`,
`vvbench_engine_*` and friends; nothing here collides with them.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from vvbench.monitor import nvml
from vvbench.monitor.sampleloop import SampleLoop
from vvbench.monitor.watch.rules import Phase

# (name, type, help, labels): one table the collectors and their describe() read.
MONITOR_METRICS = [
    ("vvbench_monitor_service_up", "gauge", "1 when the service process runs and answers its health probe", []),
    ("vvbench_monitor_process_resident_memory_bytes", "gauge", "Resident memory of the service's process tree", []),
    ("vvbench_monitor_process_cpu_ratio", "gauge", "CPU use of the service's process tree in cores (1 = one core busy), since the previous sample", []),
    ("vvbench_monitor_processes", "gauge", "Processes in the service's process tree", []),
    ("vvbench_monitor_system_cpu_idle_ratio", "gauge", "Share of system CPU time idle since the previous sample", []),
    ("vvbench_monitor_system_cpu_iowait_ratio", "gauge", "Share of system CPU time waiting for I/O since the previous sample", []),
    ("vvbench_monitor_system_memory_total_bytes", "gauge", "Physical memory of the machine", []),
    ("vvbench_monitor_gpus", "gauge", "GPUs NVML reports (0 without NVML)", []),
    ("vvbench_monitor_gpu_memory_used_bytes", "gauge", "GPU memory in use (all processes)", ["gpu", "name"]),
    ("vvbench_monitor_gpu_memory_total_bytes", "gauge", "GPU memory in total", ["gpu", "name"]),
    ("vvbench_monitor_gpu_utilization_ratio", "gauge", "Share of time a kernel ran on the GPU", ["gpu", "name"]),
    ("vvbench_monitor_gpu_process_memory_used_bytes", "gauge", "GPU memory used by a process of the service", ["gpu", "pid"]),
    ("vvbench_monitor_sample_age_seconds", "gauge", "Age of the sample these readings come from", []),
]

# gauges that show one column of the samples schema as it is (the runs' `peak_*` and CPU metrics read the same columns)
SAMPLE_GAUGES = {
    "vvbench_monitor_process_resident_memory_bytes": "rss_bytes",
    "vvbench_monitor_processes": "procs",
    "vvbench_monitor_system_cpu_idle_ratio": "sys_cpu_idle",
    "vvbench_monitor_system_cpu_iowait_ratio": "sys_cpu_iowait",
}

WATCH_METRICS = [
    ("vvbench_watch_phase", "gauge", "1 for the phase the supervised service is in", ["phase"]),
    ("vvbench_watch_restarts", "counter", "Restarts by the watchdog, by reason", ["reason"]),
    ("vvbench_watch_service_start_time_seconds", "gauge", "When the current incarnation of the service started (epoch)", []),
    ("vvbench_watch_health_probes", "counter", "Health probes while running, by result", ["result"]),
    ("vvbench_watch_canaries", "counter", "Canary syntheses, by result", ["result"]),
    ("vvbench_watch_canary_failures", "counter", "Failed canary checks, by check", ["check"]),
    ("vvbench_watch_canary_check_passed", "gauge", "1 when the last canary passed the check, 0 when it failed (absent: not measured)", ["check"]),
    ("vvbench_watch_canary_snr_decibels", "gauge", "Blind SNR (WADA) of the last canary", []),
    ("vvbench_watch_canary_baseline_snr_decibels", "gauge", "Blind SNR of the first clean canary", []),
    ("vvbench_watch_canary_duration_seconds", "gauge", "Time the last canary synthesis took", []),
    ("vvbench_watch_last_canary_time_seconds", "gauge", "When the last canary ran (epoch)", []),
    ("vvbench_watch_events", "counter", "Watchdog events, by severity", ["severity"]),
    ("vvbench_watch_last_event_time_seconds", "gauge", "When the last watchdog event happened (epoch)", []),
    ("vvbench_watch_alerts_dropped", "counter", "Alerts dropped because too many were waiting for the alert command", []),
    ("vvbench_watch_memory_limit_bytes", "gauge", "Configured memory threshold, by source", ["source"]),
]


def _family(name: str, kind: str, help_text: str, labels: list[str]):
    if kind == "counter":
        return CounterMetricFamily(name, help_text, labels=labels)
    return GaugeMetricFamily(name, help_text, labels=labels)


def _families(table) -> dict:
    return {name: _family(name, kind, help_text, labels) for name, kind, help_text, labels in table}


def _ok(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


class ScrapeTimeSource:
    """Ticks a `SampleLoop`'s samplers when asked (one scrape at a time), for the standalone exporter."""

    def __init__(self, loop: SampleLoop):
        self.loop = loop
        self._lock = threading.Lock()

    def __call__(self) -> dict:
        with self._lock:  # samplers are not thread-safe, and scrapes may overlap
            return self.loop.tick()


class MonitorCollector:
    """Sampler readings at scrape time (see the module docstring)."""

    def __init__(self, row: Callable[[], dict | None], pids: Callable[[], set[int]] = set,
                 service_up: Callable[[], bool | None] | None = None, ram_total_bytes: int | None = None):
        self.row = row
        self.pids = pids
        self.service_up = service_up
        self.ram_total_bytes = ram_total_bytes

    def describe(self):
        return list(_families(MONITOR_METRICS).values())

    def collect(self):
        fam = _families(MONITOR_METRICS)
        row = self.row() or {}
        up = self.service_up() if self.service_up is not None else None
        if up is not None:
            fam["vvbench_monitor_service_up"].add_metric([], float(bool(up)))
        simple = {name: row.get(column) for name, column in SAMPLE_GAUGES.items()}
        simple["vvbench_monitor_system_memory_total_bytes"] = self.ram_total_bytes
        cpu = row.get("cpu_percent")
        simple["vvbench_monitor_process_cpu_ratio"] = cpu / 100.0 if _ok(cpu) else None
        if _ok(row.get("t")):
            simple["vvbench_monitor_sample_age_seconds"] = max(0.0, time.time() - row["t"])
        for name, value in simple.items():
            if _ok(value):
                fam[name].add_metric([], float(value))
        devices = nvml.read_devices(self.pids())
        fam["vvbench_monitor_gpus"].add_metric([], float(len(devices)))
        for d in devices:
            labels = [str(d.index), d.name or ""]
            for name, value in (("vvbench_monitor_gpu_memory_used_bytes", d.memory_used_bytes),
                                ("vvbench_monitor_gpu_memory_total_bytes", d.memory_total_bytes),
                                ("vvbench_monitor_gpu_utilization_ratio", d.utilization_ratio)):
                if _ok(value):
                    fam[name].add_metric(labels, float(value))
            for pid, used in sorted(d.processes.items()):
                fam["vvbench_monitor_gpu_process_memory_used_bytes"].add_metric([str(d.index), str(pid)], float(used))
        yield from fam.values()


class WatchCollector:
    """The watchdog's state at scrape time (see the module docstring)."""

    def __init__(self, state: Callable[[], object], events: object | None = None):
        self.state = state
        self.events = events

    def describe(self):
        return list(_families(WATCH_METRICS).values())

    def collect(self):
        fam = _families(WATCH_METRICS)
        s = self.state()
        for phase in Phase:
            fam["vvbench_watch_phase"].add_metric([phase.value], float(s.phase is phase))
        for reason, n in sorted(s.restarts.items()):
            fam["vvbench_watch_restarts"].add_metric([reason], float(n))
        for result, n in sorted(s.health_probes.items()):
            fam["vvbench_watch_health_probes"].add_metric([result], float(n))
        for result, n in sorted(s.canaries.items()):
            fam["vvbench_watch_canaries"].add_metric([result], float(n))
        for check, n in sorted(s.canary_failures.items()):
            fam["vvbench_watch_canary_failures"].add_metric([check], float(n))
        for check, ok in sorted(s.canary_checks.items()):
            if ok is not None:
                fam["vvbench_watch_canary_check_passed"].add_metric([check], float(ok))
        for name, value in (("vvbench_watch_service_start_time_seconds", s.started_t),
                            ("vvbench_watch_canary_snr_decibels", s.canary_snr_db),
                            ("vvbench_watch_canary_baseline_snr_decibels", s.canary_baseline_snr_db),
                            ("vvbench_watch_canary_duration_seconds", s.canary_latency_s),
                            ("vvbench_watch_last_canary_time_seconds", s.canary_last_t)):
            if _ok(value):
                fam[name].add_metric([], float(value))
        for source, limit in sorted(s.limits_bytes.items()):
            if _ok(limit):
                fam["vvbench_watch_memory_limit_bytes"].add_metric([source], float(limit))
        if self.events is not None:
            for severity, n in sorted(self.events.by_severity.items()):
                fam["vvbench_watch_events"].add_metric([severity], float(n))
            fam["vvbench_watch_alerts_dropped"].add_metric([], float(self.events.alerts_dropped))
            if self.events.last_t is not None:
                fam["vvbench_watch_last_event_time_seconds"].add_metric([], self.events.last_t)
        yield from fam.values()


def serve_metrics(registry: CollectorRegistry, port: int, host: str = "127.0.0.1"):
    """Serve `registry` at http://host:port/metrics on a thread (loopback unless told otherwise).

    Returns (server, port actually bound); `server.shutdown()` stops it.
    """
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server, server.server_port
