"""The capacity decisions: the Wilson bound, attainment per SLO, capacity, knee, instances and the search's steps."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from runkit import write_run

from vvbench.artifacts.reader import load_run
from vvbench.artifacts.record import RunStatus
from vvbench.reports.capacity import (
    attainments,
    capacity_load,
    decide,
    instances_needed,
    judge_point,
    knee,
    min_requests,
    wilson_lower,
)
from vvbench.reports.capacity_render import capacity_html, capacity_markdown
from vvbench.reports.capacity_search import next_load


def test_wilson_lower_bound_edges():
    assert wilson_lower(0, 0, 0.95) == 0.0
    assert wilson_lower(0, 10, 0.95) == 0.0
    # all of n met: the bound is n / (n + z^2), below 1 however large n is
    z2 = 1.959963984540054 ** 2
    assert wilson_lower(5, 5, 0.95) == pytest.approx(5 / (5 + z2))
    assert wilson_lower(1000, 1000, 0.95) < 1.0
    # more confidence, a lower bound; more data at the same share, a higher one
    assert wilson_lower(45, 50, 0.99) < wilson_lower(45, 50, 0.95)
    assert wilson_lower(90, 100, 0.95) > wilson_lower(9, 10, 0.95)
    with pytest.raises(ValueError):
        wilson_lower(3, 2, 0.95)


def test_min_requests_is_the_first_n_whose_perfect_bound_clears_the_target():
    n = min_requests(0.95, 0.95)
    assert wilson_lower(n, n, 0.95) >= 0.95 > wilson_lower(n - 1, n - 1, 0.95)
    assert n == 73
    assert min_requests(0.5, 0.95) == 4
    assert min_requests(1.0, 0.95) is None


def _rows(ttfa, status=None):
    n = len(ttfa)
    return pd.DataFrame({"ttfa_s": ttfa, "max_stall_s": [0.0] * n, "status": status or ["ok"] * n})


def test_attainment_counts_failed_requests_as_misses_and_uses_the_percentile_as_target():
    rows = _rows([0.5] * 9 + [math.nan], ["ok"] * 9 + ["http_error"])
    (a,) = attainments({"ttfa_p50_s": 1.0}, rows, 0.95)
    assert (a.k, a.n, a.target) == (9, 10, 0.5) and a.met
    (b,) = attainments({"ttfa_p95_s": 1.0}, rows, 0.95)
    assert b.target == 0.95 and not b.met  # 9/10 with 10 requests cannot prove 95%
    (c,) = attainments({"success_min": 0.5}, rows, 0.95)
    assert (c.k, c.n) == (9, 10)
    (d,) = attainments({"c100_min": 0.9}, rows, 0.95)
    assert d.target == 0.9 and d.k == 9
    # an SLO without a per-request form is judged on the run only
    assert attainments({"peak_rss_bytes_max": 1e9}, rows, 0.95) == []
    (e,) = attainments({"ttfa_p50_s": 1.0}, _rows([]), 0.95)
    assert e.n == 0 and not e.met


def test_judge_point_from_real_run_directories(tmp_path):
    fast = load_run(write_run(tmp_path / "fast", n=400, seed=1))
    slow = load_run(write_run(tmp_path / "slow", n=400, seed=1, slow=40.0))
    good, bad = judge_point(fast, 2, 0.95), judge_point(slow, 8, 0.95)
    assert good.met, good.why
    assert not bad.met and bad.why.startswith("ttfa_p95_s")
    assert {a.slo for a in good.attainments} == {"success_min", "ttfa_p95_s"}
    result = decide("smoke", "users", "sweep", [bad, good], 0.95, 10.0, target_load=10, headroom=0.8)
    assert result.capacity == 2 and [p.load for p in result.points] == [2, 8]
    assert result.fleet.instances == math.ceil(10 / (2 * 0.8)) and result.fleet.instances_n_plus_1 == result.fleet.instances + 1
    assert result.requests_per_minute == pytest.approx(good.throughput_rps * 60)
    page = capacity_html(result)
    assert page.count("<svg") == 3 and "http" not in page.replace("xmlns", "")
    assert "| 8 | FAIL |" in capacity_markdown(result)


def _pt(tmp_path, load, met, i):
    run = load_run(write_run(tmp_path / f"r{i}", n=400, seed=i, slow=1.0 if met else 40.0))
    return judge_point(run, load, 0.95)


def test_capacity_is_the_highest_met_load_below_the_first_unmet(tmp_path):
    pts = [_pt(tmp_path, x, met, i) for i, (x, met) in enumerate([(1, True), (2, True), (4, False), (8, True)])]
    assert [p.met for p in pts] == [True, True, False, True], [p.why for p in pts]
    cap, notes = capacity_load(pts)
    assert cap == 2 and notes and "non-monotone" in notes[0]
    assert capacity_load([pts[2]]) == (None, [])


def test_knee_of_a_latency_curve():
    assert knee([1, 2, 4, 8], [0.3, 0.35, 0.6, 3.0]) == 4
    assert knee([1, 2], [0.3, 3.0]) is None  # too few points
    assert knee([1, 2, 4], [1.0, 0.9, 0.8]) is None  # latency falling: no knee
    assert knee([1, 2, 4, 8], [0.3, None, 0.6, 3.0]) is not None  # a missing point is skipped


def test_instances_with_headroom_and_n_plus_1():
    assert instances_needed(100, 4, 0.8) == (32, 33)
    assert instances_needed(8, 10, 0.8) == (1, 2)  # exactly full at the headroom: one, not two
    assert instances_needed(1, 100, 0.8) == (1, 2)
    with pytest.raises(ValueError):
        instances_needed(10, 0, 0.8)
    with pytest.raises(ValueError):
        instances_needed(10, 4, 1.5)


def _search(capacity, *, start=1.0, cap=256.0, integer=True, resolution=1.0):
    seen: dict[float, bool] = {}
    while (x := next_load(seen, start=start, cap=cap, integer=integer, resolution=resolution)) is not None:
        assert x not in seen
        seen[x] = x <= capacity
    return seen


def test_search_brackets_by_doubling_then_bisects_integers():
    seen = _search(5)
    assert list(seen) == [1, 2, 4, 8, 6, 5]
    lo = max(x for x, ok in seen.items() if ok)
    assert lo == 5
    for c in (1, 3, 7, 12, 100):
        got = _search(c)
        assert max(x for x, ok in got.items() if ok) == c, c


def test_search_stops_when_the_start_fails_or_the_cap_is_met():
    assert _search(0) == {1.0: False}
    seen = _search(1000, cap=20)
    assert list(seen) == [1, 2, 4, 8, 16, 20] and all(seen.values())


def test_search_over_a_rate_stops_at_the_resolution():
    seen = _search(3.3, integer=False, resolution=0.1)
    met = max(x for x, ok in seen.items() if ok)
    unmet = min(x for x, ok in seen.items() if not ok)
    assert met <= 3.3 < unmet and unmet - met <= 0.1


def test_an_interrupted_point_is_kept_but_is_no_verdict(tmp_path):
    met = [_pt(tmp_path, x, True, i) for i, x in enumerate([1, 2])]
    slow = _pt(tmp_path, 4, False, 3)  # what the partial run showed before Ctrl-C: not a miss at 4
    run = load_run(write_run(tmp_path / "cut", n=400, seed=3, slow=40.0))
    run.record = run.record.model_copy(update={"status": RunStatus.ABORTED, "error": "interrupted (SIGTERM)"})
    cut = judge_point(run, 4, 0.95)
    assert cut.aborted and cut.met is None and cut.why == "run aborted: interrupted (SIGTERM)"
    assert not met[0].aborted and met[0].met is True and slow.met is False
    assert capacity_load([*met, cut]) == (2, [])
    above = _pt(tmp_path, 8, True, 4)
    # an unmeasured load is no miss, so no non-monotone note; but the capacity is said to rest on its neighbours
    assert capacity_load([*met, cut, above]) == (8, ["4 interrupted, no verdict: the capacity rests on the met loads on either "
                                                     "side, read as monotone"])
    result = decide("smoke", "users", "search", [*met, cut], 0.95, 10.0, interrupted="SIGTERM")
    assert result.capacity == 2 and result.interrupted == "SIGTERM" and [p.load for p in result.points] == [1, 2, 4]
    assert result.knee is None  # two finished points: the partial one is no point of the curve
    md = capacity_markdown(result)
    assert "| 4 | INTERRUPTED |" in md and "so far: SIGTERM interrupted the search" in md
    page = capacity_html(result)
    assert "class='interrupted'>interrupted</span>" in page and "<td class='INTERRUPTED'>INTERRUPTED</td>" in page
    # the first point interrupted: nothing decided, nothing read as a miss
    assert capacity_load([cut]) == (None, [])
    assert decide("smoke", "users", "sweep", [cut], 0.95, 1.0, interrupted="Ctrl-C").capacity is None
