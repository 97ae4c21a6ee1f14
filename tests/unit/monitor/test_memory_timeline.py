"""The memory rules ticked as the supervisor ticks them, over synthetic RSS timelines at 10 Hz from ready on.

Each tick takes one sample, keeps it in a window as long as `ServiceSampling` keeps one, lets
`SettledMemory` take the growth base, and evaluates the configured rules on that tick's `Recent`.
The shapes are the ones measured on `vvbench serve --preset tiny` (docs/watchdog.md, *Warm-up is not a leak*):
the first batch allocating a few MiB at once, the requests queued during a restart each leaving
their leak within the first 5 s, then flat; a leak of 20 MB per request under two clients grows
by one 20 MiB step every 2 s, about 10 MiB/s.
"""

from __future__ import annotations

import math
import os
import time
from collections import deque

import pytest

from vvbench.monitor.watch.config import load_watch_config
from vvbench.monitor.watch.rules import ActionKind, Phase, Recent, evaluate
from vvbench.monitor.watch.sampling import ServiceSampling, SettledMemory, rows_kept

MiB = 2**20
HZ = 10
READY_T = 1_000.0
BASE = 400 * MiB
RAM = 1024 * MiB
GROWTH = 150 * 10**6  # +150MB
# the integration test's settings (tests/integration/test_watchdog_memory.py) and the defaults with a growth limit
TEST = {"memory.rss.max": "+150MB", "memory.rss.consecutive": 1, "memory.trend.window": "3s", "memory.trend.horizon": "6s",
        "memory.settle": "10s"}
DEFAULTS = {"memory.rss.max": "+150MB"}


def first_restart(rss_at, settings: dict, run_s: float):
    """(seconds after ready, action) of the first restart the rules call for within `run_s`, or None."""
    cfg = load_watch_config(None, {"command": ["serve"], "sample_hz": HZ, **settings})
    rules = cfg.rules()
    window: deque[dict] = deque(maxlen=rows_kept(cfg))
    baseline = SettledMemory(cfg.memory.settle, RAM)
    for k in range(int(run_s * HZ) + 1):
        s = k / HZ
        row = {"t": READY_T + s, "rss_bytes": rss_at(s)}
        window.append(row)
        baseline.note(row, READY_T)
        recent = Recent(now=READY_T + s, phase=Phase.RUNNING, samples=tuple(window), started_t=READY_T - 6, ready_t=READY_T,
                        ram_total_bytes=RAM, baseline=dict(baseline.bytes))
        restart = next((a for a in evaluate(rules, recent) if a.kind is ActionKind.RESTART), None)
        if restart is not None:
            return s, restart
    return None


def jitter(s: float) -> float:
    return 0.5 * MiB * math.sin(7.3 * s)  # RSS is never exactly flat


def ramp_then_flat(s: float) -> float:
    return BASE + 20 * MiB * min(s, 4.0) + jitter(s)


def queued_requests_then_flat(s: float) -> float:
    # after a restart: the first batch, then the two requests queued during the restart, batched together,
    # finish and leak 20 MiB each (the shape that restarted a healthy service at 5.8 s)
    return BASE + 8 * MiB * (s >= 0.2) + 20 * MiB * (s >= 3.0) + 20 * MiB * (s >= 3.5) + jitter(s)


def warm_up_past_the_growth_limit(s: float) -> float:
    return BASE + 20 * MiB * min(s, 8.0) + jitter(s)  # 160 MiB: more than +150MB over the memory at ready


def steady_leak(s: float) -> float:
    return BASE + 10 * MiB * s + jitter(s)


def stepwise_leak(s: float) -> float:
    return BASE + 20 * MiB * math.floor((s + 1) / 2)


@pytest.mark.parametrize("warm_up, settings, run_s", [
    (ramp_then_flat, TEST, 120), (ramp_then_flat, DEFAULTS, 300), (queued_requests_then_flat, TEST, 120),
    (warm_up_past_the_growth_limit, TEST, 120), (warm_up_past_the_growth_limit, DEFAULTS, 300),
], ids=["ramp-test", "ramp-defaults", "queued-test", "past-limit-test", "past-limit-defaults"])
def test_warm_up_growth_that_levels_off_is_never_restarted(warm_up, settings, run_s):
    # each of these was restarted when trends were judged from ready and growth counted from the first sample
    assert first_restart(warm_up, settings, run_s) is None


