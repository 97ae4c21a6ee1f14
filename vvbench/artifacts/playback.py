"""The playback model: what a listener of a streamed response hears, and when it stalls.

The player starts at `ttfa_s + prebuffer_s` (first audible audio plus the prebuffer), playing
from the first sample of the stream in real time. Whenever it has played everything received
so far while the stream is not finished, it waits: that wait is a stall (an underrun). It
resumes, at once, when the next piece of audio arrives. After the last byte, what is buffered
plays out without stalls. Reported: the longest stall (`max_stall_s`), how many (`underruns`)
and their total (`underrun_s`); 0 when the audio was all received before playback started.

Input is the arrival timeline: `(t_s, samples_total)` pairs, seconds since the request was sent
and the samples received by then, in arrival order. Pure and cheap: one pass over the pieces.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


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


def simulate(arrivals: Sequence[tuple[float, int]], sample_rate: int, start_s: float | None) -> PlaybackResult:
    """Run the player over the arrival timeline (see the module docstring)."""
    if start_s is None or not arrivals or sample_rate <= 0 or math.isnan(start_s):
        return PlaybackResult.never()
    # Everything received by the time playback starts is buffered.
    i = 0
    available = 0
    while i < len(arrivals) and arrivals[i][0] <= start_s:
        available = arrivals[i][1]
        i += 1
    clock = start_s
    played = 0.0  # samples played, as a float: the player consumes sample_rate per second
    stalls: list[tuple[float, float]] = []
    for t, total in arrivals[i:]:
        if total <= available:
            continue
        runs_out = clock + (available - played) / sample_rate
        if runs_out < t:
            stalls.append((runs_out, t - runs_out))
            played = float(available)
        else:
            played += (t - clock) * sample_rate
        clock = t
        available = total
    if not stalls:
        return PlaybackResult(start_s, 0.0, 0, 0.0)
    longest = max(d for _, d in stalls)
    return PlaybackResult(start_s, longest, len(stalls), sum(d for _, d in stalls), tuple(stalls))
