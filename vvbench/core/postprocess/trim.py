"""Streaming trim of leading and trailing silence, decided by a voice activity detector (VAD).

The VAD is WebRTC's (`webrtcvad`, from the maintained `webrtcvad-wheels` build): a Gaussian-mixture
model over six sub-band energies, run on 30 ms frames of 16-bit PCM at 8, 16, 32 or 48 kHz. Why
it and not silero-vad:

* layering: `vvbench.core` imports no torch (the service, the monitor and the load generator share
  it), and silero-vad's model needs torch (or onnxruntime) to run;
* cost: a 30 ms frame takes a few microseconds of C, so trimming is far below 1 % of a core per
  stream (docs/benchmarks.md, "Post-processing cost"); silero needs a neural-network call per 32 ms
  frame and gains nothing here, since what we cut is silence or a low noise floor, not
  babble or music;
* latency: decisions come per 30 ms frame with no look-ahead beyond the frame;
* accuracy: on real speech (espeak-ng) and on the runtime's synthetic harmonic voice (speech-like
  envelope, -68 dBFS floor in its pauses) both ends are found within a frame or two (the tests);
  WebRTC's model is known to read loud broadband noise as speech, which only ever keeps more
  audio, never cuts speech. Its model is compiled into the extension: nothing to download.

Other rates go to the VAD through a soxr stream to 16 kHz (analysis only: the emitted samples are
always the caller's own, untouched). Input reaches that stream in fixed blocks, so decisions, and
therefore the output, do not depend on how the caller chunks the signal.

What is emitted (the output is always a contiguous run of the input, `x[a:b]`):

* leading: nothing is emitted until speech starts, i.e. `onset_frames` consecutive speech frames
  (default 4, 120 ms); output then starts `lead_margin_s` (default 50 ms) before the first of those
  frames, or at the start of the signal. Why 4: WebRTC's VAD reads the first frame of a noise
  floor (measured: white noise at -45 to -60 dBFS, from the start of a stream or after digital
  silence) as speech, and its hangover then flags the next 2 frames too; a lone false frame thus
  makes a run of 3, and only a longer run opens the gate;
* inner: once speech has started, each speech frame releases everything up to its end, so pauses
  between words and sentences are kept whole; samples after the last speech frame are held;
* trailing: `flush()` emits what is held up to `trail_margin_s` (default 0) after the end of the
  last speech frame and drops the rest. WebRTC's VAD keeps saying "speech" for a hangover after
  the last voiced frame (`HANGOVER_S`: 3 frames, 90 ms, after a run of speech in mode 3; measured
  on espeak-ng speech followed by digital silence), so the hangover is the trailing margin and
  `trail_margin_s` adds to it;
* no speech at all: the output is empty (the whole signal was silence).

Added latency while streaming: up to one 30 ms frame plus what the analysis resampler holds (about
15 ms at 24 kHz, measured after 133 ms chunks), and at the start `onset_frames` frames (120 ms); audio after the last speech frame waits
for the next speech frame or for `flush()`.
"""

from __future__ import annotations

import time

import numpy as np
import soxr
import webrtcvad

from vvbench.core.postprocess.base import PostprocessError, as_mono_float32, check_rate

__all__ = ["SilenceTrimmer", "FRAME_S", "HANGOVER_S", "VAD_RATES"]

FRAME_S = 0.030
HANGOVER_S = 0.090  # WebRTC mode 3, 30 ms frames: kOverHangMax2VAG = 3 frames after a run of speech
VAD_RATES = (8000, 16000, 32000, 48000)
_ANALYSIS_RATE = 16000


