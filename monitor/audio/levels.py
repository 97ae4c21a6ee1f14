"""Measurements of a waveform that the audio checks judge: frame levels, speech activity, gaps, clipping.

All pure numpy on float samples where integer full scale is ±1 (`vvbench.core.audio`).

- **Frames**: non-overlapping frames from sample 0 (the last partial frame counts if at least
  half full). A frame is *active* (audible) when its RMS is above `silence_dbfs`. By default the
  frame and the line are `vvbench.core.audio`'s definition of audible (20 ms, −50 dBFS), the one
  the load generator uses for time to first audible audio.
- **Level**: RMS in dBFS over the active frames (the speech level, not diluted by pauses), and
  the peak in dBFS over all samples. 0 dBFS is a full-scale square wave's RMS and a full-scale
  sample's peak; silence floors at −120 dBFS.
- **Gaps**: runs of inactive frames strictly between the first and the last active frame — a
  dropout inside speech. Leading and trailing silence are measured apart.
- **Clipping**: the share of samples at or beyond `clip_level` of full scale.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from vvbench.core.audio import AUDIBLE_DBFS, AUDIBLE_WINDOW_S, audible, window_rms, window_samples
from vvbench.monitor.audio.wada import wada_snr

FLOOR_DBFS = -120.0


def dbfs(value: float) -> float:
    """20·log10(value) floored at −120 dBFS (value is an RMS or a peak, full scale 1)."""
    return FLOOR_DBFS if value <= 10 ** (FLOOR_DBFS / 20) else 20.0 * math.log10(value)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, length) of each run of True in a boolean array."""
    if not mask.any():
        return []
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(s), int(e - s)) for s, e in zip(edges[::2], edges[1::2])]


@dataclass(frozen=True)
class Levels:
    """What the checks need to know about one waveform (NaN where it cannot be measured)."""

    rate: int
    samples: int
    duration_s: float
    finite: bool
    snr_db: float
    rms_dbfs: float
    peak_dbfs: float
    active_ratio: float
    leading_silence_s: float
    trailing_silence_s: float
    longest_gap_s: float
    gaps: int
    clipped_ratio: float

    def to_json(self) -> dict:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


def measure(x: np.ndarray, rate: int, *, frame_ms: float = AUDIBLE_WINDOW_S * 1000, silence_dbfs: float = AUDIBLE_DBFS,
            clip_level: float = 0.999, max_gap_s: float = 0.0) -> Levels:
    """Measure `x` (float samples, full scale ±1) at `rate` Hz; see the module docstring.

    `gaps` counts the inactive runs inside speech longer than `max_gap_s` seconds (the dropouts).
    """
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    n = len(x)
    duration = n / rate if rate > 0 else math.nan
    finite = bool(n) and bool(np.all(np.isfinite(x)))
    nan = math.nan
    if not finite:
        return Levels(rate, n, duration, False, nan, nan, nan, nan, nan, nan, nan, 0, nan)
    frame_s = frame_ms / 1000.0
    rms = window_rms(x, window_samples(rate, frame_s), partial=True)
    active = audible(rms, silence_dbfs)
    idx = np.flatnonzero(active)
    peak = float(np.max(np.abs(x)))
    clipped = float(np.mean(np.abs(x) >= clip_level))
    if idx.size == 0:
        return Levels(rate, n, duration, True, wada_snr(x), nan, dbfs(peak), 0.0, duration, 0.0, 0.0, 0, clipped)
    first, last = int(idx[0]), int(idx[-1])
    inner = _runs(~active[first:last + 1])
    long_gaps = [length for _, length in inner if length * frame_s > max_gap_s]
    speech_rms = float(np.sqrt(np.mean(np.square(rms[active]))))
    return Levels(
        rate=rate, samples=n, duration_s=duration, finite=True, snr_db=wada_snr(x),
        rms_dbfs=dbfs(speech_rms), peak_dbfs=dbfs(peak), active_ratio=float(active.mean()),
        leading_silence_s=first * frame_s, trailing_silence_s=(len(rms) - 1 - last) * frame_s,
        longest_gap_s=max((length for _, length in inner), default=0) * frame_s, gaps=len(long_gaps),
        clipped_ratio=clipped)
