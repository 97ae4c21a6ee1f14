"""`vvbench tune` as a user runs it: real Optuna on SQLite, real `tiny` services, real runs.

Kept small for a 2-core machine: a 3-second scenario, a space of a few choices, few trials.
The default run keeps one short study (`test_a_two_trial_study_...`: 2 trials, no finalists, the
plots and the tune report); the longer ones, finalists included, are `-m slow`.
The crash test uses the `crash_after_requests` fault in the base config, which the embedded
service accepts only when started with `--allow-faults` (`CRASH_ARGS`).
"""

import json
from pathlib import Path

import optuna
import pytest
import torch
import yaml
from fakekit import scenario_file, vv

from vvbench.tuner.study import counted

CRASH_ARGS = ["--allow-faults"]


def space_file(path, data):
    path.write_text(yaml.safe_dump(data))
    return path


def one_error_line(r) -> str:
    lines = [line for line in r.stderr.splitlines() if line.strip() and not line.startswith("[I ")]
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("vvbench: error: "), r.stderr
    assert "Traceback" not in r.stderr
    return lines[0]


def load(db, name="s"):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{db}")


@pytest.fixture
def scenario(tmp_path):
    return scenario_file(tmp_path / "t.yaml", warmup="1s", duration="3s", slos={"success_min": 0.9})


