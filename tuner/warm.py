"""Warm start: enqueue another study's feasible Pareto set as the first trials of a new one.

`pareto_params(study)` reads the old study's feasible configs (`feasible_configs`: one per distinct
config, the mean of its complete trials, feasible when every trial's recorded `constraints` were
met; a trial without any counts as feasible), takes the non-dominated ones under that study's own
directions, and returns their params. `warm_start` keeps, of each, the params the new space knows and whose value lies inside
the new distribution (a param the old space lacked is left to the sampler), drops duplicates and
the baseline's own params, and enqueues them after the baseline. What was kept or skipped is
returned as notes for the summary.
"""

from __future__ import annotations

import optuna
from optuna.distributions import BaseDistribution

from vvbench.tuner.objectives import pareto
from vvbench.tuner.outputs import feasible_configs


def pareto_params(study: optuna.Study) -> list[dict]:
    """The params of `study`'s feasible Pareto-optimal configs, in the order of their first trials; a config measured
    by several trials counts once, as their mean, feasible only when every one was (`pooled`, as the pick and
    pareto.json read the study)."""
    trials = study.get_trials(deepcopy=False)
    points = feasible_configs(trials)
    dirs = ["minimize" if d == optuna.study.StudyDirection.MINIMIZE else "maximize" for d in study.directions]
    return [trials[n].params for n in sorted(pareto(points, dirs))] if points else []


def _fits(dist: BaseDistribution, value) -> bool:
    try:
        return dist._contains(dist.to_internal_repr(value))
    except (ValueError, TypeError):
        return False


def warm_start(study: optuna.Study, source: optuna.Study, dists: dict[str, BaseDistribution], baseline: dict) -> list[str]:
    """Enqueue `source`'s Pareto set into `study` (see the module docstring); returns notes."""
    seen = [baseline]
    skipped: list[str] = []
    for params in pareto_params(source):
        kept = {k: v for k, v in params.items() if k in dists and _fits(dists[k], v)}
        skipped += [f"{k}={v}" for k, v in params.items() if k not in kept]
        if kept and all(kept != s for s in seen):
            seen.append(kept)
            study.enqueue_trial(kept, user_attrs={"warm_start": source.study_name})
    notes = [f"warm start: {len(seen) - 1} trial(s) enqueued from the Pareto set of study {source.study_name!r}"]
    if skipped:
        notes.append(f"warm start: left to the sampler (outside this space): {', '.join(sorted(set(skipped)))}")
    return notes
