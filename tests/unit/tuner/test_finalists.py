"""Choosing finalists and deciding against the baseline, over run directories written through the run's writers."""

import pytest
from runkit import write_run

from vvbench.artifacts.reader import load_run
from vvbench.reports.compare import compare_pooled
from vvbench.tuner.finalists import BASELINE, decide, pick_finalists
from vvbench.tuner.objectives import closest_to_ideal

DIRS = ["minimize", "maximize"]
OBJ = ["ttfa_p95_s", "goodput_rps"]


def test_finalists_are_the_pareto_set_first_then_the_next_front_never_what_the_baseline_dominates():
    base = (1.0, 1.0)
    points = {1: (0.5, 2.0), 2: (0.9, 1.1), 3: (0.2, 0.5), 4: (2.0, 0.1), 5: (1.0, 0.8)}
    # the front {1, 3} nearest the ideal first, then 2 (dominated only by 1); the baseline dominates 4 and 5
    assert pick_finalists(points, DIRS, baseline=base, k=3, objectives=OBJ) == [1, 3, 2]
    assert pick_finalists(points, DIRS, baseline=base, k=5, objectives=OBJ) == [1, 3, 2]
    assert pick_finalists(points, DIRS, baseline=base, k=1, objectives=OBJ) == [1]
    assert pick_finalists({6: base}, DIRS, baseline=base, k=3, objectives=OBJ) == []  # no better on any objective
    assert pick_finalists(points, DIRS, baseline=None, k=5, objectives=OBJ) == [1, 3, 2, 5, 4]


def test_with_one_objective_the_places_after_the_best_go_to_the_next_best():
    # a single objective's front is the one best: alone it would leave the re-measurement nothing to overturn
    points = {1: (0.12,), 2: (0.095,), 3: (0.11,), 4: (0.30,), 5: (0.10,)}
    assert pick_finalists(points, ["minimize"], baseline=(0.17,), k=3, objectives=["ttfa_p95_s"]) == [2, 5, 3]


def test_a_few_percent_of_memory_does_not_outweigh_times_the_ttfa():
    # the feasible front of a 20-trial study on tiny (ttfa_p95_s, goodput_rps, peak_rss_bytes); trials 7, 8 and 13 are on
    # it only for 1.4-1.6% less memory than the rest, at 8-26x trial 19's TTFA. Scaled 0..1 over the front, that 1.6% span
    # weighed as much as the 26x one, and trial 8 took the second finalist's place.
    front = {7: (1.162, 1.0, 441364480.0), 8: (0.9964, 1.3, 441466880.0), 10: (0.1243, 1.7, 447254528.0),
             11: (0.1528, 1.8, 447528960.0), 12: (0.1507, 1.8, 447574016.0), 13: (1.402, 0.9, 440651776.0),
             19: (0.05329, 3.9, 447913984.0)}
    dirs, names = ["minimize", "maximize", "minimize"], ["ttfa_p95_s", "goodput_rps", "peak_rss_bytes"]
    assert pick_finalists(front, dirs, baseline=None, k=7, objectives=names) == [19, 10, 12, 11, 8, 7, 13]


def test_the_gap_to_the_ideal_counts_above_each_metric_s_resolution():
    dirs, names = ["minimize", "minimize"], ["ttfa_p95_s", "max_stall_p95_s"]
    # 0.1 ms against 2 ms of stall, both under the 10 ms that counts, is not 20 times worse: 3x the TTFA is
    assert closest_to_ideal({1: (0.1, 0.002), 2: (0.3, 0.0001)}, dirs, names) == 1
    assert closest_to_ideal({1: (0.1, 0.002), 2: (0.3, 0.0)}, dirs, names) == 1  # and a stall of exactly 0 changes nothing
    # no goodput at all is far from 3 req/s: a zero has a ratio, above the 0.01 req/s resolution
    assert closest_to_ideal({1: (0.1, 0.0), 2: (2.0, 3.0)}, ["minimize", "maximize"], ["ttfa_p95_s", "goodput_rps"]) == 2
    # a weighted objective (no metric of the table, possibly negative) is the only one; it is scaled over the points
    assert closest_to_ideal({1: (-1.0,), 2: (-0.5,), 3: (2.0,)}, ["maximize"], ["weighted(ttfa_p95_s:-1)"]) == 3
    assert closest_to_ideal({1: (1.0,), 2: (1.0,)}, ["minimize"], ["ttfa_p95_s"]) == 1  # ties: the lowest key


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {"base": [write_run(root / f"b{i}", seed=10 + i) for i in range(2)],
            "same": [write_run(root / f"s{i}", seed=20 + i) for i in range(2)],
            "fast": [write_run(root / f"f{i}", seed=30 + i, slow=0.6) for i in range(2)],
            "slow": [write_run(root / f"w{i}", seed=40 + i, slow=1.5) for i in range(2)],
            "fastest": [write_run(root / f"x{i}", seed=50 + i, slow=0.3) for i in range(2)]}


