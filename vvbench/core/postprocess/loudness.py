"""Loudness normalisation to a target in LUFS (ITU-R BS.1770-4, measured with pyloudnorm), with a
look-ahead peak limiter so that the gain never clips.

What is measured: the gated integrated loudness (K-weighting, 400 ms blocks with 75 % overlap,
-70 LUFS absolute and -10 LU relative gates) of

* the first `measure_s` seconds of the stream (default 2 s); the gain `target - measured` is fixed
  from then on, so the added latency is `measure_s` before the first output, then only the
  limiter's look-ahead. A stream that ends before `measure_s` is measured whole at `flush()`;
* the whole signal when `measure_s=None`: nothing is emitted before `flush()` (non-streamed
  bodies; what `process_all` does), and the result is exact.

Speech is not stationary, so on a long stream the loudness of the first seconds and of the whole
differ; docs/benchmarks.md gives the spread measured on espeak-ng speech and on the runtime's
audio. A signal shorter than one 400 ms block is measured as one block of its own length. A
measurement with no block above the gates (silence, a floor of noise) leaves the gain at 0 dB: the
normaliser never lifts noise.

The limiter: after the gain, each sample n needs at most the gain `r[n] = min(1, ceiling / |y[n]|)`;
the applied gain is `g[n] = mean(h[n-L .. n])` with `h[m] = min(r[m .. m+L])` and L the look-ahead
(`lookahead_ms`, default 5 ms). Every `h[m]` in that mean covers sample n, so `g[n] <= r[n]` and
`|g[n] y[n]| <= ceiling` always (the ceiling defaults to -1 dBFS); the gain falls over L samples
before a peak and recovers over L samples after it, so nothing is hard-clipped and a signal below
the ceiling passes unchanged. Latency: L samples (flush() returns them).

Reachable targets: a target is met (within 0.5 LU, the tests) while `target + PLR` stays within a
few dB of the ceiling, PLR being the signal's peak-to-loudness ratio (espeak-ng speech: 18.5 dB;
the runtime's voice: less). Beyond that the limiter takes the peaks down and the output falls
short of the target (espeak-ng at -14 LUFS reaches -15.2, at -10 reaches -13.6), never clipping
and never below what a static clip-free gain gives. `gain_db` is the gain asked for; the
limiter's reduction comes on top.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pyloudnorm
from numpy.lib.stride_tricks import sliding_window_view

from vvbench.core.postprocess.base import PostprocessError, as_mono_float32, check_rate

__all__ = ["LoudnessNormaliser", "PeakLimiter", "integrated_loudness", "TARGET_RANGE_LUFS"]

TARGET_RANGE_LUFS = (-70.0, -5.0)
BLOCK_S = 0.4
_MIN_MEASURE_S = 0.01


def integrated_loudness(x: np.ndarray, rate: int) -> float:
    """BS.1770 integrated loudness of `x` in LUFS (-inf when no block passes the gates).

    Shorter than one 400 ms block: measured as one block of its own length; under 10 ms: -inf.
    """
    x = np.asarray(x, dtype=np.float64)
    if len(x) < _MIN_MEASURE_S * rate:
        return -math.inf
    block_s = min(BLOCK_S, len(x) / rate)
    return float(pyloudnorm.Meter(rate, block_size=block_s).integrated_loudness(x))


class PeakLimiter:
    """Streaming look-ahead limiter (see the module docstring): `|output| <= ceiling`, latency L."""

    def __init__(self, rate: int, *, ceiling_dbfs: float = -1.0, lookahead_ms: float = 5.0):
        self.ceiling = 10.0 ** (ceiling_dbfs / 20.0)
        self.lookahead = max(1, round(lookahead_ms * 1e-3 * check_rate(rate)))
        L = self.lookahead
        # L virtual samples of silence before the signal, so the first real samples have a full
        # history; their outputs are dropped (`_skip`).
        self._y = np.zeros(L, np.float32)
        self._r = np.ones(L, np.float32)
        self._h_tail = np.ones(L, np.float64)
        self._skip = L

    def process(self, y: np.ndarray) -> np.ndarray:
        """Limit the next piece; returns the output `lookahead` samples behind the input."""
        y = as_mono_float32(y)
        mag = np.abs(y)
        r = np.ones(len(y), np.float32)
        np.divide(self.ceiling, mag, out=r, where=mag > self.ceiling)
        self._y = np.concatenate([self._y, y])
        self._r = np.concatenate([self._r, r])
        L = self.lookahead
        k = len(self._y) - L
        if k <= 0:
            return np.zeros(0, np.float32)
        h = sliding_window_view(self._r, L + 1).min(axis=1)  # h[m] = min(r[m .. m+L]), k values
        hh = np.concatenate([self._h_tail, h.astype(np.float64)])
        c = np.concatenate([[0.0], np.cumsum(hh)])
        g = (c[L + 1:] - c[:-(L + 1)]) / (L + 1)  # mean(h[n-L .. n])
        # A running sum can round a hair above the bound; the bound itself is exact.
        g = np.minimum(g, self._r[:k])
        out = (self._y[:k] * g).astype(np.float32)
        self._h_tail = hh[-L:]
        self._y, self._r = self._y[k:], self._r[k:]
        if self._skip:
            drop = min(self._skip, len(out))
            out, self._skip = out[drop:], self._skip - drop
        return out

    def flush(self) -> np.ndarray:
        """The last `lookahead` samples (the future is taken as silence)."""
        # L samples of silence push the held samples out: the output then has exactly as many
        # samples as the input.
        return self.process(np.zeros(self.lookahead, np.float32))


class LoudnessNormaliser:
    """Streaming normalisation of float32 mono at `rate` Hz to `target_lufs` (see the module docstring).

    `target_lufs` outside TARGET_RANGE_LUFS raises PostprocessError (a ValueError) naming the range.
    After the measurement, `measured_lufs` and `gain_db` say what was decided.
    `seconds` is the cumulative processing time (time.perf_counter) of `process` and `flush`.
    """

    def __init__(self, rate: int, target_lufs: float, *, measure_s: float | None = 2.0,
                 ceiling_dbfs: float = -1.0, lookahead_ms: float = 5.0):
        self.rate = check_rate(rate)
        lo, hi = TARGET_RANGE_LUFS
        if isinstance(target_lufs, bool) or not isinstance(target_lufs, (int, float)) or not lo <= target_lufs <= hi:
            raise PostprocessError(f"loudness must be from {lo:g} to {hi:g} LUFS, got {target_lufs!r}", param="loudness")
        if measure_s is not None and not BLOCK_S <= measure_s <= 600.0:
            raise PostprocessError(f"measure_s must be from {BLOCK_S:g} to 600 s or None, got {measure_s!r}", param="measure_s")
        if not -20.0 <= ceiling_dbfs <= 0.0:
            raise PostprocessError(f"ceiling_dbfs must be from -20 to 0 dBFS, got {ceiling_dbfs!r}", param="ceiling_dbfs")
        self.target_lufs = float(target_lufs)
        self.measure_s = measure_s
        self.seconds = 0.0
        self.measured_lufs: float | None = None
        self.gain_db: float | None = None
        self._limiter = PeakLimiter(self.rate, ceiling_dbfs=ceiling_dbfs, lookahead_ms=lookahead_ms)
        self._gain = 1.0
        self._held: list[np.ndarray] = []
        self._n_held = 0
        self._finished = False

    def process(self, x: np.ndarray) -> np.ndarray:
        """Take the next piece; empty until the measurement is done, then gain and limiter."""
        t0 = time.perf_counter()
        if self._finished:
            raise RuntimeError("LoudnessNormaliser.process() after flush(): the stream is finished")
        x = as_mono_float32(x)
        if self.gain_db is None:
            self._held.append(x)
            self._n_held += len(x)
            if self.measure_s is None or self._n_held < self.measure_s * self.rate:
                self.seconds += time.perf_counter() - t0
                return np.zeros(0, np.float32)
            held = np.concatenate(self._held)
            self._held = []
            self._measure(held[:round(self.measure_s * self.rate)])
            x = held
        y = self._limiter.process(x * np.float32(self._gain))
        self.seconds += time.perf_counter() - t0
        return y

    def flush(self) -> np.ndarray:
        """End the stream: measure now if not yet done, and empty the limiter."""
        t0 = time.perf_counter()
        if self._finished:
            raise RuntimeError("LoudnessNormaliser.flush() called twice")
        self._finished = True
        parts = []
        if self.gain_db is None:
            held = np.concatenate(self._held) if self._held else np.zeros(0, np.float32)
            self._held = []
            self._measure(held)
            parts.append(self._limiter.process(held * np.float32(self._gain)))
        parts.append(self._limiter.flush())
        y = np.concatenate(parts)
        self.seconds += time.perf_counter() - t0
        return y

    def _measure(self, x: np.ndarray) -> None:
        self.measured_lufs = integrated_loudness(x, self.rate)
        self.gain_db = 0.0 if not math.isfinite(self.measured_lufs) else self.target_lufs - self.measured_lufs
        self._gain = 10.0 ** (self.gain_db / 20.0)
