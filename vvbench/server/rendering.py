"""From the engine's 24 kHz chunks to the bytes of the requested format: post-processing, resampling, encoding.

One `AudioOutput` per response, fed chunk by chunk in order. The post-processing chain is
`vvbench.core.postprocess.build_chain` (its order: silence trimming when `trim_silence`,
resampling to `sample_rate` when it is not the runtime's 24 kHz, loudness normalisation to
`loudness` LUFS last, so its limiter's ceiling holds on what is sent), then the format's
streaming encoder (`vvbench.core.formats.encode`). A streamed response's loudness is measured
on its first 2 s (the chain's streaming default); a whole body's on the whole signal. Each stage
keeps its cumulative seconds, reported in Server-Timing as `trim`, `resample`, `loudness` and
`encode`.
"""

from __future__ import annotations

import numpy as np

from vvbench.core.audio import SAMPLE_RATE
from vvbench.core.formats.encode import open_encoder, output_rate
from vvbench.core.postprocess import LoudnessNormaliser, Resampler, SilenceTrimmer, build_chain

_STAGE_NAMES = {SilenceTrimmer: "trim", Resampler: "resample", LoudnessNormaliser: "loudness"}
STREAM_LOUDNESS_MEASURE_S = 2.0


class AudioOutput:
    """The per-response chain of stages ending in an encoder (see the module docstring)."""

    def __init__(self, fmt: str, sample_rate: int | None = None, *, trim_silence: bool = False, loudness: float | None = None,
                 stream: bool = True):
        self.fmt = fmt
        self.rate = sample_rate or SAMPLE_RATE
        self.chain = build_chain(SAMPLE_RATE, out_rate=self.rate, trim=trim_silence, loudness=loudness,
                                 loudness_measure_s=STREAM_LOUDNESS_MEASURE_S if stream else None)
        self.encoder = open_encoder(fmt, self.rate)
        self.output_rate = output_rate(fmt, self.rate)

    @property
    def light(self) -> bool:
        """True when a chunk costs microseconds (PCM16 or WAV, no stage): no worker thread needed."""
        return not self.chain.stages and self.fmt in ("wav", "pcm")

    def process(self, audio: np.ndarray) -> bytes:
        """One synthesised chunk (24 kHz float) -> the bytes ready to send (possibly b"")."""
        x = np.asarray(audio, dtype=np.float32)
        if self.chain.stages:
            x = self.chain.process(x)
        return self.encoder.encode(x)

    def finish(self) -> bytes:
        """Flush the chain (each stage's tail through the stages after it), then the encoder."""
        tail = self.encoder.encode(self.chain.flush()) if self.chain.stages else b""
        return tail + self.encoder.finish()

    def timings(self) -> dict[str, float]:
        """Seconds per stage so far (Server-Timing names), the encoder's as `encode`."""
        times = {_STAGE_NAMES.get(type(stage), type(stage).__name__.lower()): stage.seconds for stage in self.chain.stages}
        times["encode"] = self.encoder.seconds
        return times
