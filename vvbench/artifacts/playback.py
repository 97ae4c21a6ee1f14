"""The playback model: what a listener of a streamed response hears, and when it stalls.

The player starts at `ttfa_s + prebuffer_s` (first audible audio plus the prebuffer), playing
from the first sample of the stream in real time. Whenever it has played everything received
so far while the stream is not finished, it waits: that wait is a stall (an underrun). It
resumes, at once, when the next piece of audio arrives. After the last byte, what is buffered
plays out without stalls. Reported: the longest stall (`max_stall_s`), how many (`underruns`)
and their total (`underrun_s`); 0 when the audio was all received before playback started.

Input is the arrival timeline: `(t_s, samples_total)` pairs, seconds since the request was sent
and the samples received by then, in arrival order (both nondecreasing: totals are cumulative).

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
    stall_at_s: np.ndarray  # per piece: when the player ran dry waiting for it (NaN: no stall)
    stall_s: np.ndarray  # per piece: how long it waited (0: no stall)


@dataclass(frozen=True)
class Timelines:
    """Many requests' arrival timelines, concatenated: request i's pieces are `[offsets[i], offsets[i+1])`.

    Built once per run (`Timelines.of`); what does not depend on the playback start — which
    request each piece belongs to, the samples available before it — is computed here, so
    replaying at several prebuffers pays only for what changes.
    """

    offsets: np.ndarray  # int64, n + 1
    t_s: np.ndarray  # float, seconds since each request's t_start
    totals: np.ndarray  # float: cumulative samples received (exact in a double below 2**53)
    row: np.ndarray  # the request of each piece
    first: np.ndarray  # the first piece of each request that has any
    longest: int

    @classmethod
    def of(cls, offsets, t_s, totals) -> Timelines:
        """From the offsets and the concatenated times and totals."""
        offsets = np.asarray(offsets, dtype=np.int64)
        lengths = np.diff(offsets)
        return cls(offsets, np.asarray(t_s, dtype=float), np.asarray(totals, dtype=float),
                   np.repeat(np.arange(len(lengths)), lengths), offsets[:-1][lengths > 0], int(lengths.max()) if len(lengths) else 0)

    @cached_property
    def _grid(self) -> np.ndarray | None:
        """Each piece's place in a padded (request, piece) grid, or None when lengths are too uneven for one."""
        n, total = len(self.offsets) - 1, len(self.t_s)
        if n * self.longest > 4 * total + 4096:
            return None
        return self.row * self.longest + (np.arange(total) - self.offsets[self.row])

    @cached_property
    def available(self) -> np.ndarray:
        """Samples received before each piece (0 before a request's first)."""
        return self.exclusive(self.cummax(self.totals), 0.0)

    def cummax(self, values: np.ndarray) -> np.ndarray:
        """Running maximum of `values` within each request; exact (maxima never round)."""
        if self._grid is not None:
            # as a padded (request, piece) grid: one accumulate along the pieces
            grid = np.full((len(self.offsets) - 1, self.longest), -np.inf)
            grid.ravel()[self._grid] = values
            return np.maximum.accumulate(grid, axis=1).ravel()[self._grid]
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


def simulate_many(timelines: Timelines, sample_rates: np.ndarray, starts_s: np.ndarray) -> Replayed:
    """Run the player over many requests at once: one sample rate and one playback start per request.

    A NaN start means playback never started. See the module docstring.
    """
    tl = timelines
    n = len(tl.offsets) - 1
    rates = np.asarray(sample_rates, dtype=float)
    starts = np.asarray(starts_s, dtype=float)
    row = tl.row
    start = starts[row]
    playing = np.isfinite(starts) & (rates > 0) & (np.diff(tl.offsets) > 0)
    # the pieces received by the start are buffered; the rest are replayed one by one
    after = tl.cummax((tl.t_s > start).astype(float)) > 0
    new = after & (tl.totals > tl.available) & playing[row]
    with np.errstate(invalid="ignore", divide="ignore"):
        behind = tl.available / rates[row]
        lag = np.maximum(start, tl.exclusive(tl.cummax(np.where(new, tl.t_s - behind, -np.inf)), -np.inf))
        dry_at = lag + behind
    stalled = new & (dry_at < tl.t_s)
    stall_s = np.where(stalled, tl.t_s - dry_at, 0.0)
    underruns = np.bincount(row[stalled], minlength=n)
    underrun_s = np.bincount(row[stalled], weights=stall_s[stalled], minlength=n).astype(float)
    longest_stall = np.zeros(n)
    np.maximum.at(longest_stall, row[stalled], stall_s[stalled])
    never = ~playing
    longest_stall[never] = np.nan
    underrun_s[never] = np.nan
    underruns[never] = 0
    return Replayed(longest_stall, underruns, underrun_s, np.where(stalled, dry_at, np.nan), stall_s)


def simulate(arrivals: Sequence[tuple[float, int]], sample_rate: int, start_s: float | None) -> PlaybackResult:
    """Run the player over one request's arrival timeline (see the module docstring)."""
    if start_s is None or not arrivals or sample_rate <= 0 or math.isnan(start_s):
        return PlaybackResult.never()
    t = np.fromiter((a[0] for a in arrivals), dtype=float, count=len(arrivals))
    totals = np.fromiter((a[1] for a in arrivals), dtype=float, count=len(arrivals))
    r = simulate_many(Timelines.of([0, len(arrivals)], t, totals), np.array([sample_rate]), np.array([start_s]))
    stalled = np.flatnonzero(r.stall_s > 0)
    stalls = tuple((float(r.stall_at_s[i]), float(r.stall_s[i])) for i in stalled)
    return PlaybackResult(float(start_s), float(r.max_stall_s[0]), int(r.underruns[0]), float(r.underrun_s[0]), stalls)
