"""Objectives from the metric table, constraints, the Pareto front and the recommendation (pure)."""

import pytest

from vvbench.core.errors import ConfigError
from vvbench.tuner.objectives import constraints, directions, feasible, pareto, pooled, recommend, resolve_objectives
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


def test_the_quality_constraint_reads_at_most_ten_db_of_headroom():
    # audio identical to the reference reads 100 dB; as -70 it dwarfed the -5..+7 dB of the configs around
    # the floor and flattened the GP's model of the constraint (bench/tune_sample_efficiency.py: the tuner
    # found the grid's best in 15 of 30 noiseless seeds with it, 30 of 30 without)
    def value(q):
        return constraints(quality_db=q, floor_db=30.0, audio_failed=[], peak_bytes=None, budget_bytes=None, slos=[])["quality_floor"]

    assert value(100.0) == value(40.0) == value(55.0) == -10.0
    assert value(35.4) == pytest.approx(-5.4) and value(28.1) == pytest.approx(1.9) and value(6.6) == pytest.approx(23.4)
    assert value(30.0) == 0.0 and feasible([value(30.0)]) and not feasible([value(29.9)])


OBJ2 = ["ttfa_p95_s", "goodput_rps"]


def test_pareto_and_recommendation_never_pick_an_infeasible_trial():
    dirs = ["minimize", "maximize"]
    trials = {0: ([1.0, 1.0], [-70.0]),      # baseline, feasible
              1: ([0.1, 5.0], [33.0]),       # fastest corner: fails the quality floor
              2: ([0.5, 2.0], [-70.0]),      # feasible and better than the baseline on both
              3: ([0.4, 1.5], [-70.0])}      # feasible, a trade-off against 2
    assert pareto({k: v for k, (v, _) in trials.items()}, dirs) == [1]  # it dominates everything, unconstrained
    assert sorted(pareto({k: v for k, (v, _) in trials.items() if k != 1}, dirs)) == [2, 3]
    chosen, why = recommend(trials, dirs, baseline=0, objectives=OBJ2)
    assert chosen in (2, 3) and "feasible Pareto-optimal" in why
    assert recommend({1: trials[1]}, dirs, baseline=0, objectives=OBJ2) == (0, "no trial met every constraint: the baseline is recommended")


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


def test_a_config_measured_twice_counts_once_as_the_mean_of_its_trials():
    a, b = {"steps": 8, "window": 25.0}, {"steps": 8, "window": 0.0}
    trials = [(0, {"steps": 10, "window": 5.0}, [0.30], {"q": -10.0}),
              (1, a, [0.080], {"q": -2.5}),           # a lucky measurement of the slower config
              (2, b, [0.110], {"q": -2.5}),
              (3, b, [0.085], {"q": -2.5}),
              (4, a, [0.120], {"q": -2.5, "slo": 0.2}),  # and its second: over an SLO
              (5, b, [0.090], {"q": -2.5, "slo": -0.1})]
    configs = pooled(trials)
    assert sorted(configs) == [0, 1, 2]  # keyed by each config's first trial
    assert configs[2][0] == [pytest.approx(0.095)]
    assert configs[1] == ([pytest.approx(0.100)], [-2.5, 0.2])  # worst per constraint: infeasible
    assert configs[2][1] == [-2.5, -0.1]
    chosen, _ = recommend(configs, ["minimize"], baseline=0, objectives=["ttfa_p95_s"])
    assert chosen == 2  # per trial, the lucky 0.080 of config a would have won
    assert recommend({n: (v, list(c.values())) for n, _, v, c in trials}, ["minimize"], baseline=0, objectives=["ttfa_p95_s"])[0] == 1
