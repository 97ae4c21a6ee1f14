"""The tune directory's summary: a config measured by several trials is reported as their mean."""

import json

import optuna

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
