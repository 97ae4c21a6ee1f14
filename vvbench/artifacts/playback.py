"""The playback model: what a listener of a streamed response hears, and when it stalls.

The player starts at `ttfa_s + prebuffer_s` (first audible audio plus the prebuffer), playing
from the first sample of the stream in real time. Whenever it has played everything received
so far while the stream is not finished, it waits: that wait is a stall (an underrun). It
resumes, at once, when the next piece of audio arrives. After the last byte, what is buffered
plays out without stalls. Reported: the longest stall (`max_stall_s`), how many (`underruns`)
and their total (`underrun_s`); 0 when the audio was all received before playback started.

Input is the arrival timeline: `(t_s, samples_total)` pairs, seconds since the request was sent
and the samples received by then, in arrival order: both are nondecreasing (one monotonic clock
per request; totals are cumulative), which the replay relies on.

One implementation serves one request (`simulate`, what the load generator records) and a whole
run at once (`simulate_many`, what `Run.replay` re-runs at another prebuffer), so a replay at
the run's own prebuffer gives exactly the recorded figures. It is written as a scan, so that a
run of 100k requests replays in well under a second: with `a` the samples available before a
piece arrives and `G` the player's lag (the time its buffer runs dry is `G + a / rate`), a piece
arriving at `t` with new samples stalls the player when `G + a / rate < t`, for `t - (G + a /
rate)`, and moves the lag to `max(G, t - a / rate)` — so `G` is a running maximum per request,
starting at the playback start, and `a` the running maximum of the totals before the piece.
Running maxima and the per-request sums (in arrival order) are exact in floating point, so a
request's figures do not depend on which other requests were replayed with it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class PlaybackResult:
    """Stalls seen by the modelled player (all NaN when playback never started)."""

    start_s: float
    max_stall_s: float
    underruns: int
    underrun_s: float
    stalls: tuple[tuple[float, float], ...] = ()  # (start, duration) of each stall, seconds since t_start

    @classmethod
    def never(cls) -> PlaybackResult:
        return cls(math.nan, math.nan, 0, math.nan)


@dataclass(frozen=True)
class Replayed:
    """`simulate_many`'s answer: per request, and per piece where the player stalled waiting for it."""

    max_stall_s: np.ndarray  # float, NaN where playback never started
    underruns: np.ndarray  # int
    underrun_s: np.ndarray  # float, NaN where playback never started
    stall_piece: np.ndarray  # the pieces the player stalled waiting for (indices into the timelines), in order
    stall_at_s: np.ndarray  # for each: when the player ran dry, seconds since the request's t_start
    stall_s: np.ndarray  # for each: how long it waited


