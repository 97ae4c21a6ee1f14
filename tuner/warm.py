"""Warm start: enqueue another study's feasible Pareto set as the first trials of a new one.

`pareto_params(study)` reads the old study's complete trials, one entry per distinct config (the
mean of its trials), keeps those whose recorded constraints are all met (`constraints` user
attribute, as this tuner writes it; a trial without any counts as feasible), takes the
non-dominated ones under that study's own directions, and returns their params. `warm_start` keeps, of each, the params the new space knows and whose value lies inside
the new distribution (a param the old space lacked is left to the sampler), drops duplicates and
the baseline's own params, and enqueues them after the baseline. What was kept or skipped is
returned as notes for the summary.
"""

from __future__ import annotations

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import TrialState

from vvbench.tuner.objectives import feasible, pareto, pooled


def pareto_params(study: optuna.Study) -> list[dict]:
    """The params of `study`'s feasible Pareto-optimal configs, in the order of their first trials; a config measured
    by several trials counts once, as their mean, feasible only when every one was (`pooled`, as the pick and
    pareto.json read the study)."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    configs = pooled([(t.number, t.params, t.values, t.user_attrs.get("constraints") or {}) for t in done])
    dirs = ["minimize" if d == optuna.study.StudyDirection.MINIMIZE else "maximize" for d in study.directions]
    points = {n: values for n, (values, cons) in configs.items() if feasible(cons)}
    front = set(pareto(points, dirs)) if points else set()
    return [t.params for t in done if t.number in front]


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