def test_pooled_repeats_tell_a_faster_config_from_noise(runs):
    base = [load_run(p) for p in runs["base"]]
    faster = {c.metric: c for c in compare_pooled(base, [load_run(p) for p in runs["fast"]], ["ttfa_p95_s", "e2e_p50_s"])}
    assert faster["ttfa_p95_s"].verdict == "improved" and faster["ttfa_p95_s"].ci_high < 1.0
    fast = [load_run(p) for p in runs["fast"]]
    one_each = [compare_pooled([b], fast, ["ttfa_p95_s"])[0].n_base for b in base]
    assert faster["ttfa_p95_s"].n_base == sum(one_each)  # the repeats' requests are pooled
    same = compare_pooled(base, [load_run(p) for p in runs["same"]], ["ttfa_p95_s", "e2e_p50_s"])
    assert all(c.verdict in ("equivalent", "inconclusive") for c in same)


def test_the_baseline_is_recommended_when_no_finalist_beats_it(runs):
    dirs = {BASELINE: [str(p) for p in runs["base"]], "trial 1": [str(p) for p in runs["same"]], "trial 2": [str(p) for p in runs["slow"]]}
    out = decide(dirs, {}, ["ttfa_p95_s", "e2e_p50_s"], ["trial 1", "trial 2"])
    assert out["winner"] is None and "no finalist beat the baseline" in out["why"]
    assert next(r for r in out["finalists"] if r["label"] == "trial 2")["regressed"]


def test_a_finalist_that_improves_and_regresses_nothing_is_recommended(runs):
    dirs = {BASELINE: [str(p) for p in runs["base"]], "trial 1": [str(p) for p in runs["same"]], "trial 3": [str(p) for p in runs["fast"]]}
    out = decide(dirs, {"trial 1": "repeat 2: service died"}, ["ttfa_p95_s", "e2e_p50_s"], ["trial 1", "trial 3"])
    assert out["winner"] == "trial 3" and "ttfa_p95_s" in out["why"]
    assert next(r for r in out["finalists"] if r["label"] == "trial 1")["dropped"] == "repeat 2: service died"


def test_of_finalists_that_all_beat_the_baseline_the_re_measurement_chooses_not_the_study_order(runs):
    # the study ranked trial 1 first (its one run the luckiest); re-measured, trial 2 is the faster of the two
    dirs = {BASELINE: [str(p) for p in runs["base"]], "trial 1": [str(p) for p in runs["fast"]],
            "trial 2": [str(p) for p in runs["fastest"]]}
    out = decide(dirs, {}, ["ttfa_p95_s"], ["trial 1", "trial 2"])
    assert all(r["beats_baseline"] for r in out["finalists"])
    assert out["winner"] == "trial 2" and "of the 2 that do, nearest the ideal point on the re-measured ttfa_p95_s" in out["why"]
    # beating the baseline on more objectives still comes first, whatever the re-measured values
    more = decide(dirs, {}, ["ttfa_p95_s", "e2e_p50_s"], ["trial 1", "trial 2"])
    assert {r["label"]: len(r["improved"]) for r in more["finalists"]} == {"trial 1": 2, "trial 2": 2}
    assert more["winner"] == "trial 2"


def test_the_re_measured_pick_is_nearest_the_ideal_and_falls_back_to_the_study_order():
    from vvbench.tuner.finalists import nearest_remeasured

    def row(label, ttfa, goodput, memory=4e8):
        return {"label": label, "changes": [{"metric": "ttfa_p95_s", "direction": "lower", "new": ttfa},
                                            {"metric": "goodput_rps", "direction": "higher", "new": goodput},
                                            {"metric": "peak_rss_bytes", "direction": "lower", "new": memory}]}

    ranked, two = ["trial 4", "trial 9", "trial 2"], ["ttfa_p95_s", "goodput_rps"]

    def pick(rows, objectives=two):
        best, by = nearest_remeasured(rows, ranked, objectives)
        return best["label"], by

    # trial 9: 10% more TTFA for twice the goodput is nearer the ideal (0.20 s, 4 req/s) than trial 4's half goodput
    assert pick([row("trial 4", 0.20, 2.0), row("trial 9", 0.22, 4.0)]) == ("trial 9", two)
    assert pick([row("trial 9", 0.2, 4.0), row("trial 4", 0.2, 4.0)]) == ("trial 4", two)  # a tie: the study's order
    # peak memory at one repeat has no mean compared (new is None): the choice is made on the rest, and says so
    three = [*two, "peak_rss_bytes"]
    assert pick([row("trial 4", 0.20, 2.0, None), row("trial 9", 0.22, 4.0, None)], three) == ("trial 9", two)
    assert pick([row("trial 2", 0.1, 9.0), row("trial 9", None, None)]) == ("trial 9", [])  # nothing left: the study's order
    # a weighted objective is the study's one objective: its weighted sum of the re-measured values chooses, not the
    # unweighted distance over its components (which would take trial 9, nearer on TTFA)
    weighted = ["weighted(ttfa_p95_s:-10,goodput_rps:1)"]
    assert pick([row("trial 4", 0.30, 5.0), row("trial 9", 0.20, 3.0)], weighted) == ("trial 4", weighted)  # 2.0 against 1.0


