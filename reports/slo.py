"""Service-level objectives: parsing their names, judging a run's summary, per-request thresholds.

An SLO is `METRIC[_min|_max]: threshold` (e.g. `ttfa_p95_s: 5.5`, `rtf_p95_max: 1.0`,
`success_min: 0.99`, `underrun_c100_min: 0.99`). Without a suffix the metric's direction decides:
a `lower` metric is a maximum, a `higher` one a minimum; `info` metrics need an explicit suffix.
A metric without a value (no successful request, no GPU) fails its SLO: an objective that could
not be checked is not met.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from reports.metrics import METRIC_BY_NAME, SLO_ALIASES, Metric

# Metrics whose per-request column turns a percentile SLO into a per-request threshold (goodput).
_PER_REQUEST = {"ttfa": "ttfa_s", "ttfb": "ttfb_s", "e2e": "e2e_s", "rtf": "rtf", "max_stall": "max_stall_s"}
_CONTINUITY = {"c50": 0.05, "c100": 0.1, "c200": 0.2}


@dataclass(frozen=True)
class SLO:
    """One parsed objective."""

    key: str  # as written in the scenario
    metric: str
    op: str  # "<=" or ">="
    threshold: float


@dataclass(frozen=True)
class Verdict:
    """One objective judged against a run's summary."""

    slo: str
    metric: str
    op: str
    threshold: float
    value: float | None
    passed: bool


def valid_slo_names() -> list[str]:
    """Every metric an SLO may name (suffix `_min`/`_max` optional)."""
    return [m.name for m in METRIC_BY_NAME.values()] + sorted(SLO_ALIASES)


def parse_slo(key: str, threshold: float) -> SLO:
    """`ttfa_p95_s` / `rtf_p95_max` / `underrun_c100_min` -> SLO; ValueError naming the valid metrics."""
    base, op = key, None
    for suffix, sym in (("_max", "<="), ("_min", ">=")):
        if key.endswith(suffix):
            base, op = key[: -len(suffix)], sym
    base = SLO_ALIASES.get(base, base)
    metric: Metric | None = METRIC_BY_NAME.get(base)
    if metric is None:
        raise ValueError(f"unknown metric {base!r}; SLOs name one of: {', '.join(valid_slo_names())} (optionally with _min or _max)")
    if op is None:
        if metric.direction == "info":
            raise ValueError(f"{base} has no better direction; write {base}_min or {base}_max")
        op = "<=" if metric.direction == "lower" else ">="
    if not math.isfinite(threshold):
        raise ValueError("threshold must be a finite number")
    return SLO(key=key, metric=base, op=op, threshold=float(threshold))


def judge(slos: dict[str, float], summary: dict[str, float | None]) -> list[Verdict]:
    """Each SLO against the summary (a missing value fails)."""
    out = []
    for key, threshold in slos.items():
        slo = parse_slo(key, threshold)
        value = summary.get(slo.metric)
        if value is None:
            passed = False
        else:
            passed = value <= slo.threshold if slo.op == "<=" else value >= slo.threshold
        out.append(Verdict(key, slo.metric, slo.op, slo.threshold, value, passed))
    return out


def verdicts_json(verdicts: list[Verdict]) -> list[dict]:
    return [asdict(v) for v in verdicts]


def request_thresholds(slos: dict[str, float]) -> dict[str, float]:
    """Per-request column -> max value, from the SLOs that have a per-request form (for goodput)."""
    out: dict[str, float] = {}
    for key, threshold in slos.items():
        slo = parse_slo(key, threshold)
        column = None
        if slo.metric in _CONTINUITY and slo.op == ">=":
            column, limit = "max_stall_s", _CONTINUITY[slo.metric]
        else:
            stem = slo.metric.rsplit("_p", 1)[0] if "_p" in slo.metric else None
            if stem in _PER_REQUEST and slo.op == "<=":
                column, limit = _PER_REQUEST[stem], slo.threshold
        if column is not None:
            out[column] = min(limit, out.get(column, math.inf))
    return out
