"""The tune directory's summary: a config measured by several trials is reported as their mean."""

import json

import optuna
import pytest

from vvbench.runtime.config import RuntimeConfig
from vvbench.tuner.outputs import write_outputs


def test_the_summary_reports_a_config_measured_twice_by_the_mean_of_its_trials(tmp_path):
    dist = {"diffusion_steps": optuna.distributions.IntDistribution(6, 10)}
    study = optuna.create_study(directions=["minimize"], study_name="s")
    for steps, ttfa in [(10, 0.50), (9, 0.30), (8, 0.45), (9, 0.40), (10, 0.46)]:
        study.add_trial(optuna.trial.create_trial(
            params={"diffusion_steps": steps}, distributions=dist, values=[ttfa],
            user_attrs={"constraints": {"quality_floor": -1.0}, "baseline": not study.trials}))
    summary = write_outputs(study, tmp_path, ["ttfa_p95_s"], ["minimize"], RuntimeConfig(preset="tiny"),
                            lambda p: RuntimeConfig(preset="tiny", diffusion_steps=p["diffusion_steps"]), [], plots=False)
    # 9 steps (trials 1 and 3) leads at its mean 0.35, not at its luckier trial's 0.30; the baseline is 0.48
    assert summary["recommended_trial"] == 1
    assert abs(summary["recommended"]["ttfa_p95_s"] - 0.35) < 1e-12
    assert abs(summary["baseline"]["ttfa_p95_s"] - 0.48) < 1e-12
    assert abs(summary["ratio_recommended_to_baseline"]["ttfa_p95_s"] - 0.35 / 0.48) < 1e-9
    assert "diffusion_steps: 9" in (tmp_path / "recommended.yaml").read_text()
    assert json.loads((tmp_path / "summary.json").read_text())["recommended_trial"] == 1


def _two_objective_study(points):
    dist = {"diffusion_steps": optuna.distributions.IntDistribution(2, 10),
            "batch_window_ms": optuna.distributions.FloatDistribution(0, 50)}
    study = optuna.create_study(directions=["minimize", "maximize"], study_name="s")
    for steps, window, ttfa, goodput in points:
        study.add_trial(optuna.trial.create_trial(
            params={"diffusion_steps": steps, "batch_window_ms": window}, distributions=dist, values=[ttfa, goodput],
            user_attrs={"constraints": {"quality_floor": -1.0}, "baseline": not study.trials}))
    return study


def test_the_importances_say_which_trials_they_rest_on(tmp_path):
    from vvbench.reports.tune_report import importance_rows, load_tune

    # six trials, one of them best on both objectives: PED-ANOVA's best 10% is that one trial for both, so both
    # objectives get the same importances; the report must say they rest on one trial
    small = _two_objective_study([(10, 5, 0.26, 1.0), (4, 16, 0.15, 1.7), (2, 38, 0.12, 2.1), (9, 50, 0.35, 1.1),
                                  (9, 16, 0.22, 1.1), (8, 19, 0.13, 1.3)])
    summary = write_outputs(small, tmp_path / "small", ["ttfa_p95_s", "goodput_rps"], ["minimize", "maximize"],
                            RuntimeConfig(preset="tiny"), lambda p: RuntimeConfig(preset="tiny"), [], plots=False)
    basis = summary["importances_basis"]
    assert basis["ttfa_p95_s"] == {"complete": 6, "top_quantile": 0.1, "best": [2]}
    assert basis["goodput_rps"]["best"] == [2]  # the maximised objective's best is its highest, not its lowest
    importances = json.loads((tmp_path / "small" / "importances.json").read_text())
    assert importances["ttfa_p95_s"] == importances["goodput_rps"]
    rows = importance_rows(load_tune(tmp_path / "small"))
    assert rows[0][2] == "the best 10%: 1 of 6 complete trials (#2); a hint only, from so few"
    # thirty trials: the best three of each objective, no longer the same ones
    big = _two_objective_study([(2 + n % 9, n * 1.5, 0.1 + 0.01 * n, 3.0 - 0.1 * ((n * 7) % 30)) for n in range(30)])
    summary = write_outputs(big, tmp_path / "big", ["ttfa_p95_s", "goodput_rps"], ["minimize", "maximize"],
                            RuntimeConfig(preset="tiny"), lambda p: RuntimeConfig(preset="tiny"), [], plots=False)
    assert summary["importances_basis"]["ttfa_p95_s"]["best"] == [0, 1, 2]
    assert summary["importances_basis"]["goodput_rps"]["best"] == [0, 13, 26]
    assert importance_rows(load_tune(tmp_path / "big"))[1][2] == "the best 10%: 3 of 30 complete trials (#0, #13, #26)"


def test_the_pareto_front_is_of_configs_each_the_mean_of_its_trials(tmp_path):
    from vvbench.reports.tune_report import load_tune, pareto_rows
    from vvbench.tuner.warm import pareto_params

    # 9 steps' first trial (0.10 s, 3.0 req/s) alone dominates every other trial, but its second reads 0.34 s and
    # 2.8 req/s: as a config (0.22, 2.9) it is dominated by 8 steps, whose two trials pool to (0.22, 3.0)
    study = _two_objective_study([(10, 5, 0.50, 1.0), (9, 0, 0.10, 3.0), (8, 0, 0.20, 2.9), (9, 0, 0.34, 2.8), (8, 0, 0.24, 3.1)])
    write_outputs(study, tmp_path, ["ttfa_p95_s", "goodput_rps"], ["minimize", "maximize"], RuntimeConfig(preset="tiny"),
                  lambda p: RuntimeConfig(preset="tiny", diffusion_steps=p["diffusion_steps"]), [], plots=False)
    front = json.loads((tmp_path / "pareto.json").read_text())
    assert [(r["number"], r["trials"]) for r in front] == [(2, [2, 4])]
    assert front[0]["values"]["ttfa_p95_s"] == pytest.approx(0.22) and front[0]["values"]["goodput_rps"] == pytest.approx(3.0)
    assert pareto_params(study) == [{"diffusion_steps": 8, "batch_window_ms": 0}]  # a warm start reads the same front
    assert pareto_rows(load_tune(tmp_path))[0][0] == "2 (mean of trials 2, 4)"
