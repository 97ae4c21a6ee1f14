"""`vvbench compare` over run directories written through the run's writers (real schema, known timing)."""

from __future__ import annotations

import json

import pytest
from runkit import one_line_exit_2, vv, vv_process, write_run

from vvbench.artifacts.reader import load_run
from vvbench.reports.compare import compare_runs, holm


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {"a": write_run(root / "a", seed=1), "b": write_run(root / "b", seed=2), "slow": write_run(root / "slow", seed=3, slow=1.5),
            "host": write_run(root / "host", seed=4, hostname="other-host"), "preset": write_run(root / "preset", seed=5, preset="small"),
            "quiet": write_run(root / "quiet", seed=6, other_cpu=0.02), "busy": write_run(root / "busy", seed=7, other_cpu=0.8)}


def test_two_runs_of_the_same_service_do_not_regress(runs):
    r = vv("compare", str(runs["a"]), str(runs["b"]), "--format", "json")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    data = json.loads(r.stdout)
    assert data["regressed"] == []
    verdicts = {m["metric"]: m["verdict"] for m in data["metrics"]}
    assert "equivalent" in verdicts.values()
    assert data["method"]["correction"].startswith("Holm") and data["method"]["seed"] == 0


def test_a_slowed_service_regresses_in_ttfa_and_e2e(runs):
    r = vv_process("compare", str(runs["a"]), str(runs["slow"]))
    assert r.returncode == 1, r.stdout[-3000:] + r.stderr
    head = r.stdout.splitlines()[0]
    assert head.startswith("# vvbench compare: REGRESSED:")
    for metric in ("ttfa_p50_s", "ttfa_p95_s", "e2e_p50_s", "e2e_p95_s", "rtf_p50"):
        assert metric in head
    row = next(line for line in r.stdout.splitlines() if line.startswith("| e2e_p50_s |"))
    assert "regressed" in row and ("| +4" in row or "| +5" in row), row  # about +50%


def test_the_same_runs_give_the_same_answer(runs):
    first = vv("compare", str(runs["a"]), str(runs["slow"]), "--format", "json").stdout
    assert first == vv("compare", str(runs["a"]), str(runs["slow"]), "--format", "json").stdout
    other_seed = json.loads(vv("compare", str(runs["a"]), str(runs["slow"]), "--format", "json", "--seed", "7").stdout)
    assert other_seed["method"]["seed"] == 7 and set(other_seed["regressed"]) == set(json.loads(first)["regressed"])


def test_thresholds_per_metric(runs):
    a, slow = load_run(runs["a"]), load_run(runs["slow"])
    strict = compare_runs(a, slow)
    loose = compare_runs(a, slow, {"ttfa_p50_s": 1.0})
    assert "ttfa_p50_s" in strict.regressed and "ttfa_p50_s" not in loose.regressed
    r = vv("compare", str(runs["a"]), str(runs["slow"]), "--threshold", "3%,ttfa_p95=100%", "--format", "json")
    data = json.loads(r.stdout)
    by_name = {m["metric"]: m for m in data["metrics"]}
    assert by_name["ttfa_p95_s"]["threshold"] == 1.0 and by_name["ttfa_p95_s"]["verdict"] != "regressed"
    assert by_name["e2e_p50_s"]["threshold"] == 0.03


@pytest.mark.parametrize("threshold, needle", [
    ("latency_p95=10%", "unknown metric 'latency_p95'"),
    ("requests=10%", "unknown metric 'requests'"),  # no direction: not compared
    ("ttfa_p95=ten", "not a percentage"),
    ("5", "write 5%"),
])
def test_bad_thresholds_are_one_line(runs, threshold, needle):
    assert needle in one_line_exit_2(vv("compare", str(runs["a"]), str(runs["b"]), "--threshold", threshold))


@pytest.mark.parametrize("other, needle", [("host", "host differs: ci-host (base) vs other-host (new)"), ("preset", "preset differs")])
def test_runs_that_are_not_comparable_are_refused_unless_forced(runs, other, needle):
    assert needle in one_line_exit_2(vv("compare", str(runs["a"]), str(runs[other])))
    forced = vv("compare", str(runs["a"]), str(runs[other]), "--force", "--format", "json")
    assert forced.returncode in (0, 1), forced.stderr
    assert any(needle in w for w in json.loads(forced.stdout)["warnings"])


