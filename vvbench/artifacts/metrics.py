"""Metric definitions as data: the one table of what a run reports, and the SLOs written over it.

`METRICS` holds each metric's name, unit, direction (`lower` / `higher` is better, `info` has no
direction), source column and rows, aggregation, SLO form and display group. Everything that
names a metric reads this table: the summary computation (`vvbench.reports.summary`), the SLO
checks, the terminal view, the Markdown/HTML summary, the exporter where it shows the same
quantity, and the tuner's objectives and the compare gate; a test fails if any of them names a
metric that is not here. Adding a metric is adding a row (and, for a new aggregation, its
function in `vvbench.reports.summary`). This module is data: no pandas, nothing computed here (what
"audible" means comes from `vvbench.core.audio`, where the load generator's detector reads it).

Definitions (DESIGN.md section 6):
- latency percentiles (`ttfa_*`, `ttfb_*`, `e2e_*`, `rtf_*`, `max_stall_p95_s`) are computed over
  the successful measured rows only (never warm-up, never failed requests), from raw values
  (linear interpolation), never averaged across workers;
- `rtf = e2e_s / audio_s` per request (RTFx = 1 / rtf);
- continuity `c50/c100/c200` = share of successful requests whose `max_stall_s` <= 50/100/200 ms;
- `success` = ok rows / all measured rows (a run without measured rows has no success value);
- `throughput_rps` and `audio_s_per_s` divide by the measured window (the scenario duration):
  requests that started in it count even when they finished after it;
- `goodput_rps` = successful requests meeting every per-request SLO, per second of the window;
- `cpu_idle_inflight` = mean system CPU idle share over the samples taken while at least one
  request was in flight; `peak_*` are maxima over the samples of the run.

SLOs: `METRIC[_min|_max]: threshold` (`ttfa_p95_s: 5.5`, `rtf_p95_max: 1.0`, `success_min: 0.99`,
`underrun_c100_min: 0.99`). Without a suffix the metric's direction decides (a `lower` metric is a
maximum, a `higher` one a minimum); `info` metrics need a suffix. A metric's `per_request` form
turns its SLO into a per-request condition for goodput: `ttfa_p95_s: 5` -> `ttfa_s <= 5`,
`c100_min: 0.99` -> `max_stall_s <= 0.1`; SLOs without one (memory, success share) do not filter
goodput.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

from vvbench.core.audio import AUDIBLE

RTF_FORMULA = "rtf = e2e_s / audio_s (RTFx = 1 / rtf); below 1 is faster than real time"
PERCENTILE_METHOD = "linear interpolation between closest ranks (numpy's default), over raw per-request values"
Direction = Literal["lower", "higher", "info"]
Rows = Literal["ok", "measured", "samples"]
# display groups, in the order summaries show them
GROUPS = ("latency", "continuity", "reliability", "throughput", "memory", "cpu", "load")


@dataclass(frozen=True)
class Metric:
    """One reported figure: where it comes from, how it is aggregated, which way is better."""

    name: str
    unit: str  # s, x (a ratio), share (0..1), count, req/s, s/s, B
    direction: Direction
    aggregation: str  # p50 | p95 | p99 | share_le:<limit> | count | count_per_s | sum_per_s | max | mean_inflight | success | goodput
    rows: Rows  # which rows the aggregation reads: successful measured, all measured, or the samples
    column: str | None  # the source column of requests.parquet or samples.parquet (None: the rows themselves)
    group: str  # one of GROUPS
    description: str
    # goodput form of an SLO on it: "<column><=" (each request's column under the SLO's threshold)
    # or "<column><=<limit>" (a share metric: each request's column under a fixed limit)
    per_request: str | None = None
    summary: bool = True  # shown in the run summaries (terminal, Markdown, HTML)

    @property
    def better(self) -> str:
        """`lower is better`, `higher is better`, or `` for info metrics."""
        return "" if self.direction == "info" else f"{self.direction} is better"

    def request_condition(self, op: str, threshold: float) -> tuple[str, float] | None:
        """(column, max value) an SLO `op threshold` on this metric puts on each request, or None."""
        # only an SLO that bounds the metric on its bad side says something about each request
        if self.per_request is None or op != {"lower": "<=", "higher": ">="}.get(self.direction):
            return None
        column, _, limit = self.per_request.partition("<=")
        return column, float(limit) if limit else threshold


def _latency(column: str, label: str, unit: str = "s") -> list[Metric]:
    base = column.removesuffix("_s")
    suffix = "_s" if unit == "s" else ""
    return [Metric(f"{base}_p{q}{suffix}", unit, "lower", f"p{q}", "ok", column, "latency", f"{label}, {q}th percentile",
                   per_request=f"{column}<=")
            for q in (50, 95, 99)]


def _continuity(ms: int) -> Metric:
    limit = ms / 1000
    return Metric(f"c{ms}", "share", "higher", f"share_le:{limit:g}", "ok", "max_stall_s", "continuity",
                  f"share of successful requests whose longest stall <= {ms} ms", per_request=f"max_stall_s<={limit:g}")


METRICS: tuple[Metric, ...] = (
    *_latency("ttfa_s", f"time to first audible audio (first {AUDIBLE})"),
    *_latency("ttfb_s", "time to first body byte"),
    *_latency("e2e_s", "time to last byte"),
    *_latency("rtf", "real-time factor e2e_s / audio_s", unit="x"),
    Metric("max_stall_p95_s", "s", "lower", "p95", "ok", "max_stall_s", "continuity",
           "longest playback stall per request, 95th percentile", per_request="max_stall_s<="),
    _continuity(50), _continuity(100), _continuity(200),
    Metric("requests", "count", "info", "count", "measured", None, "reliability", "measured requests (warm-up excluded), failed ones included"),
    Metric("ok", "count", "info", "count", "ok", None, "reliability", "successful measured requests", summary=False),
    Metric("success", "share", "higher", "success", "measured", None, "reliability", "successful / measured requests"),
    Metric("throughput_rps", "req/s", "higher", "count_per_s", "ok", None, "throughput", "successful requests per second of the measured window"),
    Metric("goodput_rps", "req/s", "higher", "goodput", "ok", None, "throughput", "successful requests meeting every per-request SLO, per second"),
    Metric("audio_s_per_s", "s/s", "higher", "sum_per_s", "ok", "audio_s", "throughput", "seconds of audio delivered per second of the window"),
    Metric("peak_rss_bytes", "B", "lower", "max", "samples", "rss_bytes", "memory", "service process tree resident memory, peak"),
    Metric("peak_gpu_bytes", "B", "lower", "max", "samples", "gpu_mem_used_bytes", "memory", "GPU memory in use, peak (NA without NVML)"),
    Metric("cpu_idle_inflight", "share", "info", "mean_inflight", "samples", "sys_cpu_idle", "cpu", "system CPU idle share while requests were in flight"),
    Metric("host_other_cpu", "cores", "info", "mean_inflight", "samples", "host_other_cpu", "cpu",
           "CPU cores the host spent on other processes (not the service, the load generator or vvbench) while requests were in flight"),
    Metric("iowait_inflight", "share", "info", "mean_inflight", "samples", "sys_cpu_iowait", "cpu", "system CPU iowait share while requests were in flight", summary=False),
    Metric("send_lag_p95_s", "s", "lower", "p95", "measured", "lag_s", "load", "open loop: how late requests left after their scheduled time (load generator health)"),
    Metric("queue_depth_peak", "count", "info", "max", "samples", "queue_depth", "load", "service queue depth, maximum sampled", summary=False),
)
METRIC_BY_NAME = {m.name: m for m in METRICS}

# SLO key aliases used in DESIGN.md (`underrun_c100_min`) -> metric names.
SLO_ALIASES = {"underrun_c50": "c50", "underrun_c100": "c100", "underrun_c200": "c200"}


def metric(name: str) -> Metric:
    """The definition of `name` (KeyError naming the known metrics when there is none)."""
    try:
        return METRIC_BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; known: {', '.join(METRIC_BY_NAME)}") from None


def metric_table() -> list[dict]:
    """The definitions as plain dicts (what run.json records beside the values)."""
    return [asdict(m) for m in METRICS]


@dataclass(frozen=True)
class SLO:
    """One parsed objective: `metric op threshold`."""

    key: str  # as written in the scenario
    metric: str
    op: Literal["<=", ">="]
    threshold: float


def valid_slo_names() -> list[str]:
    """Every metric an SLO may name (suffix `_min`/`_max` optional)."""
    return [m.name for m in METRICS] + sorted(SLO_ALIASES)


def parse_slo(key: str, threshold: float) -> SLO:
    """`ttfa_p95_s` / `rtf_p95_max` / `underrun_c100_min` -> SLO; ValueError naming the valid metrics."""
    base, op = key, None
    for suffix, sym in (("_max", "<="), ("_min", ">=")):
        if key.endswith(suffix):
            base, op = key[: -len(suffix)], sym
    base = SLO_ALIASES.get(base, base)
    m = METRIC_BY_NAME.get(base)
    if m is None:
        raise ValueError(f"unknown metric {base!r}; SLOs name one of: {', '.join(valid_slo_names())} (optionally with _min or _max)")
    if op is None:
        if m.direction == "info":
            raise ValueError(f"{base} has no better direction; write {base}_min or {base}_max")
        op = "<=" if m.direction == "lower" else ">="
    if not math.isfinite(threshold):
        raise ValueError("threshold must be a finite number")
    return SLO(key=key, metric=base, op=op, threshold=float(threshold))
