"""The timing verdict: a load-worker stall names the requests in flight on that worker, and shows in the renderings."""

from __future__ import annotations

import pandas as pd

from vvbench.reports.document import warnings_of
from vvbench.reports.render import head_rows, trust_lines
from vvbench.reports.trust import judge_trust


def rows() -> pd.DataFrame:
    # w0-a spans the stall, w0-b ends before it, w0-c starts after it, w1-d overlaps it on another worker
    return pd.DataFrame({"request_id": ["w0-a", "w0-b", "w0-c", "w1-d"], "worker": ["w0", "w0", "w0", "w1"],
                         "t_start": [100.0, 100.0, 102.0, 100.0], "e2e_s": [3.0, 0.5, 1.0, 3.0],
                         "clock": ["kernel", "kernel", "kernel", "read"]})


def loop(lag_at_101: float) -> pd.DataFrame:
    t = [100.0 + 0.01 * k for k in range(300)]
    lags = [lag_at_101 if abs(x - 101.5) < 0.005 else 0.001 for x in t]
    return pd.DataFrame({"t": t, "worker": "w0", "lag_s": lags, "tick_s": 0.01, "run_delay_s": 0.0, "cpu_s": 0.0})


def test_a_stall_over_the_threshold_names_the_overlapping_requests():
    trust = judge_trust(rows(), loop(0.5), threshold_s=0.05)
    assert not trust.trusted
    (stall,) = trust.stalls
    assert stall.worker == "w0" and stall.lag_s == 0.5 and stall.end == 101.5
    assert stall.requests == ["w0-a"]  # not w0-b (ended at 100.5 < 100.99), not w0-c, not another worker's
    assert trust.clocks == {"kernel": 3, "read": 1}
    assert any("w0-a" in w for w in trust.warnings) and any("1 rows are timed when read" in w for w in trust.warnings)
    assert trust.loop_lag_max_s == 0.5 and trust.run_delay_share == 0.0


def test_a_lag_under_the_threshold_is_trusted():
    trust = judge_trust(rows(), loop(0.04), threshold_s=0.05)
    assert trust.trusted and not trust.stalls
    assert judge_trust(rows(), loop(0.04), threshold_s=0.03).stalls  # the threshold is the user's


def test_no_loop_data_is_never_silently_trusted():
    empty = loop(0.0).iloc[0:0]
    trust = judge_trust(rows(), empty)
    assert not trust.trusted and "cannot be ruled out" in trust.warnings[0]


def test_the_renderings_name_the_stall():
    run = {"run_id": "r", "trust": judge_trust(rows(), loop(0.5)).model_dump(mode="json")}
    head, warnings = trust_lines(run)
    assert head.startswith("NOT TRUSTED: 1 load-worker stall")
    # the warnings feed the report page's and summary.md's "Notes and warnings", the verdict their facts table
    assert warnings and all(w in warnings_of(run) for w in warnings)
    assert ("timing", head) in head_rows(run)
    assert trust_lines({"run_id": "old"})[0].startswith("not watched")
