"""Objectives from the metric table, constraints, the Pareto front and the recommendation (pure)."""

import pytest

from vvbench.core.errors import ConfigError
from vvbench.tuner.objectives import constraints, directions, feasible, pareto, recommend, resolve_objectives
from vvbench.tuner.quality import MAX_SNR_DB, snr_db


def test_objectives_are_named_from_the_metric_table():
    names = resolve_objectives(["ttfa_p95_s", "goodput_rps", "peak_memory"], cuda=False)
    assert names == ["ttfa_p95_s", "goodput_rps", "peak_rss_bytes"]
    assert resolve_objectives(["peak_memory"], cuda=True) == ["peak_gpu_bytes"]
    assert directions(names) == ["minimize", "maximize", "minimize"]
    with pytest.raises(ConfigError, match="'ttfa' is not a metric"):
        resolve_objectives(["ttfa"], cuda=False)
    with pytest.raises(ConfigError, match="not a metric with a better direction"):
        resolve_objectives(["requests"], cuda=False)


def test_constraints_cover_quality_audio_memory_and_each_slo():
    slos = [{"slo": "ttfa_p95_s", "op": "<=", "threshold": 1.0, "value": 1.5},
            {"slo": "success_min", "op": ">=", "threshold": 0.99, "value": 1.0},
            {"slo": "c100_min", "op": ">=", "threshold": 0.9, "value": None}]
    cons = constraints(quality_db=25.0, floor_db=30.0, audio_failed=[], peak_bytes=3 * 2**20, budget_bytes=2**21, slos=slos)
    assert cons == {"quality_floor": 5.0, "audio_checks": 0.0, "memory_budget": 1.0,
                    "slo:ttfa_p95_s": 0.5, "slo:success_min": pytest.approx(-0.01), "slo:c100_min": 1.0}
    assert not feasible(cons.values())
    ok = constraints(quality_db=100.0, floor_db=30.0, audio_failed=[], peak_bytes=None, budget_bytes=None, slos=slos[1:2])
    assert feasible(ok.values()) and "memory_budget" not in ok


def test_pareto_and_recommendation_never_pick_an_infeasible_trial():
    dirs = ["minimize", "maximize"]
    trials = {0: ([1.0, 1.0], [-70.0]),      # baseline, feasible
              1: ([0.1, 5.0], [33.0]),       # fastest corner: fails the quality floor
              2: ([0.5, 2.0], [-70.0]),      # feasible and better than the baseline on both
              3: ([0.4, 1.5], [-70.0])}      # feasible, a trade-off against 2
    assert pareto({k: v for k, (v, _) in trials.items()}, dirs) == [1]  # it dominates everything, unconstrained
    assert sorted(pareto({k: v for k, (v, _) in trials.items() if k != 1}, dirs)) == [2, 3]
    chosen, why = recommend(trials, dirs, baseline=0)
    assert chosen in (2, 3) and "feasible Pareto-optimal" in why
    assert recommend({1: trials[1]}, dirs, baseline=0) == (0, "no trial met every constraint: the baseline is recommended")


def test_snr_against_the_reference():
    import numpy as np

    ref = np.sin(np.linspace(0, 100, 4800)).astype(np.float32)
    assert snr_db(ref, ref) == MAX_SNR_DB
    assert snr_db(ref, ref * 0.9) == pytest.approx(20.0, abs=0.01)
    assert snr_db(ref, ref[:2400]) < 4  # a truncated answer pays for its missing half


def test_a_weighted_objective_is_one_maximised_sum_in_the_metrics_units():
    from vvbench.tuner.objectives import compared_metrics, objective_value

    names = resolve_objectives(["ttfa_p95_s:-1,goodput_rps:0.5,peak_memory:-1e-9"], cuda=False)
    assert names == ["weighted(ttfa_p95_s:-1,goodput_rps:0.5,peak_rss_bytes:-1e-09)"]
    assert directions(names) == ["maximize"]
    metrics = {"ttfa_p95_s": 2.0, "goodput_rps": 3.0, "peak_rss_bytes": 1e9}
    assert objective_value(names[0], metrics) == pytest.approx(-2.0 + 1.5 - 1.0)
    assert objective_value(names[0], {**metrics, "goodput_rps": None}) is None
    assert objective_value("ttfa_p95_s", metrics) == 2.0
    assert compared_metrics(names) == ["ttfa_p95_s", "goodput_rps", "peak_rss_bytes"]


@pytest.mark.parametrize(("given", "expect"), [
    (["ttfa_p95_s:x"], "expected METRIC:WEIGHT"),
    (["ttfa_p95_s:-1,goodput_rps"], "expected METRIC:WEIGHT"),
    (["ttfa_p95_s:-1,ttfa_p95_s:2"], "given twice"),
    (["ttfx:-1"], "'ttfx' is not a metric"),
    (["ttfa_p95_s:-1", "goodput_rps"], "the only one"),
])
def test_a_bad_weighted_objective_is_a_config_error(given, expect):
    with pytest.raises(ConfigError, match=expect):
        resolve_objectives(given, cuda=False)
