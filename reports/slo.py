"""Judging a run's SLOs, and their per-request form for goodput.

SLOs are parsed by `vvbench.artifacts.metrics.parse_slo` (the scenario model validates them with
it); their meaning, suffixes and per-request forms are the metric table's. A metric without a
value (no successful request, no GPU) fails its SLO: an objective that could not be checked is
not met.
"""

from __future__ import annotations

import math

from vvbench.artifacts.metrics import METRIC_BY_NAME, parse_slo
from vvbench.artifacts.record import Verdict


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
        out.append(Verdict(slo=key, metric=slo.metric, op=slo.op, threshold=slo.threshold, value=value, passed=passed))
    return out


def request_thresholds(slos: dict[str, float]) -> dict[str, float]:
    """Per-request column -> max value, from the SLOs that have a per-request form (for goodput)."""
    out: dict[str, float] = {}
    for key, threshold in slos.items():
        slo = parse_slo(key, threshold)
        condition = METRIC_BY_NAME[slo.metric].request_condition(slo.op, slo.threshold)
        if condition is not None:
            column, limit = condition
            out[column] = min(limit, out.get(column, math.inf))
    return out
