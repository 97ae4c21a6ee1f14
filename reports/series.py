"""The data behind a run report's charts, computed from the raw rows and bounded in size.

Pure functions of a `Run` (or of its frames): they return plain numbers and arrays that the
HTML, Markdown and JSON renderings all show, so no figure is computed twice. Sizes are bounded
whatever the run's length, because an inline SVG holds every point it is given:
- a CDF is the exact step function up to `CDF_POINTS` requests, beyond that its quantiles at
  `CDF_POINTS` evenly spaced shares (the minimum and maximum kept);
- the request timeline shows every request up to `TIMELINE_MAX`, beyond that every k-th in start
  order, and says so (`Timeline.note`);
- throughput and in-flight requests are counted per bin of a round width (about `TIME_BINS` bins);
- memory is the maximum per bin (a peak is never thinned away), CPU idle the mean per bin.
Time is seconds since the run's start (the arrival schedule's start, else the first request).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from vvbench.artifacts.metrics import METRICS
from vvbench.reports.charts import TimeAxis, nice_step
from vvbench.reports.summary import AGGREGATIONS, measured_rows

CDF_POINTS = 400
TIMELINE_MAX = 300
TIME_BINS = 60
RESOURCE_POINTS = 600
DEFAULT_PREBUFFERS_MS = (0, 50, 100, 200, 300, 500, 1000, 2000)
# text-length buckets for RTF (characters): short turns, sentences, paragraphs, long form
LENGTH_EDGES = (0, 50, 100, 200, 500, 1000, 2000, 5000)
CONTINUITY = tuple(m for m in METRICS if m.group == "continuity" and m.aggregation.startswith("share_le:"))


def cdf_points(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x, share of values <= x) for a step plot; at most about `CDF_POINTS` points (see the module docstring)."""
    v = np.sort(np.asarray(values, dtype=float)[np.isfinite(values)])
    if not len(v):
        return np.zeros(0), np.zeros(0)
    if len(v) <= CDF_POINTS:
        return v, np.arange(1, len(v) + 1) / len(v)
    shares = np.linspace(0.0, 1.0, CDF_POINTS + 1)
    return np.quantile(v, shares), shares


def time_axis(run) -> TimeAxis:
    """The run's time axis: from the schedule's start (else the first request) to the last byte or sample."""
    rows, samples, window = run.requests, run.samples, run.record.window
    starts = rows["t_start"].to_numpy(dtype=float)
    ends = starts + rows["e2e_s"].fillna(0.0).to_numpy(dtype=float)
    candidates = [window.start_at] if window.start_at else []
    t0 = min(candidates + ([float(np.nanmin(starts))] if len(starts) else []), default=0.0)
    last = [float(np.nanmax(ends))] if len(ends) else []
    if window.window_end:
        last.append(window.window_end)
    if len(samples):
        last.append(float(samples["t"].max()))
    span = max(last, default=t0 + 1.0) - t0
    warm = (window.warmup_end - t0) if window.warmup_end else 0.0
    return TimeAxis(t0=t0, span_s=max(span, 1e-3), warmup_end_s=max(0.0, warm))


@dataclass(frozen=True)
class Timeline:
    """The requests drawn on the timeline (times on the run's axis) and what was left out."""

    starts: np.ndarray
    ends: np.ndarray
    first_audio: np.ndarray
    failed: np.ndarray
    stalls: list[tuple[int, float, float]]
    total: int
    note: str = ""


def timeline(run, axis: TimeAxis, stalls: pd.DataFrame) -> Timeline:
    """Every request, or every k-th in start order past `TIMELINE_MAX`; stalls are `Run.stalls` at the run's prebuffer."""
    rows = run.requests.sort_values("t_start", kind="stable")
    total = len(rows)
    step = max(1, math.ceil(total / TIMELINE_MAX))
    shown = rows.iloc[::step]
    starts = shown["t_start"].to_numpy(dtype=float) - axis.t0
    e2e = shown["e2e_s"].to_numpy(dtype=float)
    ends = starts + np.nan_to_num(e2e, nan=0.0)
    first = starts + shown["ttfa_s"].to_numpy(dtype=float)
    failed = (shown["status"] != "ok").to_numpy()
    position = {label: i for i, label in enumerate(shown.index)}
    marks = []
    for label, at_s, stall_s in zip(stalls["row"], stalls["at_s"], stalls["stall_s"]):
        i = position.get(label)
        if i is not None:
            marks.append((i, float(starts[i] + at_s), float(starts[i] + at_s + stall_s)))
    note = "" if step == 1 else (f"{len(shown):,} of {total:,} requests shown: every {step}th in start order "
                                 "(the CDFs, tables and other charts use every request)")
    return Timeline(starts, ends, first, failed, marks, total, note)


