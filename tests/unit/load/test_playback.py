"""The playback model on arrival timelines with known stalls."""

import math

import numpy as np
import pytest

from vvbench.artifacts.playback import Timelines, simulate, simulate_many

RATE = 1000  # samples per second: 1 sample = 1 ms, easy arithmetic


def steady(chunk_s: float, every_s: float, n: int, t0: float = 0.1) -> list[tuple[float, int]]:
    """n chunks of chunk_s seconds of audio, one every every_s seconds from t0."""
    return [(t0 + i * every_s, int(round((i + 1) * chunk_s * RATE))) for i in range(n)]


def test_faster_than_real_time_never_stalls():
    r = simulate(steady(0.5, 0.25, 10), RATE, start_s=0.3)
    assert (r.max_stall_s, r.underruns, r.underrun_s) == (0.0, 0, 0.0)


def test_everything_before_playback_means_no_stall():
    r = simulate([(0.1, 100), (0.2, 5000)], RATE, start_s=1.0)
    assert r.underruns == 0 and r.max_stall_s == 0.0


def test_one_pause_gives_one_stall_of_known_length():
    # 1 s of audio by t=0.2, playback starts at 0.3 -> runs out at 1.3; next audio at 2.0 -> 0.7 s stall
    arrivals = [(0.1, 500), (0.2, 1000), (2.0, 1500), (2.1, 2000)]
    r = simulate(arrivals, RATE, start_s=0.3)
    assert r.underruns == 1
    assert r.max_stall_s == pytest.approx(0.7)
    assert r.underrun_s == pytest.approx(0.7)
    assert r.stalls[0][0] == pytest.approx(1.3)


def test_prebuffer_absorbs_a_short_pause():
    arrivals = [(0.1, 500), (0.2, 1000), (1.25, 1500)]
    assert simulate(arrivals, RATE, start_s=0.3).underruns == 0  # runs out at 1.3, data at 1.25
    assert simulate(arrivals, RATE, start_s=0.2).underruns == 1  # runs out at 1.2, data at 1.25
    assert simulate(arrivals, RATE, start_s=0.2).max_stall_s == pytest.approx(0.05)


def test_slower_than_real_time_stalls_at_every_chunk():
    # 0.2 s of audio every 0.3 s: after the first chunk each one comes 0.1 s too late
    r = simulate(steady(0.2, 0.3, 5, t0=0.0), RATE, start_s=0.0)
    assert r.underruns == 4
    assert r.max_stall_s == pytest.approx(0.1)
    assert r.underrun_s == pytest.approx(0.4)


def test_longest_of_several_stalls_is_max_stall():
    arrivals = [(0.0, 100), (0.3, 200), (1.0, 300)]  # runs out at 0.1 (wait 0.2), at 0.4 (wait 0.6)
    r = simulate(arrivals, RATE, start_s=0.0)
    assert r.underruns == 2
    assert r.max_stall_s == pytest.approx(0.6)
    assert r.underrun_s == pytest.approx(0.8)


def test_playback_never_started_is_na():
    for start in (None, math.nan):
        r = simulate([(0.1, 100)], RATE, start_s=start)
        assert math.isnan(r.max_stall_s) and r.underruns == 0
    assert math.isnan(simulate([], RATE, start_s=0.1).max_stall_s)


def reference(arrivals, rate, start_s):
    """The player written as the plain loop of its definition (a test oracle, not the implementation)."""
    i, available = 0, 0
    while i < len(arrivals) and arrivals[i][0] <= start_s:
        available = arrivals[i][1]
        i += 1
    clock, played, stalls = start_s, 0.0, []
    for t, total in arrivals[i:]:
        if total <= available:
            continue
        runs_out = clock + (available - played) / rate
        if runs_out < t:
            stalls.append(t - runs_out)
            played = float(available)
        else:
            played += (t - clock) * rate
        clock, available = t, total
    return max(stalls, default=0.0), len(stalls), sum(stalls)


def random_timelines(rng, n):
    out = []
    for _ in range(n):
        k = int(rng.integers(0, 30))
        t = np.cumsum(rng.exponential(0.15, k)) + rng.uniform(0.05, 0.5)
        totals = np.cumsum(rng.choice([0, 1600, 3200, 9600], k))  # some pieces bring no new samples
        out.append(list(zip(t.tolist(), totals.tolist())))
    return out


def test_many_requests_at_once_match_the_definition_and_each_request_alone():
    rng = np.random.default_rng(3)
    timelines = random_timelines(rng, 300)
    rates = rng.choice([24_000, 16_000, 0], len(timelines), p=[0.6, 0.35, 0.05])
    starts = rng.uniform(0.1, 1.0, len(timelines))
    starts[::17] = np.nan  # never started
    offsets = np.concatenate([[0], np.cumsum([len(a) for a in timelines])])
    t = np.array([p[0] for a in timelines for p in a])
    totals = np.array([p[1] for a in timelines for p in a])
    many = simulate_many(Timelines.of(offsets, t, totals, rates), starts)
    assert many.underruns.sum() > 50  # the data really stalls
    # one very long timeline beside them: the scan instead of the grid, the same figures
    long_t, long_n = np.cumsum(np.full(20_000, 0.1)), np.cumsum(np.full(20_000, 2000))
    mixed = simulate_many(Timelines.of(np.append(offsets, offsets[-1] + 20_000), np.concatenate([t, long_t]), np.concatenate([totals, long_n]),
                                       np.append(rates, 24_000)), np.append(starts, 0.2))
    assert mixed.underruns[-1] > 1000
    for name in ("max_stall_s", "underruns", "underrun_s"):
        np.testing.assert_array_equal(getattr(mixed, name)[:-1], getattr(many, name))
    for i, arrivals in enumerate(timelines):
        alone = simulate(arrivals, int(rates[i]), starts[i])
        # the same arithmetic whatever else is replayed with it: exactly equal
        assert (alone.underruns, alone.max_stall_s, alone.underrun_s) == (many.underruns[i], many.max_stall_s[i], many.underrun_s[i]) or (
            math.isnan(alone.max_stall_s) and math.isnan(many.max_stall_s[i]))
        if math.isnan(starts[i]) or rates[i] == 0 or not arrivals:
            assert math.isnan(alone.max_stall_s) and alone.underruns == 0
            continue
        longest, count, total = reference(arrivals, int(rates[i]), starts[i])
        assert alone.underruns == count
        assert alone.max_stall_s == pytest.approx(longest, abs=1e-9)
        assert alone.underrun_s == pytest.approx(total, abs=1e-9)
        assert len(alone.stalls) == count and sum(d for _, d in alone.stalls) == pytest.approx(total, abs=1e-9)