def test_finalist_candidates_pool_a_config_measured_twice_and_leave_the_baseline_out():
    import optuna

    from vvbench.tuner.study import baseline_values, finalist_candidates

    dist = {"steps": optuna.distributions.IntDistribution(6, 10)}
    study = optuna.create_study(directions=["minimize"])
    for steps, value, cons in [(10, 0.30, {"q": -10.0}), (8, 0.08, {"q": -2.5}), (9, 0.11, {"q": -5.4}),
                               (8, 0.16, {"q": -2.5}), (10, 0.28, {"q": -10.0}), (7, 0.05, {"q": 1.9})]:
        study.add_trial(optuna.trial.create_trial(params={"steps": steps}, distributions=dist, values=[value],
                                                  user_attrs={"constraints": cons, "baseline": not study.trials}))
    trials = study.get_trials()
    points = finalist_candidates(trials, trials[0])
    assert points == {1: [pytest.approx(0.12)], 2: [pytest.approx(0.11)]}  # 8 steps pooled; 10 (baseline) and 7 (infeasible) out
    assert pick_finalists(points, ["minimize"], None, 1, ["ttfa_p95_s"]) == [2]  # 8 steps' lucky first measurement (0.08) no longer leads
    assert baseline_values(trials, trials[0]) == [pytest.approx(0.29)]  # the baseline's two trials pooled


def test_a_study_that_saw_nothing_better_than_the_baseline_re_measures_nothing_and_says_so(tmp_path):
    import optuna

    from vvbench.artifacts.scenarios import resolve_scenario
    from vvbench.runtime.config import RuntimeConfig
    from vvbench.tuner.space import parse_space
    from vvbench.tuner.study import Tuner

    base = RuntimeConfig(preset="tiny")
    space = parse_space({"diffusion_steps": {"low": 6, "high": 10}}, base, cuda_available=False)
    study = optuna.create_study(directions=["minimize"])
    dist = space.distributions()
    for steps, value in [(10, 0.10), (9, 0.12), (8, 0.10)]:  # 8 steps only equals the baseline
        study.add_trial(optuna.trial.create_trial(params={"diffusion_steps": steps}, distributions=dist, values=[value],
                                                  user_attrs={"constraints": {"q": -1.0}, "baseline": not study.trials}))
    tuner = Tuner(study=study, space=space, scenario=resolve_scenario("smoke"), base=base, target_spec=None, out=tmp_path,
                  objectives=["ttfa_p95_s"], trials=3)
    assert tuner.finalise(k=3, repeats=3) is None  # returned before any service was started
    assert tuner.notes == ["finalists: none re-measured, none of the 2 feasible configs besides the baseline's was better than it "
                           "on any objective"]


def test_an_infeasible_baseline_does_not_keep_feasible_configs_from_the_finalists():
    import optuna

    from vvbench.tuner.study import baseline_values, finalist_candidates

    dist = {"steps": optuna.distributions.IntDistribution(6, 10)}
    study = optuna.create_study(directions=["minimize"])
    # the baseline measured fastest but over the memory budget; the feasible configs are all slower
    for steps, value, cons in [(10, 0.05, {"memory": 1.0}), (8, 0.08, {"memory": -1.0}), (9, 0.11, {"memory": -1.0})]:
        study.add_trial(optuna.trial.create_trial(params={"steps": steps}, distributions=dist, values=[value],
                                                  user_attrs={"constraints": cons, "baseline": not study.trials}))
    trials = study.get_trials()
    assert baseline_values(trials, trials[0]) is None
    assert pick_finalists(finalist_candidates(trials, trials[0]), ["minimize"], None, 3, ["ttfa_p95_s"]) == [1, 2]
