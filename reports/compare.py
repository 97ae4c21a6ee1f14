"""Comparing two runs metric by metric, from their raw rows: did NEW regress against BASE?

`compare_runs(base, new, thresholds)` takes two `Run`s (however they were found: a directory
today, `--baseline latest-passing` from the history index later) and decides every metric of
the table that has a better direction. How each metric is resampled follows from its row in the
table:
- per-request metrics (percentiles, continuity shares, success) resample the requests: the
  statistic is the table's own aggregation, the rank test is Mann-Whitney U on the per-request
  values it aggregates (the column, or the 0/1 "within the limit" / "succeeded" indicator);
- rates (throughput, goodput, audio seconds per second) resample `RATE_BINS` equal slices of the
  measured window (what one request adds to a rate is not independent of the others), tested
  with Mann-Whitney U on the per-slice rates;
- peaks over the samples (memory) are one value per run: the change is reported, but with no
  interval and no test it can never be called a regression (it reads equivalent or inconclusive).

Each change is the ratio NEW / BASE with a percentile bootstrap interval (`scipy.stats.bootstrap`,
`RESAMPLES` resamples, seeded per metric, so the same runs always give the same answer). The
p-values are corrected with Holm's step-down method: a gate fails the pipeline on any one
regression, so the error to bound is the chance of *any* false alarm across the ~20 metrics (the
family-wise rate, Holm) rather than the share of false ones among those flagged (the false
discovery rate, Benjamini-Hochberg); Holm is also valid under any dependence between the
metrics, and p50/p95/p99 of one column are strongly dependent.

Verdicts, with `t` the metric's threshold (the minimum effect that counts):
- regressed: significant — the Holm-adjusted p < `ALPHA` — *and* the metric's whole interval
  lies beyond `t` on the worse side: worse than the threshold with that confidence, not only at
  its point value. The rank test speaks of the whole distribution; the metric's own interval is
  what tells its p99 from its p50. (A point value past `t` with an interval reaching back under
  it is what the p99 of a few dozen requests gives in A/A pairs on a quiet host:
  docs/benchmarks.md, "Regression gate".)
- improved: significant and the whole interval beyond `t` on the better side;
- equivalent: the interval lies inside ±`t`;
- inconclusive: anything else — the data cannot tell (the note says when the point value alone
  is over the threshold).
A base value of zero (no stall at p95, say) has no ratio: the change is then read from the test
alone (both zero: equivalent).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from vvbench.artifacts.metrics import METRICS, Metric
from vvbench.reports.slo import request_thresholds
from vvbench.reports.summary import measured_rows

RESAMPLES = 2000
ALPHA = 0.05
CONFIDENCE = 0.95
RATE_BINS = 10
DEFAULT_THRESHOLD = 0.05
CORRECTION = "Holm (family-wise error rate over the tested metrics)"
UNBOUNDED = 1e12  # a ratio over a resampled zero
VERDICTS = ("regressed", "improved", "equivalent", "inconclusive")
COMPARED = tuple(m for m in METRICS if m.direction != "info")


@dataclass
class MetricChange:
    """One metric's comparison (see the module docstring)."""

    metric: str
    unit: str
    direction: str
    how: str  # requests | slices | point
    base: float | None
    new: float | None
    n_base: int
    n_new: int
    threshold: float
    ratio: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    verdict: str = "inconclusive"
    note: str = ""


@dataclass
class Comparison:
    """Every metric's change, and what the decision was made from."""

    base_id: str
    new_id: str
    changes: list[MetricChange]
    warnings: list[str] = field(default_factory=list)
    seed: int = 0
    resamples: int = RESAMPLES
    alpha: float = ALPHA
    confidence: float = CONFIDENCE
    correction: str = CORRECTION

    @property
    def regressed(self) -> list[str]:
        return [c.metric for c in self.changes if c.verdict == "regressed"]


