"""Harmonic-plus-noise synthesiser: turns the model's per-frame controls into speech-like audio.

The reference model has random weights, so its acoustic decoder's waveform is noise. To give the
runtime audio that behaves like speech for every tool downstream (players, the blind SNR check,
silence/clipping detectors, codecs), each frame is rendered by a small source-filter synthesiser
steered by the model:

* pitch, loudness and tilt come from the model's latents (`FrameControls`, roughly -1..1). They
  jump from frame to frame (random weights), so each is smoothed with a time constant in seconds
  (independent of the frame size) and glides across the frame along a raised-cosine ramp;
* f0 = voice base (per speaker) x 2^((pitch x range + declination + jitter) / 12): declination
  falls ~3 semitones across each sentence of the prosody plan, jitter is a small per-frame random
  walk from the stream's own generator;
* the harmonic source is one period built per frame with `np.fft.irfft` (band-limited
  harmonics, 8..40 under an 8 kHz limit, with a spectral tilt and three formant-like resonances
  moved by the controls), read by a running phase with linear interpolation; the previous
  frame's period is cross-faded into the new one, so timbre glides too;
* a small aperiodic part is the decoder's own audio-rate output for the frame (normalised here),
  which keeps the waveform tied to the model;
* the sum is shaped by the plan's syllable envelope (0 in pauses) and the loudness gain, scaled so
  that the worst case peaks at about -3 dBFS; every sample then gets a -68 dBFS Gaussian noise
  floor (read from a per-stream buffer at a random offset), so pauses are quiet but never
  digital zeros (zeros break blind SNR estimators and look like dropouts).

`noise_dbfs` is the runtime's `noise_db` fault: white Gaussian noise with that RMS (relative to a
full-scale peak of 1.0) added to every sample, from a generator of its own, so the faulty output
is exactly the clean output plus noise. Output is clipped to [-1, 1] only as a guard: clean
output never reaches it, a loud fault may.

Determinism: a `StreamSynth` owns its generator; the same seed, plan and sequence of controls give
bit-identical output, whatever other streams do. Call `render` once per frame, in order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vvbench.core.audio import SAMPLE_RATE
from vvbench.runtime.prosody import PlanBlock, ProsodyPlan
from vvbench.runtime.voices import Voice, speaker_variant

__all__ = ["FrameControls", "StreamSynth", "FLOOR_DBFS", "PEAK_DBFS"]

FLOOR_DBFS = -68.0
PEAK_DBFS = -3.0
TABLE_SIZE = 1024  # 40 harmonics need far fewer points; linear interpolation error < -50 dB
MAX_HARMONICS, MIN_HARMONICS = 40, 8
BAND_HZ = 8000.0  # harmonics above this are dropped (speech energy above it is mostly noise)
CONTROL_TAU_S = 0.06
DECLINATION_ST = (1.5, 3.0)  # start offset and fall over a sentence, semitones
JITTER_ST, JITTER_KEEP = 0.25, 0.6
LOUDNESS_DB = 6.0  # loudness control -1..1 maps to -6..0 dB
FORMANT_HZ = ((500.0, 180.0), (1500.0, 450.0), (2500.0, 150.0))  # centre, swing per unit control
FORMANT_GAIN = (5.0, 3.0, 1.5)
FORMANT_BW_HZ = (90.0, 120.0, 180.0)
_EXCITATION_CLIP = 4.0  # in RMS units; bounds the aperiodic part whatever the decoder emits

_HARMONIC = np.arange(1, MAX_HARMONICS + 1, dtype=np.float64)
_LOG_HARMONIC = np.log(_HARMONIC)
_FORMANT_CENTRE = np.array([f[0] for f in FORMANT_HZ])[:, None]
_FORMANT_SWING = np.array([f[1] for f in FORMANT_HZ])[:, None]
_FORMANT_GAIN_ARR = np.array(FORMANT_GAIN)[:, None]
_FORMANT_BW = np.array(FORMANT_BW_HZ)[:, None]
_FLOOR_BUFFER = 16384  # samples of floor noise generated per stream, read at random offsets


@dataclass
class FrameControls:
    """What the engine hands the synthesiser for one frame.

    `pitch`, `loudness`, `tilt`: roughly -1..1 (values outside are clipped, NaN reads as 0).
    `excitation`: the acoustic decoder's audio for the frame, shape [samples_per_frame], any scale.
    """

    pitch: float
    loudness: float
    tilt: float
    excitation: np.ndarray


def _control(value: float) -> float:
    value = float(value)
    return 0.0 if math.isnan(value) else min(max(value, -1.0), 1.0)


@dataclass
class _State:
    pitch: float = 0.0
    loudness: float = 0.0
    tilt: float = 0.0
    jitter: float = 0.0


class StreamSynth:
    """Per-stream synthesiser state; `render(frame_index, controls)` gives one frame of audio."""

    def __init__(self, voice: Voice, plan: ProsodyPlan, *, sample_rate: int = SAMPLE_RATE,
                 samples_per_frame: int = 3200, seed: int, noise_dbfs: float | None = None):
        if samples_per_frame <= 0 or sample_rate <= 0:
            raise ValueError("sample_rate and samples_per_frame must be positive")
        self.voice, self.plan = voice, plan
        self.sample_rate, self.samples_per_frame = int(sample_rate), int(samples_per_frame)
        self.noise_dbfs = noise_dbfs
        entropy = int(seed) & 0xFFFF_FFFF_FFFF_FFFF  # numpy wants a non-negative seed
        self._rng = np.random.default_rng(entropy)
        # The fault's noise has a generator of its own, so that switching the fault on adds
        # noise to exactly the audio the stream would have produced without it.
        self._fault_rng = np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(1,)))
        self._voices = [speaker_variant(voice, k) for k in range(plan.n_speakers)]
        self._f0_hz = np.array([v.f0_hz for v in self._voices])
        # Fixed per-voice harmonic phases: part of the voice's timbre, and a lower crest factor
        # than a pulse train (so the same peak gives a louder voice).
        self._phasors = [np.exp(1j * np.random.default_rng(v.embed_seed).uniform(
            -np.pi, np.pi, MAX_HARMONICS)) for v in self._voices]
        self._state = _State()
        self._phase = 0.0  # oscillator phase in cycles, carried across frames
        self._table: tuple | None = None  # (speaker, harmonics, period) of the last frame
        n = self.samples_per_frame
        self._ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(1, n + 1) / n)
        self._alpha = 1.0 - math.exp(-n / self.sample_rate / CONTROL_TAU_S)
        self._band_hz = min(BAND_HZ, 0.45 * self.sample_rate)
        self._floor = 10.0 ** (FLOOR_DBFS / 20.0)
        # The floor is read from a per-stream buffer at a random offset each frame: at -68 dBFS
        # its repetition is inaudible, and drawing fresh Gaussian noise every frame would be the
        # single largest cost of a frame.
        floor_len = max(_FLOOR_BUFFER, 4 * n)
        self._floor_noise = (self._rng.standard_normal(floor_len, dtype=np.float32)
                             * np.float32(self._floor))
        self._fault = 0.0 if noise_dbfs is None else 10.0 ** (noise_dbfs / 20.0)
        # Worst case |harmonic mix| <= 1 and |envelope x gain| <= 1, so this fixes the peak.
        self._scale = 10.0 ** (PEAK_DBFS / 20.0) - 6.0 * self._floor

    def render(self, frame_index: int, controls: FrameControls) -> np.ndarray:
        """Audio of frame `frame_index` (float32, [samples_per_frame], within [-1, 1])."""
        n = self.samples_per_frame
        excitation = np.asarray(controls.excitation, dtype=np.float64).reshape(-1)
        if excitation.shape != (n,):
            raise ValueError(f"excitation must have {n} samples, got {excitation.shape}")
        # Draw the same amount from the generator on every frame, voiced or not, so a frame's
        # random numbers depend only on its index and the seed.
        offset = int(self._rng.integers(0, len(self._floor_noise) - n + 1))
        out = self._floor_noise[offset:offset + n].copy()
        jitter_step = self._rng.standard_normal() * JITTER_ST
        if self._fault:
            out += self._fault_rng.standard_normal(n, dtype=np.float32) * np.float32(self._fault)
        prev = self._state
        new = _State(
            pitch=prev.pitch + self._alpha * (_control(controls.pitch) - prev.pitch),
            loudness=prev.loudness + self._alpha * (_control(controls.loudness) - prev.loudness),
            tilt=prev.tilt + self._alpha * (_control(controls.tilt) - prev.tilt),
            jitter=JITTER_KEEP * prev.jitter + jitter_step,
        )
        self._state = new
        block = self.plan.block(frame_index * n, n)
        if block.envelope.max() > 0.0:
            out += self._voiced(block, excitation, prev, new)
        return np.clip(out, -1.0, 1.0, out=out)

    def _voiced(self, block: PlanBlock, excitation: np.ndarray, prev: _State,
                new: _State) -> np.ndarray:
        ramp = self._ramp
        speakers = block.speaker
        if (speakers == speakers[0]).all():
            main, base_hz = int(speakers[0]), self._f0_hz[speakers[0]]
        else:
            # The spectral envelope is per frame: a frame straddling a turn change (rare: turns
            # are separated by a pause) takes the timbre of the speaker voicing most of it.
            main = int(np.bincount(speakers[block.envelope > 0]).argmax())
            base_hz = self._f0_hz[speakers]
        voice = self._voices[main]
        # Pitch in octaves: control glide + jitter glide + declination over the sentence.
        p0 = (prev.pitch * voice.f0_range + prev.jitter + DECLINATION_ST[0]) / 12.0
        p1 = (new.pitch * voice.f0_range + new.jitter + DECLINATION_ST[0]) / 12.0
        octaves = ramp * (p1 - p0)
        octaves += p0
        octaves -= (DECLINATION_ST[1] / 12.0) * block.progress
        f0 = np.exp2(octaves, out=octaves)
        f0 *= base_hz
        phase = np.cumsum(f0 * (1.0 / self.sample_rate))
        phase += self._phase
        phase -= np.floor(phase)
        self._phase = float(phase[-1])
        f0_max = float(f0.max())
        n_harm = int(min(max(self._band_hz // f0_max, MIN_HARMONICS), MAX_HARMONICS))
        f0_ref = float(f0.mean())
        # The period that ended the previous frame starts this one (it was built from `prev`),
        # unless the speaker changed or its harmonics would now pass Nyquist.
        cached = self._table
        if cached and cached[0] == main and cached[1] * f0_max < 0.5 * self.sample_rate:
            table_a = cached[2]
        else:
            table_a = self._period(voice, main, prev, f0_ref, n_harm)
        table_b = self._period(voice, main, new, f0_ref, n_harm)
        self._table = (main, n_harm, table_b)
        pos = phase * TABLE_SIZE
        i0 = pos.astype(np.intp)
        frac = pos - i0
        harmonic = table_a[0][i0] + frac * table_a[1][i0]
        harmonic += ramp * (table_b[0][i0] + frac * table_b[1][i0] - harmonic)
        b = voice.breathiness
        harmonic *= 1.0 - b
        # numpy's own reductions (not BLAS dot), for the same bit-identity reason as _period.
        mean = float(excitation.sum()) / len(excitation)
        std = math.sqrt(max(float(np.square(excitation).sum()) / len(excitation) - mean * mean,
                            0.0))
        # A silent (constant) or broken (NaN/inf) decoder output leaves the harmonic part alone.
        if math.isfinite(std) and std > 1e-12 * max(1.0, abs(mean)):
            limit = _EXCITATION_CLIP * std
            aperiodic = np.clip(excitation, mean - limit, mean + limit)
            aperiodic -= mean
            aperiodic *= b / limit
            harmonic += aperiodic
        g0, g1 = (10.0 ** (LOUDNESS_DB * (s.loudness - 1.0) / 40.0) for s in (prev, new))
        level = ramp * (self._scale * (g1 - g0))
        level += self._scale * g0
        level *= block.envelope
        harmonic *= level
        return harmonic.astype(np.float32)

    def _period(self, voice: Voice, speaker: int, state: _State, f0_hz: float,
                n_harm: int) -> tuple[np.ndarray, np.ndarray]:
        """One period of the harmonic source (peak 1) as (values, slope to the next point)."""
        k = _HARMONIC[:n_harm]
        freq = k * f0_hz
        scale = (f0_hz / 120.0) ** 0.15  # higher voices, shorter vocal tracts, higher formants
        controls = np.array([[state.tilt], [0.5 * (state.loudness - state.pitch)], [0.0]])
        centres = scale * (_FORMANT_CENTRE + _FORMANT_SWING * controls)
        resonance = 1.0 + (_FORMANT_GAIN_ARR / (1.0 + ((freq - centres) / _FORMANT_BW) ** 2)).sum(0)
        slope = 1.15 - 0.35 * (voice.brightness + 0.5 * state.tilt)
        amp = np.exp(-slope * _LOG_HARMONIC[:n_harm]) * resonance
        # An inverse FFT rather than a BLAS product: its result does not depend on BLAS threads
        # or kernels, which keeps a seed's audio bit-identical from one process to the next.
        spectrum = np.zeros(TABLE_SIZE // 2 + 1, dtype=np.complex128)
        spectrum[1:n_harm + 1] = amp * self._phasors[speaker][:n_harm]
        period = np.fft.irfft(spectrum, n=TABLE_SIZE)
        period *= 1.0 / np.abs(period).max()
        slope = np.empty_like(period)  # to the next point, wrapping around the period
        np.subtract(period[1:], period[:-1], out=slope[:-1])
        slope[-1] = period[0] - period[-1]
        return period, slope
