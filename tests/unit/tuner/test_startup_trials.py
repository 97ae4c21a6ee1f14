"""The tuner's sampler: a Gaussian process after a start-up phase sized to the study's trial budget
(not Optuna's fixed 10), with TPE behind it for a study whose constraint names differ."""

from __future__ import annotations

import warnings

import optuna
import pytest

from vvbench.tuner.study import TunerSampler, startup_trials, tuner_sampler

SPACE = {"steps": optuna.distributions.IntDistribution(2, 10), "chunk": optuna.distributions.CategoricalDistribution([1, 2, 4])}


def test_a_short_study_is_not_all_random_search():
    assert startup_trials(8) == 2
    assert startup_trials(12) == 3
    assert startup_trials(20) == 5
    assert startup_trials(100) == 10  # never more than Optuna's own default
    assert startup_trials(3) == 2
    assert startup_trials(None) == 10


def test_the_sampler_is_a_gaussian_process_with_that_start_up():
    s = tuner_sampler(0, 12)
    assert isinstance(s, optuna.samplers.GPSampler) and s._n_startup_trials == 3


def _tell(study, t, constraints):
    for k, v in constraints.items():
        t.set_constraint(k, v)
    study.tell(t, [abs(t.params["steps"] - 7) + t.params["chunk"]])


def test_the_model_finds_a_constrained_optimum_after_the_start_up():
    study = optuna.create_study(sampler=tuner_sampler(0, 20))
    for _ in range(20):
        t = study.ask(SPACE)
        _tell(study, t, {"quality_floor": 6.0 - t.params["steps"]})  # steps >= 6 feasible
    feasible = [t for t in study.trials if all(v <= 0 for v in t.constraints.values())]
    assert min(t.values[0] for t in feasible) == 1  # 7 steps, chunk 1
    modelled = study.trials[startup_trials(20):]
    assert sum(1 for t in modelled if t.params["steps"] >= 6) > len(modelled) / 2  # it learned the floor


def test_a_study_with_different_constraint_names_is_sampled_by_tpe_not_refused():
    """A study resumed under another scenario carries other SLO names: GP alone raises on such a study."""
    study = optuna.create_study(sampler=TunerSampler(0, 2))
    for i in range(6):
        t = study.ask(SPACE)
        _tell(study, t, {"quality_floor": -1.0, **({"slo:ttfa_p95_s": -1.0} if i < 3 else {"slo:e2e_p95_s": -1.0})})
    assert TunerSampler.mixed_constraints(study)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = study.ask(SPACE)  # does not raise
    assert set(t.params) == {"steps", "chunk"}
    plain = optuna.create_study(sampler=optuna.samplers.GPSampler(seed=0, n_startup_trials=2))
    for tr in study.trials[:6]:
        plain.add_trial(tr)
    with pytest.raises(ValueError, match="constraint names"):
        plain.ask(SPACE)