class SilenceTrimmer:
    """Streaming VAD trim at `rate` Hz (float32 mono); see the module docstring for the contract.

    `aggressiveness` is WebRTC's mode, 0 (keeps most) to 3 (cuts most non-speech).
    `seconds` is the cumulative processing time (time.perf_counter) of `process` and `flush`.
    """

    def __init__(self, rate: int, *, lead_margin_s: float = 0.05, trail_margin_s: float = 0.0,
                 onset_frames: int = 4, aggressiveness: int = 3):
        self.rate = check_rate(rate)
        for name, value in (("lead_margin_s", lead_margin_s), ("trail_margin_s", trail_margin_s)):
            if not 0.0 <= value <= 5.0:
                raise PostprocessError(f"{name} must be from 0 to 5 s, got {value!r}", param=name)
        if aggressiveness not in (0, 1, 2, 3):
            raise PostprocessError(f"aggressiveness must be 0, 1, 2 or 3, got {aggressiveness!r}", param="aggressiveness")
        if int(onset_frames) < 1:
            raise PostprocessError(f"onset_frames must be at least 1, got {onset_frames!r}", param="onset_frames")
        self.lead = round(lead_margin_s * self.rate)
        self.trail = round(trail_margin_s * self.rate)
        self.onset_frames = int(onset_frames)
        self.seconds = 0.0
        self._vad = webrtcvad.Vad(aggressiveness)
        self._vad_rate = self.rate if self.rate in VAD_RATES else _ANALYSIS_RATE
        self._frame_vad = round(FRAME_S * self._vad_rate)
        self._to_vad = None if self._vad_rate == self.rate else soxr.ResampleStream(
            self.rate, self._vad_rate, 1, dtype="float32", quality="MQ")
        self._block = round(FRAME_S * self.rate)  # input is fed to the analysis in blocks of this size
        self._pending = np.zeros(0, np.float32)  # input not yet fed to the analysis
        self._analysis = np.zeros(0, np.float32)  # analysis-rate samples not yet framed
        self._audio = np.zeros(0, np.float32)  # input held, starting at absolute sample _audio_at
        self._audio_at = 0
        self._n_in = 0
        self._frames = 0  # VAD frames decided
        self._run = 0  # consecutive speech frames while waiting for the onset
        self._started = False
        self._speech_end = 0  # absolute input sample where the last speech frame ends
        self._finished = False

    # --- the stream ---------------------------------------------------------------------
    def process(self, x: np.ndarray) -> np.ndarray:
        """Take the next piece; return the output that is decided (contiguous with the last)."""
        t0 = time.perf_counter()
        if self._finished:
            raise RuntimeError("SilenceTrimmer.process() after flush(): the stream is finished")
        x = as_mono_float32(x)
        self._audio = np.concatenate([self._audio, x])
        self._n_in += len(x)
        self._pending = np.concatenate([self._pending, x])
        n_blocks = len(self._pending) // self._block
        if n_blocks:
            cut = n_blocks * self._block
            self._analyse(self._pending[:cut], last=False)
            self._pending = self._pending[cut:]
        y = self._emit()
        self.seconds += time.perf_counter() - t0
        return y

    def flush(self) -> np.ndarray:
        """End the stream: the held audio up to the trailing margin after the last speech."""
        t0 = time.perf_counter()
        if self._finished:
            raise RuntimeError("SilenceTrimmer.flush() called twice")
        self._finished = True
        self._analyse(self._pending, last=True)
        self._pending = np.zeros(0, np.float32)
        if not self._started and self._run:  # speech in the very last frames: shorter than onset_frames
            self._start(self._frames - self._run)
        if self._started:
            end = min(self._speech_end + self.trail, self._n_in)
            y = self._take(end)
        else:
            y = np.zeros(0, np.float32)
        self._audio = np.zeros(0, np.float32)
        self.seconds += time.perf_counter() - t0
        return y

    # --- inside ---------------------------------------------------------------------------
    def _frame_start(self, j: int) -> int:
        """Absolute input sample where VAD frame j starts."""
        return round(j * FRAME_S * self.rate)

    def _analyse(self, x: np.ndarray, *, last: bool) -> None:
        a = x if self._to_vad is None else self._to_vad.resample_chunk(x, last=last)
        self._analysis = np.concatenate([self._analysis, a])
        if last and len(self._analysis) % self._frame_vad:  # the partial last frame, padded with silence
            pad = self._frame_vad - len(self._analysis) % self._frame_vad
            self._analysis = np.concatenate([self._analysis, np.zeros(pad, np.float32)])
        n = len(self._analysis) // self._frame_vad
        if not n:
            return
        pcm = np.clip(np.rint(self._analysis[:n * self._frame_vad] * 32768.0), -32768, 32767).astype("<i2").tobytes()
        self._analysis = self._analysis[n * self._frame_vad:]
        step = 2 * self._frame_vad
        for k in range(n):
            self._decide(self._vad.is_speech(pcm[k * step:(k + 1) * step], self._vad_rate))

    def _decide(self, speech: bool) -> None:
        j = self._frames
        self._frames += 1
        if self._started:
            if speech:
                self._speech_end = min(self._frame_start(j + 1), self._n_in)
            return
        self._run = self._run + 1 if speech else 0
        if self._run >= self.onset_frames:
            self._start(j + 1 - self._run)

    def _start(self, first_frame: int) -> None:
        self._started = True
        start = max(0, self._frame_start(first_frame) - self.lead)
        self._drop(start)
        self._speech_end = min(self._frame_start(self._frames), self._n_in)

    def _emit(self) -> np.ndarray:
        if self._started:
            return self._take(self._speech_end)
        # Before the onset: keep only what a lead margin before a future onset could still need.
        first_possible = self._frame_start(self._frames - self._run)
        self._drop(max(0, first_possible - self.lead))
        return np.zeros(0, np.float32)

    def _drop(self, until: int) -> None:
        if until > self._audio_at:
            self._audio = self._audio[until - self._audio_at:]
            self._audio_at = until

    def _take(self, until: int) -> np.ndarray:
        k = max(0, until - self._audio_at)
        y, self._audio = self._audio[:k].copy(), self._audio[k:]
        self._audio_at += k
        return y