def _bins(axis: TimeAxis) -> np.ndarray:
    width = nice_step(axis.span_s, TIME_BINS)
    return np.arange(0.0, axis.span_s + width, width)


def throughput(run, axis: TimeAxis) -> dict[str, np.ndarray]:
    """Per bin: successful requests finished per second, and requests in flight at the bin's start."""
    rows = run.requests
    edges = _bins(axis)
    starts = rows["t_start"].to_numpy(dtype=float) - axis.t0
    ends = starts + rows["e2e_s"].fillna(0.0).to_numpy(dtype=float)
    ok = (rows["status"] == "ok").to_numpy()
    done, _ = np.histogram(ends[ok], bins=edges)
    width = edges[1] - edges[0] if len(edges) > 1 else 1.0
    inflight = np.searchsorted(np.sort(starts), edges, side="right") - np.searchsorted(np.sort(ends), edges, side="right")
    return {"t_s": edges[:-1], "done_per_s": done / width, "edges_s": edges, "inflight": inflight, "bin_s": np.array([width])}


def resources(run, axis: TimeAxis) -> dict[str, np.ndarray]:
    """Memory (RSS, GPU: maximum per bin) and system CPU idle (mean per bin) over the run's axis; columns with no data left out."""
    samples = run.samples
    if not len(samples):
        return {}
    t = samples["t"].to_numpy(dtype=float) - axis.t0
    width = nice_step(axis.span_s, RESOURCE_POINTS)
    key = np.floor(t / width).astype(np.int64)
    out: dict[str, np.ndarray] = {}
    for column, how in (("rss_bytes", "max"), ("gpu_mem_used_bytes", "max"), ("sys_cpu_idle", "mean")):
        values = samples[column]
        if values.notna().any():
            grouped = values.groupby(key).agg(how).dropna()
            out[column] = grouped.to_numpy(dtype=float)
            out[f"{column}.t_s"] = (grouped.index.to_numpy() + 0.5) * width
    return out


def rtf_by_length(run) -> list[dict]:
    """RTF of successful measured requests per text-length bucket: characters, count, p50, p95."""
    ok = measured_rows(run.requests)[1]
    if not len(ok):
        return []
    chars = ok["text_chars"].to_numpy(dtype=float, na_value=np.nan)
    rtf = ok["rtf"].to_numpy(dtype=float, na_value=np.nan)
    edges = (*LENGTH_EDGES, math.inf)
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        v = rtf[(chars >= lo) & (chars < hi) & np.isfinite(rtf)]
        if len(v):
            label = f"{lo}–{hi - 1}" if math.isfinite(hi) else f"≥ {lo}"
            out.append({"chars": label, "n": int(len(v)), "rtf_p50": float(np.percentile(v, 50)), "rtf_p95": float(np.percentile(v, 95))})
    return out


@dataclass(frozen=True)
class Continuity:
    """Continuity (the table's share-of-stall metrics) of the successful measured requests at each prebuffer."""

    prebuffers_ms: list[float]
    values: dict[str, list[float | None]]  # metric name -> one value per prebuffer
    own_ms: float
    note: str = ""
    metrics: list[str] = field(default_factory=lambda: [m.name for m in CONTINUITY])


def continuity(run, prebuffers_ms: list[float]) -> Continuity:
    """Re-simulate playback from the stored arrivals at each prebuffer (`Run.replay`) and read c50/c100/c200."""
    own = float(run.record.scenario.prebuffer_ms)
    points = sorted({float(p) for p in prebuffers_ms} | {own})
    values: dict[str, list[float | None]] = {m.name: [] for m in CONTINUITY}
    if not run.has_arrivals:
        return Continuity(points, {k: [None] * len(points) for k in values}, own,
                          note=f"schema {run.version} run: no arrival timelines stored, so playback cannot be re-simulated")
    ok_index = measured_rows(run.requests)[1].index
    for p in points:
        stall = run.replay(p)["max_stall_s"].loc[ok_index]
        for m in CONTINUITY:
            v = AGGREGATIONS["share_le"](stall, float(m.aggregation.partition(":")[2]), {})
            values[m.name].append(None if math.isnan(v) else v)
    return Continuity(points, values, own)