def _per_request(metric: Metric, run) -> np.ndarray:
    """The values a per-request metric aggregates, one per request of its rows."""
    measured, ok = measured_rows(run.requests)
    name, _, arg = metric.aggregation.partition(":")
    if name == "success":
        return (measured["status"] == "ok").to_numpy(dtype=float)
    values = ok[metric.column] if metric.rows == "ok" else measured[metric.column]
    if name == "share_le":
        return (np.nan_to_num(values.to_numpy(dtype=float, na_value=np.nan), nan=math.inf) <= float(arg)).astype(float)
    v = values.to_numpy(dtype=float, na_value=np.nan)
    return v[np.isfinite(v)]


def _slices(metric: Metric, run) -> np.ndarray:
    """A rate metric per slice of the measured window (requests counted where they started, as the summary does)."""
    measured, ok = measured_rows(run.requests)
    name = metric.aggregation
    if name == "goodput":
        for column, limit in request_thresholds(run.record.scenario.slos).items():
            ok = ok[ok[column].fillna(math.inf) <= limit]
    window = run.record.window
    t = measured["t_start"].to_numpy(dtype=float)
    lo = window.warmup_end or (float(t.min()) if len(t) else 0.0)
    hi = lo + (run.record.scenario.duration or 0.0) if run.record.scenario.duration else (float(t.max()) if len(t) else lo)
    edges = np.linspace(lo, max(hi, lo + 1e-9), RATE_BINS + 1)
    weights = ok[metric.column].fillna(0.0).to_numpy(dtype=float) if name == "sum_per_s" else None
    counts, _ = np.histogram(ok["t_start"].to_numpy(dtype=float), bins=edges, weights=weights)
    return counts / (edges[1] - edges[0])


def _statistic(metric: Metric):
    """The aggregation as a vectorised function of resampled values (last axis)."""
    name = metric.aggregation.partition(":")[0]
    if name in ("p50", "p95", "p99"):
        q = float(name[1:])
        return lambda x, axis=-1: np.percentile(x, q, axis=axis)
    return lambda x, axis=-1: np.mean(x, axis=axis)


def _ratio(a, b):
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.asarray(b, dtype=float) / np.asarray(a, dtype=float)
    r = np.where((np.asarray(a) == 0) & (np.asarray(b) == 0), 1.0, r)
    return np.where(np.isinf(r), UNBOUNDED, r)