def test_a_two_trial_study_writes_its_directory_plots_and_report(tmp_path):
    short = scenario_file(tmp_path / "s.yaml", warmup="0s", duration="2s", slos={"success_min": 0.9})
    space = space_file(tmp_path / "space.yaml", {"chunk_frames": {"choices": [4, 8]}})
    out = tmp_path / "D"
    r = vv("tune", "--preset", "tiny", "--scenario", str(short), "--space", str(space), "--out", str(out), "--study", "s",
           "--trials", "2", "--finalists", "0", "--hot-trials", "2", timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trials"] == 2 and not summary["remeasured"] and "not re-measured" in summary["why"]
    assert not (out / "finalists.json").exists()
    assert (out / "plots" / "history.png").read_bytes()[:4] == b"\x89PNG"
    md = vv("report", str(out))
    assert md.returncode == 0 and md.stdout.startswith("# vvbench tune: study s") and "ratio (one run each, no interval)" in md.stdout


@pytest.mark.slow
def test_a_short_study_remeasures_a_finalist_against_the_baseline_and_reports(tmp_path):
    # the shortest useful scenario; 2 trials: the baseline (10 steps) and a 9-step trial (feasible at the 20 dB mel floor)
    short = scenario_file(tmp_path / "s.yaml", warmup="0s", duration="2s", slos={"success_min": 0.9})
    space = space_file(tmp_path / "space.yaml", {"diffusion_steps": {"choices": [9, 10]}, "chunk_frames": {"choices": [4, 8]}})
    out = tmp_path / "D"
    r = vv("tune", "--preset", "tiny", "--scenario", str(short), "--space", str(space), "--out", str(out), "--study", "s",
           "--trials", "2", "--finalists", "1", "--repeats", "1", "--seed", "2", "--hot-trials", "2", timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    trials = json.loads((out / "trials.json").read_text())
    assert [t["number"] for t in trials] == [0, 1] and trials[0]["baseline"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["recommended_yaml"] == str(out / "recommended.yaml")
    # seed 2 samples 9 steps for trial 1; it is feasible, so it is the one finalist
    assert trials[1]["params"] != trials[0]["params"] and trials[1]["feasible"], trials[1]
    final = json.loads((out / "finalists.json").read_text())
    assert final["order"] == ["baseline", "trial 1"] and summary["remeasured"]
    changes = {c["metric"]: c for c in summary["baseline_vs_finalist"]["changes"]}
    assert set(changes) == {"ttfa_p95_s", "goodput_rps", "peak_rss_bytes"}
    assert changes["ttfa_p95_s"]["n_base"] >= 2 and changes["ttfa_p95_s"]["ci_low"] <= changes["ttfa_p95_s"]["ratio"] <= changes["ttfa_p95_s"]["ci_high"]
    assert "finalists: trial 1 repeat 1 -> " in r.stderr
    which = "the baseline" if summary["recommended_trial"] == 0 else "trial 1"
    assert f"recommended: {which} (" in r.stderr and summary["beats_baseline"] == (which == "trial 1")
    quality = {t["params"]["diffusion_steps"]: t["quality_db"] for t in trials if t["state"] == "complete"}
    assert quality.get(10) == 100.0
    for name in ("history", "importances", "pareto"):
        assert (out / "plots" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    page = vv("report", str(out), "--format", "html")
    assert page.returncode == 0 and "data:image/png;base64," in page.stdout
    assert "src='http" not in page.stdout and "<script" not in page.stdout  # self-contained
    md = vv("report", str(out))
    assert md.returncode == 0 and md.stdout.startswith("# vvbench tune: study s") and "## Pareto front" in md.stdout


@pytest.mark.slow
def test_a_study_runs_its_baseline_first_keeps_quality_and_resumes(tmp_path, scenario):
    # the fastest corner (2 diffusion steps) fails the 30 dB quality floor against the 10-step reference
    space = space_file(tmp_path / "space.yaml", {"diffusion_steps": {"choices": [2, 10]}, "max_batch": {"choices": [2, 4]},
                                                 "chunk_frames": {"choices": [4, 8]}})
    db, out = tmp_path / "T.db", tmp_path / "D"
    common = ["tune", "--preset", "tiny", "--scenario", str(scenario), "--space", str(space), "--storage", f"sqlite:///{db}",
              "--study", "s", "--out", str(out), "--seed", "3", "--finalists", "0"]
    r = vv(*common, "--trials", "4", timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    study = load(db)
    assert len(study.trials) == 4 and counted(study) == 4
    first = study.trials[0]
    assert first.user_attrs["baseline"] and first.params == {"diffusion_steps": 10, "max_batch": 8, "chunk_frames": 8}
    assert (out / "recommended.yaml").read_text().startswith("# vvbench serve --config")
    assert r.stdout.startswith("vvbench serve --config")
    lines = [line for line in r.stderr.splitlines() if line.startswith("trial ")]
    assert len(lines) == 4 and "(baseline)" in lines[0]

    r = vv(*common, "--trials", "6", "--resume", timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    study = load(db)
    assert len(study.trials) == 6
    trials = json.loads((out / "trials.json").read_text())
    for t in trials:
        if t["state"] == "complete":
            assert Path(t["run_dir"]).parent == out / "runs" and (Path(t["run_dir"]) / "run.json").is_file()
        if t["state"] == "complete" and t["params"]["diffusion_steps"] == 2:
            assert not t["feasible"] and "quality_floor" in t["violated"], t
    recommended = yaml.safe_load((out / "recommended.yaml").read_text())
    assert recommended["diffusion_steps"] == 10
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trials"] == 6 and summary["hot_knob_grouping"]["hot_or_unchanged"] >= 1


@pytest.mark.slow
def test_a_crashing_config_fails_with_its_reason_and_an_oversized_one_is_pruned_unstarted(tmp_path, scenario):
    from vvbench.artifacts.scenarios import load_scenario
    from vvbench.runtime.config import RuntimeConfig
    from vvbench.tuner.memory import planned_bytes

    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump({"preset": "tiny", "faults": {"crash_after_requests": 4}}))
    sc = load_scenario(scenario)
    small = planned_bytes(RuntimeConfig(preset="tiny", max_batch=8), sc, None, cuda_available=False).bytes
    large = planned_bytes(RuntimeConfig(preset="tiny", max_batch=256), sc, None, cuda_available=False).bytes
    budget = (small + large) // 2
    space = space_file(tmp_path / "space.yaml", {"max_batch": {"low": 200, "high": 256}})
    db, out = tmp_path / "T.db", tmp_path / "D"
    r = vv("tune", "--config", str(base), "--scenario", str(scenario), "--space", str(space), "--storage", f"sqlite:///{db}",
           "--study", "s", "--out", str(out), "--trials", "3", "--memory-budget", str(budget), "--hot-trials", "1", "--finalists", "0", *CRASH_ARGS,
           timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    study = load(db)
    states = [t.state for t in study.trials]
    # trial 0 (max_batch 8) fits and crashes after its 4th request; the others ask for 200-256 slots: pruned, never started
    assert states[0] == optuna.trial.TrialState.FAIL and "exit" in study.trials[0].user_attrs["reason"]
    assert "70" in study.trials[0].user_attrs["reason"]
    assert states[1:] == [optuna.trial.TrialState.PRUNED] * 2
    assert all("memory plan" in t.user_attrs["reason"] and "run_dir" not in t.user_attrs for t in study.trials[1:])
    assert len(list((out / "servers").iterdir())) == 1  # only the baseline's service was ever started
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pruned"] == 2 and summary["counts"]["fail"] == 1
    assert "2 pruned" in r.stderr


@pytest.mark.parametrize(("extra", "space", "expect"), [
    ([], {"max_btach": {"low": 1, "high": 4}}, "max_btach: unknown knob"),
    ([], {"chunk_frames": {"low": 9, "high": 3}}, "empty range"),
    (["--storage", "sqlite:////nonexistent-dir/x/T.db"], {"chunk_frames": {"choices": [4]}}, "cannot open the study storage"),
    (["--scenario", "no-such-scenario"], {"chunk_frames": {"choices": [4]}}, "unknown scenario 'no-such-scenario'"),
    (["--objective", "ttfa_p95_s:fast"], {"chunk_frames": {"choices": [4]}}, "expected METRIC:WEIGHT"),
    (["--warm-start", "nope"], {"chunk_frames": {"choices": [4]}}, "--warm-start: no study 'nope'"),
    (["--memory-budget", "12XB"], {"chunk_frames": {"choices": [4]}}, "--memory-budget: cannot read '12XB' as a size"),
    (["--timeout", "soon"], {"chunk_frames": {"choices": [4]}}, "--timeout"),
    (["--target", "http", "--url", "http://127.0.0.1:1", "--objective", "ttfa_p95_s"], {"chunk_frames": {"choices": [4]}},
     "http://127.0.0.1:1 is unreachable"),
    (["--target", "http", "--url", "http://127.0.0.1:1", "--objective", "peak_rss_bytes"], {"chunk_frames": {"choices": [4]}},
     "pass --service-pid PID"),
    pytest.param(["--target", "http", "--url", "http://127.0.0.1:1", "--objective", "ttfa_p95_s", "--memory-budget", "4GiB"],
                 {"chunk_frames": {"choices": [4]}}, "--memory-budget (checked against peak_rss_bytes",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="with CUDA the budget is checked against GPU memory")),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, scenario, extra, space, expect):
    args = ["tune", "--scenario", str(scenario), "--space", str(space_file(tmp_path / "space.yaml", space)),
            "--out", str(tmp_path / "D"), "--trials", "1", *extra]
    assert expect in one_error_line(vv(*args, timeout=120))
    db = tmp_path / "D" / "study.db"  # nothing is left behind that would refuse the corrected command
    assert not db.exists() or not optuna.get_all_study_summaries(f"sqlite:///{db}", include_best_trial=False)
