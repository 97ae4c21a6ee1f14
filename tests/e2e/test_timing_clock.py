"""The rows' TTFA and E2E held against an independent clock (`tcpdump -i lo`, see tests/pcapclock.py).

Each test runs `vvbench run` against the scripted fake server while tcpdump captures the same
connections, and compares every successful row (warm-up included) with the packet times of its
request, its first audible window and its last byte. The worker is made busy on purpose: an
injected 500 ms stall of its event loop (`VVBENCH_INJECT_STALL`), and in the slow test many
concurrent streams of large bodies. Skipped where packet capture is not permitted.

What each waits for: the CLI's exit (a bounded run of a few seconds), then tcpdump's exit after
SIGTERM (it flushes its file); nothing polls a clock.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pcapclock
import pytest
from fakekit import FakeTTS, one_run_dir, scenario_file, vv

why = pcapclock.available()
pytestmark = pytest.mark.skipif(why is not None, reason=why or "")

STALL = "1.0:0.5"  # 1 s into the run, the worker's loop blocks for 500 ms


def captured_run(tmp_path, name: str, fake_flags=(), **scenario):
    scen = scenario_file(tmp_path / f"{name}.yaml", **scenario)
    with FakeTTS(*fake_flags) as fake:
        port = int(fake.url.rsplit(":", 1)[1])
        with pcapclock.Capture(port) as cap:
            r = vv("run", str(scen), "--target", "http", "--url", fake.url, "--out", str(tmp_path / name), "--json")
    assert r.returncode in (0, 1), r.stderr
    assert cap.dropped == 0, cap.stderr
    run_dir = one_run_dir(tmp_path / name)
    rows = pd.read_parquet(run_dir / "requests.parquet")
    errs = pcapclock.errors(rows, pcapclock.exchanges(cap.path, port))
    cap.cleanup()
    return run_dir, rows, errs


def assert_agrees(errs: pd.DataFrame, median_s=0.001, p99_s=0.003) -> None:
    for col in ("ttfa_err_s", "e2e_err_s"):
        err = errs[col].abs().to_numpy()
        assert np.median(err) <= median_s and np.percentile(err, 99) <= p99_s, (col, errs.sort_values(col).tail(5).to_string())


def assert_no_correlated_ends(errs: pd.DataFrame) -> None:
    # several rows ending at the same recorded instant while the packets say otherwise = a worker that was late
    same = errs.groupby((errs["end"] * 1000).round()).filter(lambda g: len(g) > 1)
    off = same[(same["end"] - same["clock_end"]).abs() > 0.003]
    assert off.empty, off.to_string()


@pytest.fixture
def stalled(monkeypatch):
    monkeypatch.setenv("VVBENCH_INJECT_STALL", STALL)  # the load worker inherits it from `vvbench run`


def test_a_stalled_loop_moves_no_kernel_stamped_figure(tmp_path, stalled):
    run_dir, rows, errs = captured_run(tmp_path, "stall", arrival={"closed": {"users": 3}}, warmup="0.5s", duration="2s")
    assert (rows["clock"] == "kernel").all()
    record = json.loads((run_dir / "run.json").read_text())
    trust = record["trust"]
    (stall,) = [s for s in trust["stalls"] if s["lag_s"] > 0.4]
    assert not trust["trusted"] and stall["requests"], trust
    hit = errs[errs["request_id"].isin(stall["requests"])]
    assert len(hit) and (hit[["ttfa_err_s", "e2e_err_s"]].abs() <= 0.003).all().all(), hit.to_string()
    assert_agrees(errs)
    summary = (run_dir / "summary.md").read_text()
    assert "NOT TRUSTED" in summary and stall["requests"][0] in summary
    page = (run_dir / "report.html").read_text()
    assert "NOT TRUSTED" in page and stall["requests"][0] in page
    assert record["status"] == "ok"  # a stall of the load generator is said, not a failure of the service


def test_without_kernel_stamps_the_rows_say_read(tmp_path):
    scen = scenario_file(tmp_path / "read.yaml", arrival={"closed": {"users": 2}}, duration="1s")
    with FakeTTS() as fake:
        r = vv("run", str(scen), "--target", "http", "--url", fake.url, "--out", str(tmp_path / "runs"), "--clock", "read")
    assert r.returncode == 0, r.stderr
    run_dir = one_run_dir(tmp_path / "runs")
    rows = pd.read_parquet(run_dir / "requests.parquet")
    assert len(rows) and (rows["clock"] == "read").all()
    trust = json.loads((run_dir / "run.json").read_text())["trust"]
    assert trust["clocks"] == {"read": len(rows)} and any("timed when read" in w for w in trust["warnings"])


@pytest.mark.slow
@pytest.mark.parametrize("repeat", range(5))
def test_rows_agree_with_the_packets_under_a_busy_worker(tmp_path, stalled, repeat):
    # three closed-loop users, then an open-loop class of many concurrent streams with large bodies
    # (2 s chunks of 96 kB), both with the 500 ms stall: every row, warm-up included
    _, _, closed = captured_run(tmp_path, "closed", arrival={"closed": {"users": 3}}, warmup="1s", duration="4s", seed=repeat)
    _, rows, open_ = captured_run(tmp_path, "open", fake_flags=("--chunk-s", "2.0", "--rtf", "0.5", "--chars-per-s", "4"),
                                  arrival={"poisson": {"rate": 12}}, warmup="1s",
                                  duration="4s", seed=repeat)
    assert len(open_) >= 30 and rows["warmup"].any()
    for errs in (closed, open_):
        assert (errs["clock"] == "kernel").all()
        assert_agrees(errs)
        assert_no_correlated_ends(errs)
