"""Finalists and noise: re-measure the best trials interleaved with the baseline before recommending.

One trial's run is one sample of a noisy machine, so the study's best may only have been lucky.
The finalists are at most `k` feasible configs, the Pareto-optimal ones first, nearest the ideal
point first (`vvbench.tuner.objectives.closest_to_ideal`'s scaling); when the front holds fewer than
`k` (with one objective it holds one), the next fronts fill the places, so that the re-measurement
can still overturn a lucky first place. The baseline is left out, and so is a config the study saw
no better than the baseline on any objective. Each is run
`repeats` times, interleaved with the baseline round by round — B F1 F2 B F1 F2 … — so that a
drift of the machine (another job starting, thermal state) falls on every config alike.

Each finalist is compared with the baseline on every objective by
`vvbench.reports.compare.compare_pooled`: the requests (TTFA p95) or the rate slices (goodput,
throughput) of all its repeats pooled, against the baseline's pooled the same way; the change is
the ratio finalist / baseline with a percentile bootstrap interval, the test Mann-Whitney U with
Holm's correction over the objectives, and the verdict `compare`'s (improved needs the adjusted
p < 0.05 and the whole interval beyond the 5 % threshold). Pooling the requests,
rather than comparing the `repeats` per-repeat p95s, is what gives an interval at all with three
repeats (three values give a bootstrap of ten distinct resamples and a rank test whose smallest
p is 0.1); the interleaving is what keeps the pooled rows honest about drift. Peak memory has one
value per run: its repeats are the values (inconclusive unless there are enough of them).

A finalist **beats the baseline** when at least one objective improved and none regressed. The
recommendation is the one that beats it on the most objectives; between those that beat it on as
many, the one nearest the ideal point on the re-measured values (`MetricChange.new`, its repeats
pooled), not on the study's: a finalist's study value is one run, often the luckiest of the study,
and the re-measurement is what the stage is for (study order where a value is missing; ties too).
When none beats it, the baseline is recommended and the decision says so. A finalist whose repeat
fails (a crash, no request succeeded) is out, with its reason.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

from vvbench.artifacts.reader import load_run
from vvbench.artifacts.record import RunStatus
from vvbench.artifacts.scenarios import Scenario
from vvbench.core.errors import TargetError
from vvbench.harness.run import run
from vvbench.reports.compare import compare_pooled
from vvbench.runtime.config import RuntimeConfig
from vvbench.tuner.objectives import closest_to_ideal, compared_metrics, directions, objective_value, pareto
from vvbench.tuner.trials import Server

BASELINE = "baseline"


def pick_finalists(points: Mapping[int, Sequence[float]], dirs: Sequence[str], baseline: Sequence[float] | None, k: int,
                   objectives: Sequence[str]) -> list[int]:
    """Up to `k` trial numbers from number -> values of feasible configs (the baseline's values apart): front by
    front, each nearest the ideal first; none that the baseline's values dominate or equal."""
    signs = [1 if d == "minimize" else -1 for d in dirs]

    def no_better(values) -> bool:
        return baseline is not None and all(s * v >= s * b for s, v, b in zip(signs, values, baseline))

    rest = {n: v for n, v in points.items() if not no_better(v)}
    order: list[int] = []
    while rest and len(order) < k:
        front = {n: rest[n] for n in pareto(rest, dirs)}
        while front and len(order) < k:
            best = closest_to_ideal(front, dirs, objectives)
            order.append(best)
            front.pop(best)
            rest.pop(best)
    return order


def _one_run(server: Server, scenario: Scenario, config: RuntimeConfig, out: Path) -> tuple[str | None, str | None]:
    """(run dir, None) or (None, why it failed); a transient failure is tried once more."""
    why = None
    for _ in (1, 2):
        try:
            server.apply(config)
        except TargetError as exc:
            why = f"service did not start: {exc}"
            continue
        result = run(scenario, target=server.target, out=out)
        if result.status is RunStatus.ABORTED:
            raise KeyboardInterrupt
        if result.status.completed and result.record.summary.get("ok"):
            return str(result.run_dir), None
        why = result.reason or f"run {result.status.value}: no measured request succeeded"
        if not server.alive():
            return None, f"service died: {why}"
    return None, why


def remeasure(server: Server, scenario: Scenario, configs: Mapping[str, RuntimeConfig], repeats: int, out: Path,
              on_run=None) -> tuple[dict[str, list[str]], dict[str, str], list[str]]:
    """Run every config `repeats` times, round by round (see the module docstring).

    Returns (label -> run dirs, label -> why it dropped out, the order the runs were made in).
    """
    dirs: dict[str, list[str]] = {label: [] for label in configs}
    dropped: dict[str, str] = {}
    order: list[str] = []
    for r in range(repeats):
        for label, config in configs.items():
            if label in dropped:
                continue
            run_dir, why = _one_run(server, scenario, config, out)
            order.append(label)
            if run_dir is None:
                dropped[label] = f"repeat {r + 1}: {why}"
            else:
                dirs[label].append(run_dir)
            if on_run is not None:
                on_run(label, r + 1, run_dir, why)
    return dirs, dropped, order


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def nearest_remeasured(rows: Sequence[dict], ranked: Sequence[str], objectives: Sequence[str]) -> tuple[dict, list[str]]:
    """(the row nearest the ideal point on its re-measured objective values, the objectives that measured it).

    A row's value of an objective is `objective_value` over its changes' `new` (a weighted objective its weighted
    sum); an objective some row has no finite value of (peak memory at one repeat has no mean compared) is left out.
    The first in `ranked` order on a tie, or, with no objective left, by `ranked` order alone ([] as the second)."""
    rows = sorted(rows, key=lambda r: ranked.index(r["label"]))
    values = [[objective_value(o, {c["metric"]: c.get("new") for c in r["changes"]}) for o in objectives] for r in rows]
    used = [i for i in range(len(objectives)) if all(_finite(v[i]) for v in values)]
    if not used:
        return rows[0], []
    names = [objectives[i] for i in used]
    points = {n: [v[i] for i in used] for n, v in enumerate(values)}
    return rows[closest_to_ideal(points, directions(names), names)], names


def decide(run_dirs: Mapping[str, list[str]], dropped: Mapping[str, str], objectives: list[str], ranked: list[str],
           seed: int = 0, load=load_run) -> dict:
    """Compare each finalist with the baseline on the study's `objectives` (a weighted one on its component metrics,
    `compared_metrics`) and choose (see the module docstring); plain data. `load` reads a run directory (`load_run`;
    a replay of recorded runs gives its own)."""
    metrics = compared_metrics(objectives)
    base_runs = [load(p) for p in run_dirs.get(BASELINE, [])]
    rows = []
    for label in ranked:
        row = {"label": label, "runs": run_dirs.get(label, []), "dropped": dropped.get(label), "changes": [],
               "improved": [], "regressed": [], "beats_baseline": False}
        if label not in dropped and len(base_runs) and run_dirs.get(label):
            changes = compare_pooled(base_runs, [load(p) for p in run_dirs[label]], metrics, seed=seed)
            row["changes"] = [asdict(c) for c in changes]
            row["improved"] = [c.metric for c in changes if c.verdict == "improved"]
            row["regressed"] = [c.metric for c in changes if c.verdict == "regressed"]
            row["beats_baseline"] = bool(row["improved"]) and not row["regressed"]
        rows.append(row)
    beating = [r for r in rows if r["beats_baseline"]]
    if BASELINE in dropped:
        winner, why = None, f"the baseline's re-measurement failed ({dropped[BASELINE]}): nothing to compare with"
    elif not beating:
        winner, why = None, (f"no finalist beat the baseline significantly (of {len(rows)} re-measured): "
                             "the baseline is recommended")
    else:
        most = max(len(r["improved"]) for r in beating)
        tied = [r for r in beating if len(r["improved"]) == most]
        best, by = nearest_remeasured(tied, ranked, objectives)
        winner = best["label"]
        why = (f"beats the baseline on {', '.join(best['improved'])} (the whole bootstrap ratio interval beyond "
               f"the 5% threshold, Holm-adjusted Mann-Whitney p < 0.05) and regressed on none")
        if len(tied) > 1:
            why += (f"; of the {len(tied)} that do, nearest the ideal point on the re-measured {', '.join(by)}" if by else
                    f"; of the {len(tied)} that do, the study's first (no objective re-measured for all of them)")
    return {"finalists": rows, "winner": winner, "why": why, "baseline_runs": run_dirs.get(BASELINE, []),
            "baseline_dropped": dropped.get(BASELINE)}
