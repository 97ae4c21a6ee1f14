"""Objectives, constraints and the recommendation: pure functions of measured figures.

Objectives are metric names from the metric table (`vvbench.artifacts.metrics`); each one's
direction (minimise a `lower` metric, maximise a `higher` one) comes from the table, never from
here. The default is TTFA p95, goodput and peak memory, where peak memory is `peak_gpu_bytes`
when the service runs on CUDA and `peak_rss_bytes` otherwise (`peak_memory` names whichever
applies). Constraints follow Optuna's convention (a value <= 0 is feasible):

- `quality_floor`: floor - the worst probe's mel SNR against the reference (dB), the SNR read
  as at most floor + 10 dB (`QUALITY_HEADROOM_DB`): audio identical to the reference reads
  `MAX_SNR_DB` (100 dB), and one such outlier among values a few dB either side of 0 flattened
  the sampler's model of the constraint (Optuna's GP fits each constraint on standardised
  values), so it kept sampling step counts under the floor; the cap changes no verdict;
- `audio_checks`: the number of audio checks the probes failed;
- `memory_budget` (with a budget): measured peak - budget, in MiB;
- one per scenario SLO: how far the run's value is on the wrong side of the threshold (a value
  that could not be measured counts as 1, violated).

A weighted single objective is one `--objective` of the form `METRIC:WEIGHT,METRIC:WEIGHT,…`
(e.g. `ttfa_p95_s:-1,goodput_rps:0.5`): its value is `sum(weight * metric)` in the metrics' own
units, **maximised**, so a metric to lower gets a negative weight. Its name in the study is
`weighted(ttfa_p95_s:-1,goodput_rps:0.5)`; finalists are compared with the baseline on its
component metrics.

The recommendation, where the issue is silent: among the feasible configs on the Pareto front,
the one closest to the ideal point (each objective's best on the front), each objective's gap
measured as the log of its ratio to the best, above the metric's resolution (`closest_to_ideal`):
how many times worse, not where it falls in the front's span; the baseline when no trial is
feasible. A config the sampler measured more than once (the GP
sampler re-measures promising points: one trial is one noisy measurement) counts once, as the
mean of its trials' values, feasible only when every one of its trials was (`pooled`): picking
the best single measurement picks whichever config was measured luckiest.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from vvbench.artifacts.metrics import METRIC_BY_NAME, metric
from vvbench.core.errors import ConfigError

DEFAULT_OBJECTIVES = ("ttfa_p95_s", "goodput_rps", "peak_memory")
QUALITY_HEADROOM_DB = 10.0  # the quality constraint reads an SNR above floor + this as floor + this
PEAK_MEMORY = "peak_memory"


WEIGHTED = "weighted("


def _resolve_one(name: str, cuda: bool) -> str:
    if name == PEAK_MEMORY:
        return "peak_gpu_bytes" if cuda else "peak_rss_bytes"
    return name


def parse_weighted(text: str, *, cuda: bool) -> dict[str, float]:
    """`METRIC:WEIGHT,…` -> metric -> weight (see the module docstring); ConfigError on bad input."""
    weights: dict[str, float] = {}
    for part in text.split(","):
        name, sep, w = part.strip().partition(":")
        try:
            weight = float(w)
        except ValueError:
            weight = math.nan
        if not sep or not math.isfinite(weight):
            raise ConfigError(f"--objective {text!r}: expected METRIC:WEIGHT[,METRIC:WEIGHT...], e.g. ttfa_p95_s:-1,goodput_rps:0.5")
        name = _resolve_one(name.strip(), cuda)
        _check_metric(name)
        if name in weights:
            raise ConfigError(f"--objective: {name} given twice")
        weights[name] = weight
    return weights


def weights_of(objective: str) -> dict[str, float] | None:
    """The weights of a weighted objective's study name, None for a plain metric."""
    if not objective.startswith(WEIGHTED):
        return None
    return {n: float(w) for n, _, w in (p.partition(":") for p in objective[len(WEIGHTED):-1].split(","))}


def objective_value(objective: str, metrics: Mapping[str, float | None]) -> float | None:
    """A trial's value of one objective from its measured metrics (None when one is missing)."""
    weights = weights_of(objective)
    if weights is None:
        return metrics.get(objective)
    parts = [metrics.get(n) for n in weights]
    if any(not _finite(v) for v in parts):
        return None
    return float(sum(w * v for w, v in zip(weights.values(), parts)))


def compared_metrics(objectives: Sequence[str]) -> list[str]:
    """The metrics that finalists are compared on: the objectives, a weighted one's components."""
    out: list[str] = []
    for o in objectives:
        for name in weights_of(o) or [o]:
            if name not in out:
                out.append(name)
    return out


def _check_metric(name: str) -> None:
    m = METRIC_BY_NAME.get(name)
    if m is None or m.direction == "info":
        known = ", ".join(n for n, d in METRIC_BY_NAME.items() if d.direction != "info")
        raise ConfigError(f"--objective: {name!r} is not a metric with a better direction; known: {PEAK_MEMORY}, {known}")


def resolve_objectives(names: Sequence[str], *, cuda: bool) -> list[str]:
    """Objective names -> metric-table names (or one weighted objective); ConfigError naming the known metrics."""
    if any(":" in n for n in names):
        if len(names) != 1:
            raise ConfigError("--objective: a weighted objective (METRIC:WEIGHT,...) is the only one; give it once")
        weights = parse_weighted(names[0], cuda=cuda)
        return [WEIGHTED + ",".join(f"{n}:{w:g}" for n, w in weights.items()) + ")"]
    out = []
    for name in names:
        name = _resolve_one(name, cuda)
        _check_metric(name)
        if name in out:
            raise ConfigError(f"--objective: {name} given twice")
        out.append(name)
    return out