def _bootstrap(a: np.ndarray, b: np.ndarray, stat, seed: int, resamples: int, confidence: float) -> tuple[float, float]:
    from scipy import stats  # here, not at the top: `host_busy`'s importers (a run's history index) skip its 0.3 s

    def ratio(x, y, axis=-1):
        return _ratio(stat(x, axis=axis), stat(y, axis=axis))

    batch = max(1, int(2e7 // max(len(a), len(b), 1)))  # bound the resample arrays to ~160 MB
    res = stats.bootstrap((a, b), ratio, n_resamples=resamples, vectorized=True, paired=False, method="percentile",
                          confidence_level=confidence, rng=np.random.default_rng(seed), batch=batch)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _how(metric: Metric) -> str:
    if metric.rows == "samples":
        return "point"
    return "slices" if metric.aggregation in ("count_per_s", "sum_per_s", "goodput") else "requests"


def _decide(change: MetricChange, a: np.ndarray, b: np.ndarray, stat, seed: int, resamples: int, confidence: float) -> MetricChange:
    """Point values, ratio, rank test and bootstrap interval of `change` from the values `a` (base) and `b` (new)."""
    change.n_base, change.n_new = len(a), len(b)
    if len(a) < 2 or len(b) < 2:
        change.note = "fewer than 2 values in a run"
        return change
    change.base, change.new = float(stat(a)), float(stat(b))  # from the same rows as the test
    change.ratio = float(_ratio(change.base, change.new))
    if np.ptp(np.concatenate([a, b])) == 0:
        change.p_value = 1.0  # every value the same in both runs: nothing to test
    else:
        from scipy import stats

        change.p_value = float(stats.mannwhitneyu(a, b, alternative="two-sided").pvalue)
        change.ci_low, change.ci_high = _bootstrap(a, b, stat, seed, resamples, confidence)
    if change.ci_low is None:
        change.ci_low = change.ci_high = change.ratio
    if change.base == 0:
        change.note = "base is 0: no ratio, the test decides"
    return change


def _one(metric: Metric, index: int, base, new, threshold: float, seed: int, resamples: int, confidence: float) -> MetricChange:
    how = _how(metric)
    b_val, n_val = base.record.summary.get(metric.name), new.record.summary.get(metric.name)
    change = MetricChange(metric.name, metric.unit, metric.direction, how, b_val, n_val, 0, 0, threshold)
    if how == "point":
        change.n_base = change.n_new = 1
        if b_val is not None and n_val is not None:
            change.ratio = float(_ratio(b_val, n_val))
        change.note = "one value per run: no interval, no test (never a regression)"
        return change
    a, b = (_per_request(metric, r) if how == "requests" else _slices(metric, r) for r in (base, new))
    return _decide(change, a, b, _statistic(metric), seed * 1000 + index, resamples, confidence)


def _pooled(metric: Metric, how: str, runs) -> np.ndarray:
    if how == "repeats":
        v = np.array([r.record.summary.get(metric.name) for r in runs], dtype=float)
        return v[np.isfinite(v)]
    return np.concatenate([_per_request(metric, r) if how == "requests" else _slices(metric, r) for r in runs])


def compare_pooled(base_runs, new_runs, names, *, threshold: float = DEFAULT_THRESHOLD, seed: int = 0,
                   resamples: int = RESAMPLES, alpha: float = ALPHA, confidence: float = CONFIDENCE) -> list[MetricChange]:
    """Compare repeated runs of two configs on the metrics `names`, each side's repeats pooled.

    The statistics are `compare_runs`'s: per-request metrics pool the requests of every repeat,
    rates pool the `RATE_BINS` slices of every repeat; a peak over the samples, one value per run,
    becomes one value per repeat (`how` = "repeats", the mean compared). Holm's correction runs
    over `names`, and the verdicts are `compare_runs`'s.
    """
    changes = []
    for i, name in enumerate(names):
        m = next(x for x in COMPARED if x.name == name)
        how = "repeats" if _how(m) == "point" else _how(m)
        change = MetricChange(m.name, m.unit, m.direction, how, None, None, 0, 0, threshold)
        stat = _statistic(m) if how != "repeats" else (lambda x, axis=-1: np.mean(x, axis=axis))
        a, b = _pooled(m, how, base_runs), _pooled(m, how, new_runs)
        changes.append(_decide(change, a, b, stat, seed * 1000 + i, resamples, confidence))
    _judge(changes, alpha)
    return changes


def _judge(changes: list[MetricChange], alpha: float) -> None:
    """Holm over the tested changes, then each change's verdict (and the note when only its point value is past the threshold)."""
    tested = [c for c in changes if c.p_value is not None]
    for c, p in zip(tested, holm([c.p_value for c in tested])):
        c.p_adjusted = p
    for c in changes:
        c.verdict = _verdict(c, alpha)
        _note_point_only(c, alpha)


def _note_point_only(c: MetricChange, alpha: float) -> None:
    """Say why a significant change whose point value is past the threshold still reads inconclusive."""
    if c.verdict != "inconclusive" or c.ratio is None or c.ci_low is None or c.p_adjusted is None or c.base == 0:
        return
    worse = (1.0 if c.direction == "lower" else -1.0) * (c.ratio - 1.0)
    if c.p_adjusted < alpha and abs(worse) > c.threshold:
        side = "worse" if worse > 0 else "better"
        c.note = (f"{side} than the {c.threshold:.0%} threshold at its point value, but the interval "
                  f"[{c.ci_low:.3f}, {c.ci_high:.3f}] reaches back under it")


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    out = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        out[i] = running
    return out


def _verdict(c: MetricChange, alpha: float) -> str:
    if c.how == "point":
        return "equivalent" if c.ratio is not None and abs(c.ratio - 1) <= c.threshold else "inconclusive"
    if c.p_adjusted is None or c.ratio is None:
        return "inconclusive"
    sign = 1.0 if c.direction == "lower" else -1.0  # > 0: worse
    significant = c.p_adjusted < alpha
    if c.base == 0:
        if c.new == 0:
            return "equivalent"
        return ("regressed" if sign * c.new > 0 else "improved") if significant else "inconclusive"
    # the metric's own interval must lie beyond the threshold: the rank test is about the whole distribution
    t = c.threshold
    if c.direction == "lower":
        beyond_worse, beyond_better = c.ci_low > 1.0 + t, c.ci_high < 1.0 - t
    else:
        beyond_worse, beyond_better = c.ci_high < 1.0 - t, c.ci_low > 1.0 + t
    if significant and beyond_worse:
        return "regressed"
    if significant and beyond_better:
        return "improved"
    if c.ci_low is not None and 1 - c.threshold <= c.ci_low and c.ci_high <= 1 + c.threshold:
        return "equivalent"
    return "inconclusive"


def compare_runs(base, new, thresholds: dict[str, float] | None = None, *, default_threshold: float = DEFAULT_THRESHOLD,
                 seed: int = 0, resamples: int = RESAMPLES, alpha: float = ALPHA, confidence: float = CONFIDENCE,
                 warnings: list[str] | None = None) -> Comparison:
    """Compare `new` with `base` (two `Run`s) on every metric with a direction; thresholds per metric name (fractions)."""
    thresholds = thresholds or {}
    changes = [_one(m, i, base, new, thresholds.get(m.name, default_threshold), seed, resamples, confidence)
               for i, m in enumerate(COMPARED)]
    _judge(changes, alpha)
    return Comparison(base.record.run_id, new.record.run_id, changes, list(warnings or []), seed, resamples, alpha, confidence)


CONTENDED_SHARE = 0.1  # of the host's CPU cores: more other work than this and a run's timings are the host's


def host_busy(used: float | None, cores: int | None) -> str | None:
    """Why a run's timings are partly the host's — other work (`host_other_cpu`, cores) over `CONTENDED_SHARE`
    of its `cores` — or None (quiet, or not recorded). The one rule compare, history and the report share."""
    cores = int(cores or 1)
    if used is None or used <= CONTENDED_SHARE * cores:
        return None
    return f"other processes used {used:.2f} of the host's {cores} CPU cores while it measured (over {CONTENDED_SHARE:.0%})"


def contended(run) -> str | None:
    """`host_busy` of a `Run`."""
    return host_busy((run.record.summary or {}).get("host_other_cpu"), run.record.host.get("cpu_count"))


def differences(base, new) -> list[str]:
    """Why two runs are not comparable — different scenario, preset, host or GPU, or a run measured
    on a host busy with other work (`contended`) — as lines (empty: comparable)."""
    def facts(run) -> dict[str, str]:
        r = run.record
        gpus = ", ".join(str(g.get("name", "GPU")) for g in r.host.get("gpus") or []) or "none"
        return {"scenario": r.scenario.name, "preset": str((r.runtime_config or {}).get("preset", "unknown")),
                "host": str(r.host.get("hostname", "unknown")), "GPU": gpus}

    a, b = facts(base), facts(new)
    out = [f"{key} differs: {a[key]} (base) vs {b[key]} (new)" for key in a if a[key] != b[key]]
    return out + [f"{side} {r.record.run_id}: {why}" for side, r in (("base", base), ("new", new)) if (why := contended(r))]
