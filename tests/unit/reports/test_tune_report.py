"""The tune report renders from a tune directory's files alone, and names a broken file."""

import json

import pytest

from vvbench.core.errors import InputError
from vvbench.reports.tune_report import is_tune_dir, load_tune, tune_json, tune_markdown, tune_page

CHANGE = {"metric": "ttfa_p95_s", "unit": "s", "direction": "lower", "how": "requests", "base": 0.5, "new": 0.4, "ratio": 0.8,
          "ci_low": 0.7, "ci_high": 0.9, "p_adjusted": 0.001, "verdict": "improved", "n_base": 60, "n_new": 58}


def tune_dir(path, *, remeasured: bool):
    trials = [{"number": 0, "state": "complete", "baseline": True, "params": {"diffusion_steps": 10, "threads": None},
               "values": {"ttfa_p95_s": 0.5},
               "feasible": True, "quality_db": 100.0, "reason": None},
              {"number": 1, "state": "fail", "baseline": False, "params": {"diffusion_steps": 6}, "values": None,
               "feasible": False, "quality_db": None, "reason": "stale: its worker (h:1) stopped sending heartbeats"},
              {"number": 2, "state": "complete", "baseline": False, "params": {"diffusion_steps": 3}, "values": {"ttfa_p95_s": 0.3},
               "feasible": False, "quality_db": 6.6, "reason": None, "violated": ["quality_floor"]}]
    summary = {"study": "s", "objectives": ["ttfa_p95_s"], "directions": ["minimize"], "trials": 2, "counts": {"complete": 1, "fail": 1, "pruned": 0},
               "feasible": 1, "recommended_trial": 1 if remeasured else 0, "baseline_trial": 0,
               "why": "beats the baseline on ttfa_p95_s" if remeasured else "closest (not re-measured against the baseline: no finalists)",
               "remeasured": remeasured, "beats_baseline": remeasured, "baseline": {"ttfa_p95_s": 0.5}, "recommended": {"ttfa_p95_s": 0.5},
               "ratio_recommended_to_baseline": {"ttfa_p95_s": 1.0},
               "baseline_vs_finalist": {"finalist": "trial 1", "trial": 1, "recommended": True, "changes": [CHANGE]} if remeasured else None}
    path.mkdir()
    (path / "summary.json").write_text(json.dumps(summary))
    (path / "trials.json").write_text(json.dumps(trials))
    (path / "pareto.json").write_text(json.dumps([trials[0], trials[2]]))
    (path / "importances.json").write_text(json.dumps({"ttfa_p95_s": {"diffusion_steps": 1.0}}))
    if remeasured:
        (path / "finalists.json").write_text(json.dumps({"repeats": 3, "winner": "trial 1", "finalists": [
            {"label": "trial 1", "trial": 1, "runs": ["a", "b", "c"], "improved": ["ttfa_p95_s"], "regressed": [], "beats_baseline": True,
             "changes": [CHANGE]},
            {"label": "trial 2", "trial": 2, "runs": ["d", "e", "f"], "improved": [], "regressed": [], "beats_baseline": False,
             "changes": [{**CHANGE, "ratio": 0.97, "ci_low": 0.9, "ci_high": 1.05, "verdict": "inconclusive"}]}]}))
    return path


def test_a_remeasured_recommendation_shows_its_interval(tmp_path):
    data = load_tune(tune_dir(tmp_path / "D", remeasured=True))
    md = tune_markdown(data)
    assert "recommended: trial 1 — beats the baseline" in md
    assert "| ttfa_p95_s | 0.5 | 0.4 | 0.8 | [0.7, 0.9] | improved | 60/58 |" in md
    assert "| violates quality_floor |" in md  # an infeasible trial says which constraint it broke
    # each finalist's re-measured ratios, the recommended one marked: what the choice between them read
    assert "| trial 1 (recommended) | 1 | 3 | ttfa_p95_s x0.8 [0.7, 0.9] | ttfa_p95_s | — | yes |  |" in md
    assert "| trial 2 | 2 | 3 | ttfa_p95_s x0.97 [0.9, 1.05] | — | — | no |  |" in md
    assert "stale: its worker" in md
    assert "diffusion_steps=10, threads=default" in md  # a knob sampled as None is the runtime's default, not a missing value
    # the front says what each member trades against the baseline, the direction read from the study
    assert "| 2 | diffusion_steps=3 | ttfa_p95_s=0.3 | ttfa_p95_s x0.6 better | 6.6 |" in md
    assert "| 0 (baseline) | diffusion_steps=10, threads=default | ttfa_p95_s=0.5 | — | 100 |" in md
    page = tune_page(data)
    assert page.startswith("<!doctype html>") and "class='improved'" in page and "<script" not in page
    assert json.loads(tune_json(data))["summary"]["beats_baseline"] is True


def test_without_finalists_the_ratios_say_they_have_no_interval(tmp_path):
    md = tune_markdown(load_tune(tune_dir(tmp_path / "D", remeasured=False)))
    assert "recommended: the baseline" in md and "ratio (one run each, no interval)" in md


def test_a_broken_file_is_named(tmp_path):
    path = tune_dir(tmp_path / "D", remeasured=False)
    assert is_tune_dir(path) and not is_tune_dir(tmp_path)
    (path / "pareto.json").write_text("{not json")
    with pytest.raises(InputError, match="pareto.json: cannot be read as JSON"):
        load_tune(path)


def test_the_decision_lines_say_whose_values_are_whose(tmp_path):
    from vvbench.cli.tune import _decision_lines

    data = load_tune(tune_dir(tmp_path / "D", remeasured=True))
    lines = _decision_lines(data["summary"])
    assert lines[1] == "trial 1 / baseline:"
    assert lines[2] == "  ttfa_p95_s: x0.800 [0.700, 0.900] (95% bootstrap, 58 values against the baseline's 60), improved"


def test_against_the_baseline_reads_each_objective_s_direction():
    from vvbench.reports.tune_report import against_baseline

    summary = {"objectives": ["ttfa_p95_s", "goodput_rps", "peak_rss_bytes"], "directions": ["minimize", "maximize", "minimize"],
               "baseline": {"ttfa_p95_s": 0.2, "goodput_rps": 1.0, "peak_rss_bytes": 4e8}}
    text = against_baseline({"ttfa_p95_s": 1.0, "goodput_rps": 2.0, "peak_rss_bytes": 4e8}, summary)
    assert text == "ttfa_p95_s x5 worse, goodput_rps x2 better, peak_rss_bytes x1"
    assert against_baseline({"ttfa_p95_s": 0.1}, {"baseline": {}}) == "—"  # no baseline measured: no ratio
    assert against_baseline({"ttfa_p95_s": 0.20004}, summary) == "ttfa_p95_s x1"  # the same to the digits shown: neither
    # a weighted objective (maximised, negative) or a 0 has no ratio: the difference, read in its direction
    weighted = {"objectives": ["w"], "directions": ["maximize"], "baseline": {"w": -0.5}}
    assert against_baseline({"w": -0.25}, weighted) == "w +0.25 better"
    assert against_baseline({"w": -0.75}, weighted) == "w -0.25 worse"
    assert against_baseline({"w": -0.5}, weighted) == "w +0"  # no change: neither
    stall = {"objectives": ["max_stall_p95_s"], "directions": ["minimize"], "baseline": {"max_stall_p95_s": 0.0}}
    assert against_baseline({"max_stall_p95_s": 0.3}, stall) == "max_stall_p95_s +0.3 worse"