def test_broken_run_directories_name_the_file(runs, tmp_path):
    broken = write_run(tmp_path / "broken", seed=6)
    raw = (broken / "requests.parquet").read_bytes()
    (broken / "requests.parquet").write_bytes(raw[: len(raw) // 2])
    assert "requests.parquet" in one_line_exit_2(vv_process("compare", str(runs["a"]), str(broken)))
    (broken / "run.json").unlink()
    assert "run.json: missing" in one_line_exit_2(vv("compare", str(broken), str(runs["a"])))
    assert "no such run directory" in one_line_exit_2(vv("compare", str(runs["a"]), str(tmp_path / "nope")))


def test_html_overlays_both_runs_cdfs(runs, tmp_path):
    out = tmp_path / "cmp.html"
    r = vv("compare", str(runs["a"]), str(runs["slow"]), "--format", "html", "--out", str(out))
    assert r.returncode == 1
    page = out.read_text()
    for column in ("ttfa_s", "e2e_s"):
        assert f"id='chart-{column}'><svg" in page
    assert runs["a"].name in page and runs["slow"].name in page and "http" not in page


def test_holm_adjusts_step_down():
    assert holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert holm([]) == []


def test_a_run_measured_on_a_busy_host_is_refused_unless_forced(runs):
    # 0.8 of the host's 2 cores went to other processes: the timings are the host's, not the service's
    r = vv_process("compare", str(runs["quiet"]), str(runs["busy"]))
    one_line_exit_2(r)
    assert "other processes used 0.80 of the host's 2 CPU cores" in r.stderr and "new " in r.stderr, r.stderr
    assert vv_process("compare", str(runs["busy"]), str(runs["quiet"])).returncode == 2  # a busy baseline too
    forced = vv("compare", str(runs["quiet"]), str(runs["busy"]), "--force", "--format", "json")
    assert forced.returncode in (0, 1) and any("other processes used" in w for w in json.loads(forced.stdout)["warnings"])
    # a quiet host (0.02 cores of other work) is comparable
    assert vv_process("compare", str(runs["a"]), str(runs["quiet"])).returncode == 0


def test_a_run_on_a_busy_host_says_so_in_its_timing_warnings(runs):
    from vvbench.reports.render import trust_lines

    busy = json.loads((runs["busy"] / "run.json").read_text())
    quiet = json.loads((runs["quiet"] / "run.json").read_text())
    assert any("the host was busy: other processes used 0.80 of the host's 2 CPU cores" in w for w in trust_lines(busy)[1])
    assert not any("host was busy" in w for w in trust_lines(quiet)[1])


def _change(ratio, low, high, p, direction="lower", threshold=0.10):
    from vvbench.reports.compare import MetricChange
    c = MetricChange("e2e_p99_s", "s", direction, "requests", 0.5, 0.5 * ratio, 36, 36, threshold)
    c.ratio, c.ci_low, c.ci_high, c.p_value, c.p_adjusted = ratio, low, high, p, p
    return c


@pytest.mark.parametrize("direction, ratio, low, high, verdict", [
    # an A/A pair's E2E p99 on a quiet host (docs/benchmarks.md, g10 pair 7): point past 10%, interval back under it
    ("lower", 1.116, 1.055, 1.153, "inconclusive"),
    ("lower", 1.25, 1.14, 1.36, "regressed"),  # the whole interval worse than the threshold
    ("lower", 0.80, 0.70, 0.88, "improved"),
    ("lower", 0.85, 0.84, 0.91, "inconclusive"),  # better, but the interval reaches back over -10%
    ("higher", 0.85, 0.80, 0.89, "regressed"),  # goodput down: the whole interval under 1 - t
    ("higher", 0.88, 0.82, 0.93, "inconclusive"),
    ("lower", 1.02, 0.97, 1.06, "equivalent"),
])
def test_a_verdict_needs_the_whole_interval_past_the_threshold(direction, ratio, low, high, verdict):
    from vvbench.reports.compare import _note_point_only, _verdict
    c = _change(ratio, low, high, 0.001, direction)
    assert _verdict(c, 0.05) == verdict
    c.verdict = verdict
    _note_point_only(c, 0.05)
    assert ("reaches back under it" in c.note) == (verdict == "inconclusive" and abs(ratio - 1) > 0.10)


def test_a_change_past_the_threshold_that_is_not_significant_is_inconclusive():
    from vvbench.reports.compare import _verdict
    assert _verdict(_change(1.25, 1.14, 1.36, 0.2), 0.05) == "inconclusive"
