"""The tuner's TPE start-up phase is sized to the study's trial budget, not Optuna's fixed 10."""

from __future__ import annotations

from vvbench.tuner.study import startup_trials, tuner_sampler


def test_a_short_study_is_not_all_random_search():
    assert startup_trials(8) == 2
    assert startup_trials(12) == 3
    assert startup_trials(20) == 5
    assert startup_trials(100) == 10  # never more than Optuna's own default
    assert startup_trials(3) == 2
    assert startup_trials(None) == 10


def test_the_sampler_uses_it():
    assert tuner_sampler(0, 12)._n_startup_trials == 3
