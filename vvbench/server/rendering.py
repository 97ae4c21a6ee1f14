"""From the engine's 24 kHz chunks to the bytes of the requested format: post-processing, resampling, encoding.

One `AudioOutput` per response, fed chunk by chunk in order. The stages, each opt-in except the
encoder, run in this order: silence trimming (`trim_silence`), loudness normalisation
(`loudness`, target LUFS), resampling to `sample_rate` (when it is not the runtime's 24 kHz),
then the format's streaming encoder (`vvbench.core.formats.encode`). Each stage keeps its
cumulative seconds, reported in Server-Timing as `trim`, `loudness`, `resample` and `encode`.

Resampling is soxr's streaming resampler (`soxr.ResampleStream`, "HQ" quality), kept here until
the shared post-processing module offers the same `Resampler` interface.
"""

from __future__ import annotations

import time

import numpy as np
import soxr

from vvbench.core.audio import SAMPLE_RATE
from vvbench.core.formats.encode import open_encoder, output_rate

LOUDNESS_MIN_LUFS, LOUDNESS_MAX_LUFS = -70.0, -5.0


class Resampler:
    """Streaming resampling of mono float32 audio (soxr); `process()` per chunk, `flush()` at the end."""

    def __init__(self, in_rate: int, out_rate: int):
        self._stream = soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality="HQ")
        self.seconds = 0.0

    def _run(self, x: np.ndarray, last: bool) -> np.ndarray:
        t0 = time.perf_counter()
        out = self._stream.resample_chunk(np.ascontiguousarray(x, dtype=np.float32), last=last)
        self.seconds += time.perf_counter() - t0
        return out

    def process(self, x: np.ndarray) -> np.ndarray:
        return self._run(x, False)

    def flush(self) -> np.ndarray:
        return self._run(np.zeros(0, dtype=np.float32), True)


def _postprocess_stages(trim_silence: bool, loudness: float | None) -> list[tuple[str, object]]:
    stages: list[tuple[str, object]] = []
    if trim_silence or loudness is not None:
        from vvbench.core import postprocess  # the shared module; only requests that ask for it need it

        if trim_silence:
            stages.append(("trim", postprocess.SilenceTrimmer(SAMPLE_RATE)))
        if loudness is not None:
            stages.append(("loudness", postprocess.LoudnessNormaliser(SAMPLE_RATE, float(loudness))))
    return stages


class AudioOutput:
    """The per-response chain of stages ending in an encoder (see the module docstring)."""

    def __init__(self, fmt: str, sample_rate: int | None = None, *, trim_silence: bool = False, loudness: float | None = None):
        self.fmt = fmt
        self.rate = sample_rate or SAMPLE_RATE
        self.stages = _postprocess_stages(trim_silence, loudness)
        if self.rate != SAMPLE_RATE:
            self.stages.append(("resample", Resampler(SAMPLE_RATE, self.rate)))
        self.encoder = open_encoder(fmt, self.rate)
        self.output_rate = output_rate(fmt, self.rate)

    @property
    def light(self) -> bool:
        """True when a chunk costs microseconds (PCM16 or WAV, no stage): no worker thread needed."""
        return not self.stages and self.fmt in ("wav", "pcm")

    def process(self, audio: np.ndarray) -> bytes:
        """One synthesised chunk (24 kHz float) -> the bytes ready to send (possibly b"")."""
        x = np.asarray(audio, dtype=np.float32)
        for _, stage in self.stages:
            x = stage.process(x)
        return self.encoder.encode(x)

    def finish(self) -> bytes:
        """Flush every stage in order, then the encoder: the last bytes of the body."""
        out = []
        for i, (_, stage) in enumerate(self.stages):
            x = stage.flush()
            for _, later in self.stages[i + 1:]:
                x = later.process(x)
            out.append(self.encoder.encode(x))
        out.append(self.encoder.finish())
        return b"".join(out)

    def timings(self) -> dict[str, float]:
        """Seconds per stage so far (Server-Timing names), the encoder's as `encode`."""
        times = {name: stage.seconds for name, stage in self.stages}
        times["encode"] = self.encoder.seconds
        return times
