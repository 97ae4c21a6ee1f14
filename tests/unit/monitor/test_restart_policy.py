"""Backoff and the crash-loop guard as arithmetic on plain times."""

from __future__ import annotations

import pytest

from vvbench.monitor.watch.config import Restart
from vvbench.monitor.watch.restarts import RestartPolicy


def policy(**kw) -> RestartPolicy:
    return RestartPolicy(Restart.model_validate({"backoff": "1s", "backoff_factor": 2, "backoff_max": "5s", "stable": "60s",
                                                 "crash_loop": {"restarts": 4, "window": "100s"}, **kw}))


def test_backoff_doubles_up_to_the_maximum():
    p = policy()
    assert [p.decide(t).backoff_s for t in (0, 1, 2, 3)] == [1, 2, 4, 5]
    assert [d.attempt for d in [p.decide(200)]] == [5]  # outside the window: allowed, still "in a row"


def test_stable_service_starts_the_backoff_over():
    p = policy()
    p.decide(0)
    p.decide(10)
    p.running(now=50, ready_t=15)  # ready for 35 s: not stable yet
    assert p.decide(60).backoff_s == 4
    p.running(now=200, ready_t=70)  # ready for 130 s: stable
    assert p.decide(210).backoff_s == 1


def test_crash_loop_guard_counts_restarts_within_the_window():
    p = policy()
    assert all(p.decide(t).allowed for t in (0, 10, 20, 30))
    refused = p.decide(40)
    assert not refused.allowed and refused.recent_restarts == 4 and refused.window_s == 100
    assert p.decide(105).allowed  # the restart at 0 has left the window
    assert not p.decide(106).allowed


@pytest.mark.parametrize("restarts", [1, 3])
def test_r_restarts_then_the_next_is_refused(restarts):
    p = policy(crash_loop={"restarts": restarts, "window": "1m"})
    decisions = [p.decide(float(i)) for i in range(restarts + 1)]
    assert [d.allowed for d in decisions] == [True] * restarts + [False]
