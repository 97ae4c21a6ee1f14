"""The summary from raw rows, and SLO judgement, on synthetic data with known answers."""


import numpy as np
import pandas as pd
import pytest

from vvbench.artifacts.metrics import METRICS, parse_slo
from vvbench.reports.slo import judge, request_thresholds
from vvbench.reports.summary import inflight_mask, summarize


def rows(n_ok=100, n_fail=5, n_warm=10) -> pd.DataFrame:
    ttfa = np.linspace(0.1, 1.0, n_ok)
    ok = pd.DataFrame({"t_start": np.arange(n_ok, dtype=float), "ttfa_s": ttfa, "ttfb_s": ttfa / 2, "e2e_s": ttfa * 3,
                       "audio_s": 2.0, "rtf": ttfa * 1.5, "max_stall_s": np.where(np.arange(n_ok) < 90, 0.0, 0.15),
                       "status": "ok", "warmup": False, "lag_s": np.nan})
    fail = pd.DataFrame({"t_start": np.arange(n_fail, dtype=float), "ttfa_s": 99.0, "ttfb_s": 99.0, "e2e_s": 99.0,
                         "audio_s": 0.0, "rtf": np.nan, "max_stall_s": np.nan, "status": "rejected", "warmup": False, "lag_s": np.nan})
    warm = ok.head(n_warm).assign(ttfa_s=50.0, warmup=True)
    return pd.concat([ok, fail, warm], ignore_index=True)


def test_percentiles_exclude_failed_and_warmup():
    s = summarize(rows(), None, window_s=100.0)
    assert s["ttfa_p50_s"] == pytest.approx(0.55)
    assert s["ttfa_p99_s"] < 1.0
    assert s["requests"] == 105 and s["ok"] == 100
    assert s["success"] == pytest.approx(100 / 105)
    assert s["c50"] == pytest.approx(0.9) and s["c200"] == pytest.approx(1.0)
    assert s["throughput_rps"] == pytest.approx(1.0)
    assert s["peak_rss_bytes"] is None  # no samples: NA, not an error


def test_goodput_applies_per_request_thresholds():
    slos = {"ttfa_p95_s": 0.5, "c100_min": 0.9}
    thresholds = request_thresholds(slos)
    assert thresholds == {"ttfa_s": 0.5, "max_stall_s": 0.1}
    s = summarize(rows(), None, window_s=100.0, request_slos=thresholds)
    good = int(((np.linspace(0.1, 1.0, 100) <= 0.5)).sum())
    assert s["goodput_rps"] == pytest.approx(good / 100.0)


def test_cpu_idle_only_while_in_flight():
    req = pd.DataFrame({"t_start": [10.0], "e2e_s": [5.0], "status": ["ok"], "warmup": [False]})
    samples = pd.DataFrame({"t": [5.0, 11.0, 14.0, 20.0], "sys_cpu_idle": [1.0, 0.2, 0.4, 1.0], "rss_bytes": [1, 5, 3, 2]})
    s = summarize(req, samples, window_s=10.0)
    assert s["cpu_idle_inflight"] == pytest.approx(0.3)
    assert s["peak_rss_bytes"] == 5
    assert inflight_mask(np.array([9.9, 10.0, 14.9, 15.0]), np.array([10.0]), np.array([15.0])).tolist() == [False, True, True, False]


def test_empty_run_summarizes_to_nas():
    empty = rows().iloc[0:0]
    s = summarize(empty, None, window_s=10.0)
    assert s["success"] is None and s["ttfa_p95_s"] is None and s["requests"] == 0


def test_slo_directions_suffixes_and_aliases():
    assert parse_slo("ttfa_p95_s", 5).op == "<="
    assert parse_slo("success_min", 0.99).op == ">="
    assert parse_slo("underrun_c100_min", 0.99).metric == "c100"
    assert parse_slo("rtf_p95_max", 1).op == "<="
    with pytest.raises(ValueError, match="unknown metric"):
        parse_slo("latency", 1)
    with pytest.raises(ValueError, match="requests_min or requests_max"):
        parse_slo("requests", 1)
    verdicts = judge({"ttfa_p95_s": 0.5, "success_min": 0.9, "peak_gpu_bytes_max": 1e9},
                     {"ttfa_p95_s": 0.4, "success": 0.8, "peak_gpu_bytes": None})
    assert [v.passed for v in verdicts] == [True, False, False]


def test_metric_table_is_complete_data():
    names = [m.name for m in METRICS]
    assert len(names) == len(set(names))
    for m in METRICS:
        assert m.direction in ("lower", "higher", "info") and m.unit and m.description
        assert not (m.name.endswith("_min") or m.name.endswith("_max")), m.name