def test_a_steady_leak_is_restarted_while_the_horizon_still_covers_the_drain():
    # 10 MiB/s from ready; base at 10 s (500 MiB): the limit, 643 MiB, is 14.3 s of growth away, so the fit
    # projects it within the 6 s horizon from 18.3 s on, while the RSS is still 60 MiB (6 s of growth) below it
    s, action = first_restart(steady_leak, TEST, 120)
    assert action.reason == "memory_trend"
    assert 18.0 <= s <= 18.5, s
    assert action.values["limit_bytes"] == pytest.approx(steady_leak(10.0) + GROWTH)
    assert action.values["limit_bytes"] - action.values["value_bytes"] > 55 * MiB


def test_a_stepwise_leak_is_restarted_with_room_for_the_requests_in_flight():
    # one 20 MiB step every 2 s, as measured: restarted within 10 s of settling, while the RSS is still more
    # than the two requests a drain lets finish (40 MiB of leak) below the limit
    s, action = first_restart(stepwise_leak, TEST, 120)
    assert action.reason == "memory_trend"
    assert s <= 20.0, s
    assert action.values["limit_bytes"] - action.values["value_bytes"] > 40 * MiB


def test_a_slow_leak_is_restarted_under_the_defaults():
    # 1 MiB/s: base at 60 s, limit 143 MiB above it, projected within the 60 s horizon from 60 + 83 s on
    s, action = first_restart(lambda s: BASE + MiB * s + jitter(s), DEFAULTS, 400)
    assert action.reason == "memory_trend"
    assert 142.5 <= s <= 144.0, s
    assert action.values["limit_bytes"] - action.values["value_bytes"] > 55 * MiB


def test_a_growth_limit_counts_from_the_settled_memory_not_from_ready():
    # 100 MiB of warm-up in 5 s, flat, then a leak of 5 MiB/s from 20 s: over the settled 500 MiB + 150 MB
    # (643 MiB) at 48.7 s; counted from ready (400 MiB + 150 MB) it would have fired at 28.7 s
    def rss(s: float) -> float:
        return BASE + 20 * MiB * min(s, 5.0) + 5 * MiB * max(0.0, s - 20.0)

    s, action = first_restart(rss, {**TEST, "memory.trend.horizon": "0s"}, 120)
    assert action.reason == "memory"
    assert action.values["limit_bytes"] == BASE + 100 * MiB + GROWTH
    assert s == pytest.approx(20.0 + GROWTH / (5 * MiB), abs=0.15)


@pytest.mark.parametrize("limit, crossing_s", [("450MiB", 2.5), ("45%", 0.45 * RAM / (20 * MiB) - 20)])
def test_absolute_and_fractional_limits_apply_from_ready(limit, crossing_s):
    # the settle period holds back trends and growth bases only: 20 MiB/s from ready crosses within it
    s, action = first_restart(lambda s: BASE + 20 * MiB * s, {**DEFAULTS, "memory.rss.max": limit, "memory.rss.consecutive": 1},
                              30)
    assert action.reason == "memory"
    assert s == pytest.approx(crossing_s, abs=0.15)


def test_settled_memory_takes_each_sources_first_reading_once_settled():
    base = SettledMemory(10.0, RAM)
    base.note({"t": 1005.0, "rss_bytes": 1}, ready_t=None)  # not ready
    base.note({"t": 1009.9, "rss_bytes": 2}, ready_t=1000.0)  # warming up
    assert base.bytes == {}
    base.note({"t": 1010.0, "rss_bytes": 3, "gpu_proc_mem_bytes": None, "gpu_mem_used_bytes": None}, ready_t=1000.0)
    base.note({"t": 1011.0, "rss_bytes": 4, "gpu_proc_mem_bytes": 7}, ready_t=1000.0)  # NA before: GPU's base is here
    assert base.bytes == {"rss": 3, "gpu": 7}
    base.clear()
    assert base.bytes == {}


def test_service_sampling_publishes_a_growth_limit_once_settled():
    cfg = load_watch_config(None, {"command": ["serve"], "memory.rss.max": "+1GiB", "memory.settle": "300ms",
                                   "sample_stats": False})
    sampling = ServiceSampling(cfg)
    sampling.retarget(os.getpid(), None, new_incarnation=True)  # this process: a real tree to read
    try:
        ready_t = time.time()
        sampling.tick(running=True, ready_t=ready_t)
        assert sampling.baseline.bytes == {} and sampling.limits_bytes == {}
        time.sleep(0.35)
        row = sampling.tick(running=True, ready_t=ready_t)
        assert sampling.baseline.bytes["rss"] == row["rss_bytes"] > 0
        assert sampling.limits_bytes["rss"] == row["rss_bytes"] + 2**30
        sampling.tick(running=True, ready_t=ready_t)
        assert sampling.baseline.bytes["rss"] == row["rss_bytes"]  # taken once
        sampling.retarget(os.getpid(), None, new_incarnation=True)
        assert sampling.baseline.bytes == {}  # a new incarnation settles anew
    finally:
        sampling.close()
