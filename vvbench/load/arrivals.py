"""Open-loop arrival schedules, computed in advance: offsets (seconds from the run's start).

An open-loop generator must not slow down when the server does (coordinated omission), so the
arrival times are fixed before the first request: the load workers only wait for each time and
send. Every process is the time-rescaling of a unit-rate process: with the cumulative rate
Λ(t) = ∫ rate, arrivals are Λ⁻¹(S_k) where S_k = k (constant) or a running sum of Exp(1) draws
(Poisson). This handles fixed rates, piecewise stages and linear ramps with one inversion.
Bursts add `burst` arrivals at their stage's start. The schedule is the same in every worker;
worker `w` of `n` sends arrivals `w, w + n, w + 2n, ...`.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from vvbench.artifacts.scenarios import Arrival


@dataclass(frozen=True)
class Segment:
    """Rate r0 -> r1 linearly over [start, start + duration)."""

    start: float
    duration: float
    r0: float
    r1: float
    burst: int = 0

    def mass(self, tau: float) -> float:
        """Expected arrivals in [start, start + tau)."""
        return self.r0 * tau + (self.r1 - self.r0) * tau * tau / (2 * self.duration)

    def invert(self, m: float) -> float:
        """tau in [0, duration] with mass(tau) = m."""
        a = (self.r1 - self.r0) / (2 * self.duration)
        if abs(a) < 1e-12:
            return m / self.r0 if self.r0 > 0 else self.duration
        disc = self.r0 * self.r0 + 4 * a * m
        tau = (-self.r0 + math.sqrt(max(0.0, disc))) / (2 * a)
        return min(self.duration, max(0.0, tau))


def segments(arrival: Arrival, window_s: float) -> tuple[str, list[Segment]]:
    """(process, segments covering [0, window_s)) for an open-loop arrival."""
    if arrival.poisson is not None:
        return "poisson", [Segment(0.0, window_s, arrival.poisson.rate, arrival.poisson.rate)]
    if arrival.constant is not None:
        return "constant", [Segment(0.0, window_s, arrival.constant.rate, arrival.constant.rate)]
    if arrival.stages is None:
        raise ValueError("closed-loop arrivals have no schedule")
    out, t = [], 0.0
    for st in arrival.stages.stages:
        if t >= window_s:
            break
        d = min(st.duration, window_s - t)
        r1 = st.rate if st.ramp_to is None else st.rate + (st.ramp_to - st.rate) * d / st.duration
        out.append(Segment(t, d, st.rate, r1, st.burst))
        t += st.duration
    return arrival.stages.process, out


def schedule(arrival: Arrival, window_s: float, seed: int) -> list[float]:
    """Sorted arrival offsets in [0, window_s) for the whole run (all workers)."""
    process, segs = segments(arrival, window_s)
    rng = random.Random(f"arrivals:{seed}")
    times: list[float] = []
    level = rng.expovariate(1.0) if process == "poisson" else 0.5  # constant: first arrival at half a gap
    base = 0.0  # Λ at the current segment's start
    for seg in segs:
        times.extend([seg.start] * seg.burst)
        total = seg.mass(seg.duration)
        while level < base + total:
            times.append(seg.start + seg.invert(level - base))
            level += rng.expovariate(1.0) if process == "poisson" else 1.0
        base += total
    return sorted(t for t in times if t < window_s)


def worker_share(offsets: list[float], worker: int, workers: int) -> list[tuple[int, float]]:
    """(global index, offset) of the arrivals worker `worker` of `workers` sends."""
    return [(i, offsets[i]) for i in range(worker, len(offsets), workers)]


def peak_rate(arrival: Arrival) -> float:
    """Highest offered rate (requests/s) of an open-loop arrival, bursts not counted."""
    if arrival.poisson is not None:
        return arrival.poisson.rate
    if arrival.constant is not None:
        return arrival.constant.rate
    if arrival.stages is not None:
        return max(max(s.rate, s.ramp_to or 0.0) for s in arrival.stages.stages)
    return 0.0


def default_pool(arrival: Arrival, longest_timeout_s: float, workers: int) -> int:
    """Concurrent requests per worker for an open loop: enough for the peak rate x the timeout."""
    given = (arrival.poisson or arrival.constant or arrival.stages).max_inflight  # type: ignore[union-attr]
    if given:
        return given
    bursts = max((s.burst for s in arrival.stages.stages), default=0) if arrival.stages else 0
    need = peak_rate(arrival) * longest_timeout_s / max(1, workers) + bursts
    return int(min(1000, max(16, math.ceil(need))))
