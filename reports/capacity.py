"""Capacity decisions: which loads meet a scenario's SLOs, the capacity, the knee and the fleet size.

Pure functions of run directories (through `load_run`) and of plain numbers; no torch, no
Locust. `vvbench.harness.capacity` runs the points, this module decides from them.

**SLO attainment at one load.** Each SLO of the scenario that has a per-request form in the
metric table (`Metric.request_condition`) becomes a count: of the `n` measured requests of the
point's run (warm-up excluded, *failed requests included and counted as misses*), `k` met the
condition — `ttfa_p95_s: 1.5` counts requests with `ttfa_s <= 1.5`, `c100_min: 0.99` those
whose longest stall is at most 100 ms, `rtf_p95_max: 1` those with `rtf <= 1`. Its target is
the share the SLO asks for: the percentile for a latency SLO (p95 -> 0.95, p50 -> 0.5), the
threshold for a share SLO (`c100_min: 0.99` -> 0.99). `success_min: S` is `k` = successful of
`n` measured, target `S`. The attainment is met when the **lower bound of the two-sided Wilson
score interval** at `confidence` (scipy's `binomtest(k, n).proportion_ci(method="wilson")`)
is at least the target; with no measured request it is not met. Other SLOs (peak memory,
throughput) have no per-request form and are judged on the run only. A load is **met** when
its run completed, every attainment bound clears its target, *and* every run-level verdict of
`run.json` passed (percentiles over the successful rows, as `vvbench run` judges them).

Small samples cannot prove a high target: with every request meeting it, the Wilson lower
bound is `n / (n + z²)`, so at 95% confidence a 0.95 target needs at least 73 measured
requests and a 0.99 target 381 (`min_requests`). A point with fewer says so.

**Capacity.** The highest tested load that is met while every lower tested load is met too
(capacity is read as monotone; a met load above an unmet one is reported as non-monotone and
not taken). **Knee** of the latency curve (TTFA p95 against load): Kneedle, through the `kneed`
library (convex, increasing, sensitivity S=0 since a sweep has few points), over at least three
points; None when it finds none. **Instances** for a target load: `ceil(target / (capacity ×
headroom))`, plus one spare for N+1.

**Interrupted.** A point whose run was aborted (Ctrl-C or SIGTERM stopped it) is kept, with its
run directory, but is no verdict: its load was not measured to the end, so it neither meets nor
misses. The result says `interrupted` (what stopped it), and its capacity is only what the
points finished before then show.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.stats import binomtest, norm

from vvbench.artifacts.metrics import METRIC_BY_NAME, parse_slo
from vvbench.artifacts.reader import Run
from vvbench.artifacts.record import RunStatus

SWEEP_KEYS = {"users": "concurrent streams (closed-loop users)", "rate": "requests per second (open loop)"}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Attainment(_Model):
    """One SLO's attainment at one load: k of n requests met its per-request condition."""

    slo: str = Field(description="the SLO as the scenario writes it")
    condition: str = Field(description="what each request had to meet, e.g. ttfa_s <= 1.5")
    target: float = Field(description="the share the SLO asks for")
    k: int
    n: int
    share: float | None = Field(description="k / n (None without requests)")
    lower: float = Field(description="Wilson lower bound at the confidence level (0 without requests)")
    met: bool


class Point(_Model):
    """One load of a capacity sweep or search, judged from its run directory."""

    load: float
    run_dir: str
    status: str
    met: bool | None = Field(description="every SLO met; None when its run was interrupted (aborted): no verdict")
    why: str = Field(description="what decided it: the first failing bound or verdict, or 'every SLO met'")
    attainments: list[Attainment]
    verdicts: list[dict]
    requests: int
    ttfa_p95_s: float | None
    ttfa_p50_s: float | None
    c100: float | None
    goodput_rps: float | None
    throughput_rps: float | None
    audio_s_per_s: float | None
    mean_inflight: float | None = Field(description="Little's law: summed e2e_s of measured requests / window (streams in flight)")
    elapsed_s: float = Field(description="wall time of the run, start to finished_at")

    @property
    def aborted(self) -> bool:
        """Its run was interrupted: kept, but neither met nor missed."""
        return self.status == "aborted"


