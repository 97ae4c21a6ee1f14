"""Watchdog rules as pure functions: plain lists of samples in, actions out."""

from __future__ import annotations

import numpy as np
import pytest

from vvbench.monitor.watch.rules import (
    ActionKind,
    CanaryFailures,
    HealthProbeFailures,
    Limit,
    MemoryOverThreshold,
    MemoryTrend,
    Phase,
    Probe,
    ProcessExited,
    Recent,
    StartTimeout,
    evaluate,
)

MiB = 2**20


def rows(values, t0=100.0, dt=0.2, key="rss_bytes", **extra):
    return [{"t": t0 + i * dt, key: v, **extra} for i, v in enumerate(values)]


def running(samples=(), probes=(), now=None, ready_t=100.0, **kw) -> Recent:
    now = now if now is not None else (samples[-1]["t"] if samples else ready_t + 1)
    return Recent(now=now, phase=Phase.RUNNING, samples=tuple(samples), probes=tuple(probes), started_t=90.0,
                  ready_t=ready_t, ram_total_bytes=kw.pop("ram", 8 * 2**30), **kw)


# -- memory over a threshold -------------------------------------------------------------------
def test_memory_over_threshold_needs_k_consecutive_samples():
    rule = MemoryOverThreshold("rss", Limit(bytes=500 * MiB), consecutive=3)
    assert rule(running(rows([400 * MiB, 510 * MiB, 520 * MiB]))) == []
    acts = rule(running(rows([400 * MiB, 510 * MiB, 520 * MiB, 530 * MiB])))
    assert [a.kind for a in acts] == [ActionKind.RESTART]
    assert acts[0].reason == "memory"
    assert acts[0].values["value_bytes"] == 530 * MiB
    assert acts[0].values["step_bytes"] == 10 * MiB


def test_memory_na_sample_breaks_the_run():
    rule = MemoryOverThreshold("rss", Limit(bytes=500 * MiB), consecutive=2)
    assert rule(running(rows([600 * MiB, None, 600 * MiB]))) == []
    assert rule(running(rows([600 * MiB, None, 600 * MiB, 601 * MiB])))


def test_memory_fraction_of_ram_and_unknown_total():
    rule = MemoryOverThreshold("rss", Limit(fraction=0.5), consecutive=1)
    assert rule(running(rows([5 * 2**30]), ram=8 * 2**30))
    assert not rule(running(rows([3 * 2**30]), ram=8 * 2**30))
    assert rule(running(rows([5 * 2**30]), ram=None)) == []  # a fraction of an unknown total cannot judge


def test_gpu_prefers_the_process_memory_and_falls_back_to_device_used():
    rule = MemoryOverThreshold("gpu", Limit(fraction=0.9), consecutive=1)
    own = rows([None], key="gpu_proc_mem_bytes", gpu_mem_used_bytes=95, gpu_mem_total_bytes=100)
    own[0]["gpu_proc_mem_bytes"] = 10
    assert rule(running(own)) == []  # the service itself holds 10 %, another process the rest
    device = rows([None], key="gpu_proc_mem_bytes", gpu_mem_used_bytes=95, gpu_mem_total_bytes=100)
    assert rule(running(device))[0].values["limit_bytes"] == pytest.approx(90)
    assert rule(running(rows([None], key="gpu_proc_mem_bytes"))) == []  # no GPU: NA, never over


def test_memory_rules_ignore_samples_from_before_ready_and_other_phases():
    rule = MemoryOverThreshold("rss", Limit(bytes=100), consecutive=2)
    samples = rows([500, 500, 500], t0=100.0, dt=1.0)
    assert rule(running(samples, ready_t=101.5)) == []  # only one sample after ready
    starting = Recent(now=103, phase=Phase.STARTING, samples=tuple(samples), started_t=99)
    assert rule(starting) == []


# -- memory trend ----------------------------------------------------------------------------------
def test_trend_fires_before_the_threshold_is_crossed():
    rule = MemoryTrend("rss", Limit(bytes=1000 * MiB), window_s=5.0, horizon_s=10.0, min_samples=10)
    growing = rows([500 * MiB + i * 10 * MiB for i in range(26)], dt=0.2)  # 50 MiB/s, 750 MiB now
    acts = rule(running(growing))
    assert len(acts) == 1 and acts[0].reason == "memory_trend"
    v = acts[0].values
    assert v["value_bytes"] < v["limit_bytes"]
    assert v["slope_bytes_per_s"] == pytest.approx(50 * MiB, rel=1e-6)
    assert v["eta_s"] == pytest.approx(5.0, abs=0.01)


def test_trend_quiet_when_flat_falling_far_or_too_short():
    rule = MemoryTrend("rss", Limit(bytes=1000 * MiB), window_s=5.0, horizon_s=10.0, min_samples=10)
    assert rule(running(rows([900 * MiB] * 26))) == []
    assert rule(running(rows([900 * MiB - i * MiB for i in range(26)]))) == []
    assert rule(running(rows([100 * MiB + i * MiB for i in range(26)]))) == []  # 5 MiB/s: 170 s away
    assert rule(running(rows([500 * MiB + i * 10 * MiB for i in range(5)]))) == []  # too few samples
    off = MemoryTrend("rss", Limit(bytes=1000 * MiB), window_s=5.0, horizon_s=0.0)
    assert off(running(rows([500 * MiB + i * 10 * MiB for i in range(26)]))) == []


