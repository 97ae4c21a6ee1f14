"""The summary of a run, computed from its raw rows over the metric table.

Every figure is a row of `vvbench.artifacts.metrics.METRICS`; this module holds only the
aggregations (`AGGREGATIONS`, named by the table's `aggregation` column) and `summarize`, which
applies each row of the table to the measured rows (warm-up excluded), the successful ones, or the
samples. The definitions themselves are in the table's module docstring.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd

from vvbench.artifacts.metrics import METRICS, Metric


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


def inflight_mask(sample_t: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """For each sample time: was at least one request in flight (start <= t < end)?"""
    s = np.sort(starts)
    e = np.sort(ends)
    started = np.searchsorted(s, sample_t, side="right")
    ended = np.searchsorted(e, sample_t, side="right")
    return (started - ended) > 0


def measured_rows(requests: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(measured rows: warm-up excluded, the successful ones among them): what every statistic reads."""
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
    measured, ok = measured_rows(requests)
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
