"""Metric definitions as data, and the summary of a run computed from its raw rows.

`METRICS` is the one table of what a run reports: name, unit, direction (`lower` / `higher` is
better, `info` has no direction), the aggregation that computes it and from which rows. The run
summary, the SLO checks, the report tables (and later the compare gate, the tuner objectives and
the exporter) all read this table; adding a metric is adding a row.

Definitions (DESIGN.md section 6):
- latency percentiles (`ttfa_*`, `ttfb_*`, `e2e_*`, `rtf_*`, `max_stall_p95_s`) are computed over
  the successful measured rows only (never warm-up, never failed requests), from raw values
  (numpy's linear interpolation), never averaged across workers;
- `rtf = e2e_s / audio_s` per request (RTFx = 1 / rtf);
- continuity `c50/c100/c200` = share of successful requests whose `max_stall_s` <= 50/100/200 ms;
- `success` = ok rows / all measured rows (a run without measured rows has no success value);
- `throughput_rps` and `audio_s_per_s` divide by the measured window (the scenario duration):
  requests that started in it count even when they finished after it;
- `goodput_rps` = successful requests meeting every per-request SLO, per second of the window.
  A percentile SLO on a per-request column becomes a per-request threshold (`ttfa_p95_s: 5`
  -> `ttfa_s <= 5`), a continuity SLO becomes `max_stall_s <= 0.1` and so on; SLOs with no
  per-request form (memory, success share) do not filter goodput;
- `cpu_idle_inflight` = mean system CPU idle share over the samples taken while at least one
  request was in flight; `peak_*` are maxima over the samples of the run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import pandas as pd

RTF_FORMULA = "rtf = e2e_s / audio_s (RTFx = 1 / rtf); below 1 is faster than real time"


@dataclass(frozen=True)
class Metric:
    """One reported figure: how it is computed and which way is better."""

    name: str
    unit: str
    direction: Literal["lower", "higher", "info"]
    aggregation: str  # a key of AGGREGATIONS, with an optional `:argument`
    rows: Literal["ok", "measured", "samples"]  # which rows the aggregation reads
    column: str | None
    description: str


def _pct(q: float) -> Callable:
    def agg(values: pd.Series, _arg: float | None, _ctx: dict) -> float:
        v = values.dropna().to_numpy(dtype=float)
        return float(np.percentile(v, q)) if len(v) else math.nan
    return agg


def _share_le(values: pd.Series, arg: float | None, _ctx: dict) -> float:
    v = values.to_numpy(dtype=float)
    return float(np.mean(np.nan_to_num(v, nan=math.inf) <= arg)) if len(v) else math.nan


def _count(values: pd.Series, _arg, _ctx) -> float:
    return float(len(values))


def _per_s(values: pd.Series, _arg, ctx: dict) -> float:
    window = ctx.get("window_s") or math.nan
    return math.nan if math.isnan(window) else float(values.dropna().sum()) / window


def _count_per_s(values: pd.Series, _arg, ctx: dict) -> float:
    window = ctx.get("window_s") or math.nan
    return math.nan if math.isnan(window) else len(values) / window


def _max(values: pd.Series, _arg, _ctx) -> float:
    v = values.dropna()
    return float(v.max()) if len(v) else math.nan


def _mean_inflight(values: pd.Series, _arg, ctx: dict) -> float:
    mask = ctx.get("inflight_mask")
    if mask is None or not len(values):
        return math.nan
    v = values[mask].dropna()
    return float(v.mean()) if len(v) else math.nan


AGGREGATIONS: dict[str, Callable] = {
    "p50": _pct(50), "p95": _pct(95), "p99": _pct(99), "share_le": _share_le, "count": _count,
    "sum_per_s": _per_s, "count_per_s": _count_per_s, "max": _max, "mean_inflight": _mean_inflight,
}


def _latency(col: str, label: str, unit: str = "s") -> list[Metric]:
    base = col.removesuffix("_s")
    suffix = "_s" if unit == "s" else ""
    return [Metric(f"{base}_p{q}{suffix}", unit, "lower", f"p{q}", "ok", col, f"{label}, {q}th percentile")
            for q in (50, 95, 99)]


METRICS: tuple[Metric, ...] = (
    *_latency("ttfa_s", "time to first audible audio (first 20 ms window above -50 dBFS)"),
    *_latency("ttfb_s", "time to first body byte"),
    *_latency("e2e_s", "time to last byte"),
    *_latency("rtf", "real-time factor e2e_s / audio_s", unit="x"),
    Metric("max_stall_p95_s", "s", "lower", "p95", "ok", "max_stall_s", "longest playback stall per request, 95th percentile"),
    Metric("c50", "share", "higher", "share_le:0.05", "ok", "max_stall_s", "share of successful requests whose longest stall <= 50 ms"),
    Metric("c100", "share", "higher", "share_le:0.1", "ok", "max_stall_s", "share of successful requests whose longest stall <= 100 ms"),
    Metric("c200", "share", "higher", "share_le:0.2", "ok", "max_stall_s", "share of successful requests whose longest stall <= 200 ms"),
    Metric("requests", "count", "info", "count", "measured", None, "measured requests (warm-up excluded), failed ones included"),
    Metric("ok", "count", "info", "count", "ok", None, "successful measured requests"),
    Metric("success", "share", "higher", "success", "measured", None, "successful / measured requests"),
    Metric("throughput_rps", "req/s", "higher", "count_per_s", "ok", None, "successful requests per second of the measured window"),
    Metric("goodput_rps", "req/s", "higher", "goodput", "ok", None, "successful requests meeting every per-request SLO, per second"),
    Metric("audio_s_per_s", "s/s", "higher", "sum_per_s", "ok", "audio_s", "seconds of audio delivered per second of the window"),
    Metric("send_lag_p95_s", "s", "lower", "p95", "measured", "lag_s", "open loop: how late requests left after their scheduled time (load generator health)"),
    Metric("peak_rss_bytes", "B", "lower", "max", "samples", "rss_bytes", "service process tree resident memory, peak"),
    Metric("peak_gpu_bytes", "B", "lower", "max", "samples", "gpu_mem_used_bytes", "GPU memory in use, peak (NA without NVML)"),
    Metric("cpu_idle_inflight", "share", "info", "mean_inflight", "samples", "sys_cpu_idle", "system CPU idle share while requests were in flight"),
    Metric("iowait_inflight", "share", "info", "mean_inflight", "samples", "sys_cpu_iowait", "system CPU iowait share while requests were in flight"),
    Metric("queue_depth_peak", "count", "info", "max", "samples", "queue_depth", "service queue depth, maximum sampled"),
)
METRIC_BY_NAME = {m.name: m for m in METRICS}

# SLO key aliases used in DESIGN.md (`underrun_c100_min`) -> metric names.
SLO_ALIASES = {"underrun_c50": "c50", "underrun_c100": "c100", "underrun_c200": "c200"}


def metric_table() -> list[dict]:
    """The definitions as plain dicts (what run.json records beside the values)."""
    return [asdict(m) for m in METRICS]


def inflight_mask(sample_t: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """For each sample time: was at least one request in flight (start <= t < end)?"""
    s = np.sort(starts)
    e = np.sort(ends)
    started = np.searchsorted(s, sample_t, side="right")
    ended = np.searchsorted(e, sample_t, side="right")
    return (started - ended) > 0


def _rows(requests: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    measured = requests[~requests["warmup"].astype(bool)] if len(requests) else requests
    ok = measured[measured["status"] == "ok"] if len(measured) else measured
    return measured, ok


def _value(metric: Metric, measured, ok, samples, ctx) -> float:
    name, _, arg = metric.aggregation.partition(":")
    if name == "success":
        return len(ok) / len(measured) if len(measured) else math.nan
    if name == "goodput":
        return ctx["goodput_rps"]
    frame = {"ok": ok, "measured": measured, "samples": samples}[metric.rows]
    if metric.column is None:
        values = pd.Series(np.zeros(len(frame)))
    elif metric.column in frame.columns:
        values = frame[metric.column]
    else:
        return math.nan
    return AGGREGATIONS[name](values, float(arg) if arg else None, ctx)


def summarize(requests: pd.DataFrame, samples: pd.DataFrame | None, *, window_s: float,
              request_slos: dict[str, float] | None = None) -> dict[str, float | None]:
    """Every metric of METRICS from the raw rows; NaN becomes None (JSON null).

    `request_slos` maps a per-request column to its threshold (see `slo.request_thresholds`) and
    decides which successful rows count towards goodput.
    """
    samples = samples if samples is not None else pd.DataFrame({"t": []})
    measured, ok = _rows(requests)
    ctx: dict = {"window_s": window_s}
    if len(samples) and len(measured):
        ends = (measured["t_start"] + measured["e2e_s"].fillna(0.0)).to_numpy(dtype=float)
        ctx["inflight_mask"] = inflight_mask(samples["t"].to_numpy(dtype=float), measured["t_start"].to_numpy(dtype=float), ends)
    good = ok
    for column, threshold in (request_slos or {}).items():
        if column in good.columns:
            good = good[good[column].fillna(math.inf) <= threshold]
    ctx["goodput_rps"] = len(good) / window_s if window_s else math.nan
    out: dict[str, float | None] = {}
    for metric in METRICS:
        value = _value(metric, measured, ok, samples, ctx)
        out[metric.name] = None if value is None or (isinstance(value, float) and math.isnan(value)) else value
    return out
