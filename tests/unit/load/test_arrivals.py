"""Open-loop schedules: counts, spacing, stages, bursts, worker shares."""

import numpy as np
import pytest

from vvbench.artifacts.scenarios import Arrival
from vvbench.load.arrivals import default_pool, schedule, worker_share


def test_constant_is_evenly_spaced():
    t = schedule(Arrival(constant={"rate": 4}), 10.0, seed=0)
    assert len(t) == 40
    assert np.allclose(np.diff(t), 0.25)


def test_poisson_count_and_gaps():
    t = schedule(Arrival(poisson={"rate": 20}), 100.0, seed=1)
    assert abs(len(t) - 2000) < 4 * np.sqrt(2000)
    gaps = np.diff(t)
    assert gaps.mean() == pytest.approx(0.05, rel=0.1)
    assert np.std(gaps) / np.mean(gaps) == pytest.approx(1.0, rel=0.15)  # exponential: CV 1
    assert t == schedule(Arrival(poisson={"rate": 20}), 100.0, seed=1)  # deterministic
    assert all(0 <= x < 100 for x in t)


def test_stages_rates_and_burst():
    arr = Arrival(stages={"process": "constant", "stages": [
        {"duration": 10, "rate": 1}, {"duration": 10, "rate": 5, "burst": 15}, {"duration": 10, "rate": 0}]})
    t = np.array(schedule(arr, 30.0, seed=0))
    assert ((t >= 0) & (t < 10)).sum() == 10
    assert (t == 10.0).sum() >= 15
    assert ((t >= 10) & (t < 20)).sum() == 15 + 50
    assert (t >= 20).sum() == 0


def test_linear_ramp_puts_more_arrivals_late():
    arr = Arrival(stages={"process": "constant", "stages": [{"duration": 10, "rate": 0, "ramp_to": 10}]})
    t = np.array(schedule(arr, 10.0, seed=0))
    assert len(t) == 50  # area of the ramp
    assert (t < 5).sum() == pytest.approx(12.5, abs=1)


def test_worker_shares_partition_the_schedule():
    t = schedule(Arrival(poisson={"rate": 5}), 10.0, seed=2)
    shares = [worker_share(t, w, 3) for w in range(3)]
    indexes = sorted(i for share in shares for i, _ in share)
    assert indexes == list(range(len(t)))


def test_pool_covers_peak_rate_times_timeout():
    assert default_pool(Arrival(poisson={"rate": 2}), 60.0, 1) == 120
    assert default_pool(Arrival(poisson={"rate": 2}), 60.0, 4) == 30
    assert default_pool(Arrival(poisson={"rate": 0.1, "max_inflight": 7}), 60.0, 1) == 7
    assert default_pool(Arrival(poisson={"rate": 0.01}), 10.0, 1) == 16
