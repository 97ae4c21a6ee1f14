"""Post-processing of synthesised speech: resampling, silence trimming, loudness normalisation.

Each stage is streaming (`process(x)` for the next piece, `flush()` at the end; float32 mono in
and out) and keeps its cumulative processing time in `seconds`:

* `Resampler(in_rate, out_rate)`: soxr, high quality (`resample.py`);
* `SilenceTrimmer(rate)`: leading and trailing silence cut by WebRTC's VAD (`trim.py`);
* `LoudnessNormaliser(rate, target_lufs)`: BS.1770 loudness with a look-ahead limiter (`loudness.py`).

The order, in `Chain` and `process_all`: **trim → resample → loudness**.
Trim first: the VAD runs at the native rate (no extra conversion) and the loudness measurement
then starts on speech rather than on leading silence, which matters for a measurement over the
first seconds of a stream. Loudness last, after the resampler: the limiter is then the last thing
to touch the samples, so its ceiling holds on what is sent; a resampler after it could push
band-limited peaks back over the ceiling (a resampled peak overshoots the original samples), and
the loudness is measured at the rate the listener gets.

numpy, soxr, webrtcvad and pyloudnorm only, no torch.
"""

from __future__ import annotations

import numpy as np

from vvbench.core.postprocess.base import PostprocessError, Stage, as_mono_float32, check_rate
from vvbench.core.postprocess.loudness import TARGET_RANGE_LUFS, LoudnessNormaliser, PeakLimiter, integrated_loudness
from vvbench.core.postprocess.resample import Resampler
from vvbench.core.postprocess.trim import SilenceTrimmer

__all__ = ["Resampler", "SilenceTrimmer", "LoudnessNormaliser", "PeakLimiter", "Chain", "Stage",
           "PostprocessError", "TARGET_RANGE_LUFS", "integrated_loudness", "build_chain", "process_all"]


class Chain:
    """Stages run one after the other, as one stage; `seconds` is the sum of theirs.

    `out_rate` is the rate of what comes out (the caller's WAV header needs it before any audio).
    """

    def __init__(self, stages: list[Stage], out_rate: int):
        self.stages = list(stages)
        self.out_rate = int(out_rate)

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.stages)

    def process(self, x: np.ndarray) -> np.ndarray:
        y = as_mono_float32(x)
        for stage in self.stages:
            y = stage.process(y)
        return y

    def flush(self) -> np.ndarray:
        # Each stage's flush output goes through the stages after it, which then flush too.
        y = np.zeros(0, np.float32)
        for stage in self.stages:
            y = np.concatenate([stage.process(y), stage.flush()]) if len(y) else stage.flush()
        return y


def build_chain(rate: int, *, out_rate: int | None = None, trim: bool = False, loudness: float | None = None,
                loudness_measure_s: float | None = 2.0) -> Chain:
    """The stages a request asks for, in the documented order (trim → resample → loudness).

    `loudness` is the target in LUFS (None: no normalisation); `loudness_measure_s=None` measures
    the whole signal (nothing comes out before `flush()`: for non-streamed bodies).
    Bad values raise PostprocessError naming the parameter (validated here, before any audio).
    """
    stages: list[Stage] = []
    rate = check_rate(rate)
    out_rate = rate if out_rate is None else check_rate(out_rate, "sample_rate")
    if trim:
        stages.append(SilenceTrimmer(rate))
    if out_rate != rate:
        stages.append(Resampler(rate, out_rate))
    if loudness is not None:
        stages.append(LoudnessNormaliser(out_rate, loudness, measure_s=loudness_measure_s))
    return Chain(stages, out_rate)


def process_all(x: np.ndarray, rate: int, *, out_rate: int | None = None, trim: bool = False,
                loudness: float | None = None) -> np.ndarray:
    """Post-process a whole signal: trim → resample → loudness (measured on the whole signal)."""
    chain = build_chain(rate, out_rate=out_rate, trim=trim, loudness=loudness, loudness_measure_s=None)
    return np.concatenate([chain.process(x), chain.flush()])