def directions(objectives: Sequence[str]) -> list[str]:
    """Optuna directions for the objectives, from the metric table."""
    return ["maximize" if weights_of(n) is not None else "minimize" if metric(n).direction == "lower" else "maximize"
            for n in objectives]


def constraints(*, quality_db: float | None, floor_db: float, audio_failed: Sequence[str], peak_bytes: float | None,
                budget_bytes: int | None, slos: Sequence[Mapping]) -> dict[str, float]:
    """Constraint name -> value (<= 0 feasible); see the module docstring."""
    out = {"quality_floor": floor_db - min(quality_db, floor_db + QUALITY_HEADROOM_DB) if quality_db is not None else 1.0,
           "audio_checks": float(len(audio_failed))}
    if budget_bytes is not None:
        out["memory_budget"] = (peak_bytes - budget_bytes) / 2**20 if _finite(peak_bytes) else 1.0
    for v in slos:
        value = v.get("value")
        if not _finite(value):
            out[f"slo:{v['slo']}"] = 1.0
        else:
            out[f"slo:{v['slo']}"] = value - v["threshold"] if v["op"] == "<=" else v["threshold"] - value
    return out


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def feasible(values: Sequence[float]) -> bool:
    """Every constraint met."""
    return all(c <= 0 for c in values)


def pareto(points: Mapping[int, Sequence[float]], dirs: Sequence[str]) -> list[int]:
    """Keys of the non-dominated points (directions as Optuna's)."""
    signs = [1 if d == "minimize" else -1 for d in dirs]
    norm = {k: [s * v for s, v in zip(signs, vals)] for k, vals in points.items()}

    def dominates(a, b) -> bool:
        return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))

    return [k for k, a in norm.items() if not any(dominates(b, a) for j, b in norm.items() if j != k)]


# Per unit of the metric table, the smallest difference that counts: closest_to_ideal's ratios are taken over
# the value plus this floor, so a value at or near 0 (no stall, no goodput) has a ratio, and 0.1 ms against
# 2 ms of stall is not read as 20 times worse.
RESOLUTION = {"s": 0.01, "share": 0.01, "x": 0.01, "req/s": 0.01, "s/s": 0.01, "count": 1.0, "B": 2.0**20, "cores": 0.01}


def closest_to_ideal(points: Mapping[int, Sequence[float]], dirs: Sequence[str], objectives: Sequence[str]) -> int:
    """The key nearest the ideal point (each objective's best over `points`), by relative distance (ties: lowest key).

    Each objective's gap is the log of the ratio of the config's value to the best, both plus the
    metric's resolution (`RESOLUTION`, by its unit in the metric table: 10 ms, 1 MiB, 0.01 of a
    share or a rate), so that it counts by how many times worse it is: 3% more memory weighs log
    1.03, five times the TTFA log 5. Scaled to 0..1 over the points instead, a front spanning 1.6%
    of memory and 26x of TTFA made the two spans equal. An objective that is no metric of the table
    (a weighted sum, which can be negative; it is then the only objective) or has a negative value
    is scaled to 0..1 over the points.
    """
    keys = sorted(points)
    cols = list(zip(*(points[k] for k in keys)))

    def gap(i: int):
        lo, hi = min(cols[i]), max(cols[i])
        known = METRIC_BY_NAME.get(objectives[i])
        floor = RESOLUTION.get(known.unit) if known is not None else None
        if floor is not None and lo >= 0 and math.isfinite(hi):
            best = (lo if dirs[i] == "minimize" else hi) + floor
            return lambda v: abs(math.log((v + floor) / best))
        span = hi - lo
        if not math.isfinite(span) or span == 0:
            return lambda v: 0.0
        return lambda v: ((v - lo) if dirs[i] == "minimize" else (hi - v)) / span

    gaps = [gap(i) for i in range(len(cols))]

    def distance(k: int) -> float:
        return sum(g(v) ** 2 for g, v in zip(gaps, points[k]))

    return min(keys, key=lambda k: (distance(k), k))


def pooled(trials: Sequence[tuple[int, Mapping, Sequence[float], Mapping[str, float]]]
           ) -> dict[int, tuple[list[float], list[float]]]:
    """One entry per distinct config from (number, params, values, constraints) of complete trials:
    keyed by its first trial's number, the mean of its trials' values and, per constraint, the
    worst of the values its trials have for it (so it is feasible only when every trial was)."""
    groups: dict[int, list] = {}
    first: list[tuple[Mapping, int]] = []
    for number, params, values, cons in trials:
        key = next((n for p, n in first if p == params), None)
        if key is None:
            key = number
            first.append((params, number))
        groups.setdefault(key, []).append((values, cons))
    out = {}
    for key, group in groups.items():
        means = [math.fsum(col) / len(col) for col in zip(*(v for v, _ in group))]
        names = list(dict.fromkeys(n for _, c in group for n in c))
        worst = [max(c[n] for _, c in group if n in c) for n in names]
        out[key] = (means, worst)
    return out


def recommend(trials: Mapping[int, tuple[Sequence[float], Sequence[float]]], dirs: Sequence[str],
              baseline: int | None, objectives: Sequence[str]) -> tuple[int | None, str]:
    """(trial number, why) from number -> (values, constraints); see the module docstring."""
    ok = {k: vals for k, (vals, cons) in trials.items() if feasible(cons)}
    if not ok:
        return baseline, "no trial met every constraint: the baseline is recommended"
    front = {k: ok[k] for k in pareto(ok, dirs)}
    best = closest_to_ideal(front, dirs, objectives)
    return best, (f"closest to the ideal point among the {len(front)} feasible Pareto-optimal configs "
                  f"(of {len(ok)} feasible)")