@dataclass(frozen=True)
class Timelines:
    """Many requests' arrival timelines, concatenated: request i's pieces are `[offsets[i], offsets[i+1])`.

    Built once per run (`Timelines.of`). Everything that does not depend on the playback start
    is computed here once: which request each piece belongs to, the samples available before it,
    and the running maximum of `t - a / rate` over the pieces that bring new samples (`floor`).
    Pieces that arrived before the start need no excluding from that maximum: for them
    `t - a / rate <= t <= start`, so `max(start, floor)` is the lag whatever the start. Replaying
    at another prebuffer is then a few elementwise operations.
    """

    offsets: np.ndarray  # int64, n + 1
    t_s: np.ndarray  # float, seconds since each request's t_start
    totals: np.ndarray  # float: cumulative samples received (exact in a double below 2**53)
    rates: np.ndarray  # float, one sample rate per request (0: no audio)
    row: np.ndarray  # the request of each piece
    first: np.ndarray  # the first piece of each request that has any
    longest: int

    @classmethod
    def of(cls, offsets, t_s, totals, sample_rates) -> Timelines:
        """From the offsets, the concatenated times and totals, and each request's sample rate."""
        offsets = np.asarray(offsets, dtype=np.int64)
        lengths = np.diff(offsets)
        return cls(offsets, np.asarray(t_s, dtype=float), np.asarray(totals, dtype=float), np.asarray(sample_rates, dtype=float),
                   np.repeat(np.arange(len(lengths)), lengths), offsets[:-1][lengths > 0], int(lengths.max()) if len(lengths) else 0)

    @cached_property
    def _grid(self) -> np.ndarray | None:
        """Each piece's place in a padded (piece, request) grid, or None when lengths are too uneven for one."""
        n, total = len(self.offsets) - 1, len(self.t_s)
        if n * self.longest > 4 * total + 4096:
            return None
        return (np.arange(total) - self.offsets[self.row]) * n + self.row

    @cached_property
    def available(self) -> np.ndarray:
        """Samples received before each piece (0 before a request's first)."""
        return self.exclusive(self.cummax(self.totals), 0.0)

    @cached_property
    def fresh(self) -> np.ndarray:
        """Whether each piece brings samples not received before (a piece that does not cannot end a stall)."""
        return (self.totals > self.available) & (self.rates[self.row] > 0)

    @cached_property
    def behind(self) -> np.ndarray:
        """Seconds of audio received before each piece."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.available / self.rates[self.row]

    @cached_property
    def floor(self) -> np.ndarray:
        """Before each piece: the running maximum of `t - behind` over the earlier fresh pieces (-inf: none)."""
        return self.exclusive(self.cummax(np.where(self.fresh, self.t_s - self.behind, -np.inf)), -np.inf)

    def cummax(self, values: np.ndarray) -> np.ndarray:
        """Running maximum of `values` within each request; exact (maxima never round)."""
        if self._grid is not None:
            # as a padded (piece, request) grid: one accumulate down the pieces, each step a vector over requests
            grid = np.full((self.longest, len(self.offsets) - 1), -np.inf)
            grid.ravel()[self._grid] = values
            return np.maximum.accumulate(grid, axis=0).ravel()[self._grid]
        # lengths too uneven for a grid: a prefix scan in log2(longest) passes
        out = values.copy()
        shift = 1
        while shift < self.longest:
            earlier = np.where(self.row[shift:] == self.row[:-shift], out[:-shift], -np.inf)
            np.maximum(out[shift:], earlier, out=out[shift:])
            shift *= 2
        return out

    def exclusive(self, values: np.ndarray, fill: float) -> np.ndarray:
        """`values` moved one piece later within each request (`fill` at each request's first piece)."""
        out = np.empty_like(values)
        if len(values):
            out[1:] = values[:-1]
            out[self.first] = fill
        return out


def simulate_many(timelines: Timelines, starts_s: np.ndarray) -> Replayed:
    """Run the player over many requests at once, from one playback start per request (NaN: never started).

    See the module docstring.
    """
    tl = timelines
    n = len(tl.offsets) - 1
    row = tl.row
    starts = np.where(np.isfinite(starts_s) & (tl.rates > 0), np.asarray(starts_s, dtype=float), np.nan)
    start = starts[row]  # NaN for a request that never played: every comparison with it is false
    # the pieces received by the start are buffered (times are nondecreasing: a prefix); the rest are replayed one by one
    dry_at = np.maximum(start, tl.floor) + tl.behind
    piece = np.flatnonzero((tl.t_s > start) & tl.fresh & (dry_at < tl.t_s))
    at_s = dry_at[piece]
    stall_s = tl.t_s[piece] - at_s
    rows = row[piece]
    underruns = np.bincount(rows, minlength=n)
    underrun_s = np.bincount(rows, weights=stall_s, minlength=n).astype(float)
    longest_stall = np.zeros(n)
    np.maximum.at(longest_stall, rows, stall_s)
    never = np.isnan(starts) | (np.diff(tl.offsets) == 0)
    longest_stall[never] = np.nan
    underrun_s[never] = np.nan
    return Replayed(longest_stall, underruns, underrun_s, piece, at_s, stall_s)


def simulate(arrivals: Sequence[tuple[float, int]], sample_rate: int, start_s: float | None) -> PlaybackResult:
    """Run the player over one request's arrival timeline (see the module docstring)."""
    if start_s is None or not arrivals or sample_rate <= 0 or math.isnan(start_s):
        return PlaybackResult.never()
    t = np.fromiter((a[0] for a in arrivals), dtype=float, count=len(arrivals))
    totals = np.fromiter((a[1] for a in arrivals), dtype=float, count=len(arrivals))
    r = simulate_many(Timelines.of([0, len(arrivals)], t, totals, [sample_rate]), np.array([start_s]))
    stalls = tuple((float(a), float(d)) for a, d in zip(r.stall_at_s, r.stall_s))
    return PlaybackResult(float(start_s), float(r.max_stall_s[0]), int(r.underruns[0]), float(r.underrun_s[0]), stalls)