def wilson_lower(k: int, n: int, confidence: float) -> float:
    """Lower bound of the two-sided Wilson score interval for k successes of n (0.0 when n is 0)."""
    if n <= 0:
        return 0.0
    if not 0 <= k <= n:
        raise ValueError(f"k={k} must lie in 0..n={n}")
    return float(binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson").low)


def min_requests(target: float, confidence: float) -> int | None:
    """Fewest requests, all meeting the SLO, whose Wilson lower bound reaches `target`; None when none can (target 1)."""
    if target >= 1:
        return None
    if target <= 0:
        return 1
    z2 = norm.ppf(1 - (1 - confidence) / 2) ** 2
    n = max(1, math.floor(target * z2 / (1 - target)))
    while wilson_lower(n, n, confidence) < target:
        n += 1
    return n


def _target(metric_name: str, op: str, threshold: float) -> float | None:
    """The share of requests an SLO asks for, or None when it has no per-request form."""
    m = METRIC_BY_NAME[metric_name]
    if m.aggregation == "success":
        return threshold if op == ">=" else None
    if m.request_condition(op, threshold) is None:
        return None
    if m.aggregation.startswith("share_le"):
        return threshold
    if m.aggregation in ("p50", "p95", "p99"):
        return int(m.aggregation[1:]) / 100
    return None


def attainments(slos: dict[str, float], measured, confidence: float) -> list[Attainment]:
    """Each per-request SLO's attainment over the `measured` rows (warm-up excluded, failed ones kept)."""
    out = []
    n = len(measured)
    ok = (measured["status"] == "ok").to_numpy(dtype=bool) if n else np.zeros(0, dtype=bool)
    for key, threshold in slos.items():
        slo = parse_slo(key, threshold)
        target = _target(slo.metric, slo.op, slo.threshold)
        if target is None:
            continue
        m = METRIC_BY_NAME[slo.metric]
        if m.aggregation == "success":
            hit, condition = ok, "status == ok"
        else:
            column, limit = m.request_condition(slo.op, slo.threshold)
            values = measured[column].to_numpy(dtype=float, na_value=np.nan) if n else np.zeros(0)
            hit = ok & (np.nan_to_num(values, nan=math.inf) <= limit)
            condition = f"{column} <= {limit:g} (failed requests miss)"
        k = int(hit.sum())
        lower = wilson_lower(k, n, confidence)
        out.append(Attainment(slo=key, condition=condition, target=target, k=k, n=n, share=k / n if n else None,
                              lower=lower, met=n > 0 and lower >= target))
    return out


def judge_point(run: Run, load: float, confidence: float) -> Point:
    """One load's verdict from its run directory (see the module docstring)."""
    rec = run.record
    requests = run.requests
    measured = requests[~requests["warmup"].astype(bool)] if len(requests) else requests
    atts = attainments(rec.scenario.slos, measured, confidence)
    verdicts = [v.model_dump() for v in rec.slos]
    why = "every SLO met"
    if not rec.status.completed:
        why = f"run {rec.status.value}: {rec.error}"
    elif bad := [a for a in atts if not a.met]:
        a = bad[0]
        why = f"{a.slo}: Wilson lower bound {a.lower:.3f} < target {a.target:g} ({a.k}/{a.n} requests met {a.condition})"
    elif failed := [v for v in rec.slos if not v.passed]:
        v = failed[0]
        why = f"{v.slo}: {v.metric} = {'NA' if v.value is None else f'{v.value:.4g}'} does not meet {v.op} {v.threshold:g}"
    s = rec.summary
    window = rec.scenario.duration or 0.0
    inflight = float(measured["e2e_s"].fillna(0.0).sum()) / window if window and len(measured) else None
    met = None if rec.status is RunStatus.ABORTED else why == "every SLO met"
    return Point(load=load, run_dir=str(run.path), status=rec.status.value, met=met, why=why,
                 attainments=atts, verdicts=verdicts, requests=len(measured), ttfa_p95_s=s.get("ttfa_p95_s"),
                 ttfa_p50_s=s.get("ttfa_p50_s"), c100=s.get("c100"), goodput_rps=s.get("goodput_rps"),
                 throughput_rps=s.get("throughput_rps"), audio_s_per_s=s.get("audio_s_per_s"), mean_inflight=inflight,
                 elapsed_s=max(0.0, rec.finished_at - rec.created_at))


def capacity_load(points: list[Point]) -> tuple[float | None, list[str]]:
    """(highest met load with every lower tested load met, notes on non-monotone points); aborted points are no verdict."""
    best, notes = None, []
    ordered = sorted((p for p in points if not p.aborted), key=lambda p: p.load)
    for i, p in enumerate(ordered):
        if not p.met:
            above = [q.load for q in ordered[i + 1:] if q.met]
            if above:
                notes.append(f"non-monotone: {', '.join(f'{x:g}' for x in above)} met above unmet {p.load:g}; not taken")
            break
        best = p.load
    cut = [p.load for p in points if p.aborted and best is not None and p.load < best]
    if cut:
        notes.append(f"{', '.join(f'{x:g}' for x in sorted(cut))} interrupted, no verdict: the capacity rests on the met loads "
                     "on either side, read as monotone")
    return best, notes


def knee(loads, latencies) -> float | None:
    """The knee of latency against load (Kneedle via `kneed`, S=0), or None (fewer than 3 finite points, or none found)."""
    from kneed import KneeLocator

    pairs = sorted((float(x), float(y)) for x, y in zip(loads, latencies) if y is not None and math.isfinite(y))
    if len(pairs) < 3 or pairs[-1][1] <= pairs[0][1]:
        return None
    x, y = (np.array(v) for v in zip(*pairs))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # kneed warns when it finds no knee: None says it
        found = KneeLocator(x, y, S=0.0, curve="convex", direction="increasing", online=True).knee
    return None if found is None else float(found)


def instances_needed(target_load: float, capacity: float, headroom: float) -> tuple[int, int]:
    """(instances to carry `target_load` at `headroom` of each one's capacity, the same plus one spare: N+1)."""
    if capacity <= 0 or not 0 < headroom <= 1 or target_load <= 0:
        raise ValueError("capacity and target load must be positive and headroom in (0, 1]")
    # a hair of tolerance so that 8 / (10 × 0.8) is 1 and not 2 through floating-point error
    n = max(1, math.ceil(target_load / (capacity * headroom) - 1e-9))
    return n, n + 1


class Fleet(_Model):
    target_load: float
    unit: str
    headroom: float
    capacity_per_instance: float
    instances: int
    instances_n_plus_1: int
    formula: str = "ceil(target / (capacity × headroom)), plus one spare for N+1"


class CapacityResult(_Model):
    """capacity.json: what was run, every point, and what was decided from them."""

    scenario: str
    key: str
    unit: str
    mode: str = Field(description="sweep or search")
    confidence: float
    method: str = ("attainment per SLO: requests meeting its per-request condition / measured requests (failed ones miss); "
                   "met when the Wilson lower bound clears the SLO's share and every run-level SLO passed")
    points: list[Point]
    capacity: float | None
    knee: float | None
    streams_per_instance: float | None
    requests_per_minute: float | None
    audio_hours_per_hour: float | None
    fleet: Fleet | None
    notes: list[str] = Field(default_factory=list)
    runs: int
    elapsed_s: float
    interrupted: str | None = Field(None, description="what stopped the search before it finished ('Ctrl-C' or 'SIGTERM'); "
                                                      "its capacity is then only what the finished points show")


def decide(scenario: str, key: str, mode: str, points: list[Point], confidence: float, elapsed_s: float,
           target_load: float | None = None, headroom: float = 0.8, notes: list[str] | None = None,
           interrupted: str | None = None) -> CapacityResult:
    """The capacity result from judged points: capacity, figures at it, knee, fleet size."""
    cap, more = capacity_load(points)
    notes = [*(notes or []), *more]
    at = next((p for p in points if p.load == cap), None)
    streams = rpm = hours = None
    if at is not None:
        streams = at.load if key == "users" else at.mean_inflight
        rpm = None if at.throughput_rps is None else at.throughput_rps * 60
        hours = at.audio_s_per_s  # audio seconds per second = audio hours per hour
    fleet = None
    if target_load is not None and cap is not None:
        per = cap if key == "users" else cap * 60
        n, n1 = instances_needed(target_load, per, headroom)
        fleet = Fleet(target_load=target_load, unit=target_unit(key), headroom=headroom, capacity_per_instance=per,
                      instances=n, instances_n_plus_1=n1)
    judged = [p for p in points if not p.aborted]
    notes += sample_size_notes(judged, confidence)
    ordered = sorted(points, key=lambda p: p.load)
    curve = [p for p in ordered if not p.aborted]
    return CapacityResult(scenario=scenario, key=key, unit=SWEEP_KEYS[key], mode=mode, confidence=confidence,
                          points=ordered, capacity=cap, knee=knee([p.load for p in curve], [p.ttfa_p95_s for p in curve]),
                          streams_per_instance=streams, requests_per_minute=rpm, audio_hours_per_hour=hours, fleet=fleet,
                          notes=notes, runs=len(points), elapsed_s=elapsed_s, interrupted=interrupted)


def sample_size_notes(points: list[Point], confidence: float) -> list[str]:
    """One note per SLO whose points had too few requests for its target to be provable at all."""
    short: dict[str, tuple[float, int | None, list[int]]] = {}
    for p in points:
        for a in p.attainments:
            need = min_requests(a.target, confidence)
            if need is None or a.n < need:
                short.setdefault(a.slo, (a.target, need, []))[2].append(a.n)
    out = []
    for slo, (target, need, ns) in short.items():
        needs = "no sample size can prove it" if need is None else f"needs at least {need} requests, all meeting it,"
        out.append(f"{slo}: a {target:g} target {needs} at {confidence:g} confidence; points had "
                   f"{min(ns)}-{max(ns)} (lengthen --duration)")
    return out


def target_unit(key: str) -> str:
    """The unit of `--target-load` for a sweep key: streams for users, requests per minute for rate."""
    return "concurrent streams" if key == "users" else "requests per minute"


def load_points(run_dirs: dict[float, str | Path], confidence: float) -> list[Point]:
    """Judge each load's run directory (load -> path)."""
    from vvbench.artifacts.reader import load_run

    return [judge_point(load_run(path), load, confidence) for load, path in run_dirs.items()]