def test_trend_waits_for_the_service_to_settle():
    rule = MemoryTrend("rss", Limit(bytes=1000 * MiB), window_s=5.0, horizon_s=10.0, min_samples=10, settle_s=5.0)
    growing = rows([500 * MiB + i * 10 * MiB for i in range(51)], dt=0.2)  # 50 MiB/s from ready (100) to 110
    assert rule(running(growing[:26])) == []  # 105: still settling
    assert rule(running(growing[:37])) == []  # 107.2: only 2.2 s of settled samples, under half the window
    acts = rule(running(growing[:39]))  # 107.6: 2.6 s settled, and the fit stays on them
    assert acts and acts[0].values["slope_bytes_per_s"] == pytest.approx(50 * MiB, rel=1e-6)


def test_trend_must_persist_a_step_that_has_flattened_does_not_fire():
    rule = MemoryTrend("rss", Limit(bytes=1000 * MiB), window_s=4.0, horizon_s=20.0, min_samples=10)
    t = np.arange(0, 4.01, 0.2)
    step = rows(list(500 * MiB + 50 * MiB * np.minimum(t, 2.0)))  # 100 MiB in 2 s, then flat for 2 s
    slope, now = np.polyfit(t - t[-1], [r["rss_bytes"] for r in step], 1)
    assert now + slope * 20.0 > 1000 * MiB  # the fit over the whole window alone projects the crossing
    assert rule(running(step)) == []  # its recent half is flat
    ongoing = rows(list(500 * MiB + 25 * MiB * t))
    acts = rule(running(ongoing))
    assert acts and acts[0].values["recent_slope_bytes_per_s"] == pytest.approx(25 * MiB, rel=1e-6)


def test_trend_uses_only_the_window():
    rule = MemoryTrend("rss", Limit(bytes=1000 * MiB), window_s=2.0, horizon_s=10.0, min_samples=5)
    old_growth = [100 * MiB + i * 40 * MiB for i in range(20)]  # steep, but long ago
    flat = [900 * MiB] * 20
    assert rule(running(rows(old_growth + flat))) == []


# -- health, exit, start ---------------------------------------------------------------------------
def probe(t, ok=True, status=200, latency=0.01, slow=False, error=None):
    return Probe(t=t, ok=ok, status=status, latency_s=latency, slow=slow, error=error)


def test_health_needs_n_failures_in_a_row():
    rule = HealthProbeFailures(3)
    bad = [probe(101 + i, ok=False, status=503) for i in range(3)]
    assert rule(running(probes=bad[:2])) == []
    assert rule(running(probes=[bad[0], probe(102), bad[1], bad[2]])) == []
    acts = rule(running(probes=bad))
    assert acts[0].reason == "health" and "HTTP 503" in acts[0].message


def test_slow_and_refused_probes_count_as_failures():
    rule = HealthProbeFailures(2)
    slow = [probe(101, ok=False, latency=3.0, slow=True), probe(102, ok=False, latency=3.0, slow=True)]
    assert "slow" in rule(running(probes=slow))[0].message
    refused = [probe(101, ok=False, status=None, error="Connection refused")] * 2
    assert "refused" in rule(running(probes=refused))[0].message


def test_health_ignores_probes_before_ready():
    rule = HealthProbeFailures(2)
    assert rule(running(probes=[probe(99, ok=False), probe(101, ok=False)], ready_t=100)) == []


def test_process_exit_while_running_or_starting_but_not_while_draining():
    rule = ProcessExited()
    acts = rule(running(exited=True, exit_code=70))
    assert acts[0].reason == "exit" and acts[0].values["exit_code"] == 70 and "code 70" in acts[0].message
    assert "signal 9" in rule(running(exited=True, exit_code=-9))[0].message
    starting = Recent(now=1, phase=Phase.STARTING, exited=True, exit_code=1, started_t=0)
    assert "while starting" in rule(starting)[0].message
    assert rule(Recent(now=1, phase=Phase.DRAINING, exited=True, exit_code=0)) == []
    assert rule(running()) == []


def test_start_timeout():
    rule = StartTimeout(30.0)
    assert rule(Recent(now=129, phase=Phase.STARTING, started_t=100)) == []
    assert rule(Recent(now=131, phase=Phase.STARTING, started_t=100))[0].reason == "start_timeout"
    assert rule(Recent(now=131, phase=Phase.RUNNING, started_t=100, ready_t=110)) == []


def test_canary_failures_rule():
    rule = CanaryFailures(2)
    assert rule(running(canary_ok=(True, False))) == []
    assert rule(running(canary_ok=(False, False)))[0].reason == "canary"


def test_evaluate_keeps_rule_order_and_rules_are_pure():
    rules = [ProcessExited(), MemoryOverThreshold("rss", Limit(bytes=1), consecutive=1)]
    recent = running(rows([10]), exited=True, exit_code=1)
    first, second = evaluate(rules, recent), evaluate(rules, recent)
    assert [a.reason for a in first] == ["exit", "memory"] == [a.reason for a in second]


def test_growth_limit_is_relative_to_the_settled_memory():
    rule = MemoryOverThreshold("rss", Limit(growth_bytes=150 * MiB), consecutive=1)
    samples = rows([500 * MiB, 640 * MiB])
    assert rule(running(samples, baseline={"rss": 500 * MiB})) == []
    acts = rule(running(rows([500 * MiB, 660 * MiB]), baseline={"rss": 500 * MiB}))
    assert acts and acts[0].values["limit_bytes"] == 650 * MiB
    assert rule(running(rows([500 * MiB, 660 * MiB]))) == []  # not settled yet, no base: cannot judge
    assert str(Limit(growth_bytes=150 * MiB)) == "+150 MiB over the settled memory"
