"""A phase-blind quality measure: the SNR of a mel magnitude spectrogram against a reference's, in dB.

Why not the waveform: the runtime's voice is a source-filter synthesiser whose harmonic phase is
the running integral of a pitch steered by the model's latents. A config that changes the latents
a little (fewer diffusion steps) changes the pitch a little, and within two or three frames the
accumulated phase no longer lines up with the reference's: the waveform SNR then reads about
-3 dB (two uncorrelated signals of equal power) whatever the step count, although the audio is
audibly the same kind of thing. The same holds for real vocoders. Magnitudes over mel bands do
not see the phase, so the measure falls smoothly as the latents move away from the reference's.

    mel_snr_db = 10 log10( sum(M_ref^2) / sum((M_ref - M)^2) )

with `M` the magnitude STFT (`scipy.signal.stft`, 1024-sample Hann windows, hop 256, i.e. 42.7 ms
windows every 10.7 ms at 24 kHz) summed over `MEL_BANDS` triangular mel bands (50 Hz - 8 kHz),
the shorter signal padded with zeros (a truncated answer costs its missing part), capped at
`MAX_DB` like the waveform SNR.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy.signal import stft

MEL_BANDS = 64
N_FFT = 1024
HOP = 256
FMIN_HZ, FMAX_HZ = 50.0, 8000.0
MAX_DB = 100.0


def _hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)


def _mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)


@lru_cache(maxsize=4)
def mel_filterbank(rate: int, n_fft: int = N_FFT, bands: int = MEL_BANDS) -> np.ndarray:
    """[bands, n_fft/2 + 1] triangular filters, equally spaced on the mel scale (HTK formula)."""
    edges = _mel_to_hz(np.linspace(_hz_to_mel(FMIN_HZ), _hz_to_mel(min(FMAX_HZ, rate / 2)), bands + 2))
    freqs = np.linspace(0.0, rate / 2, n_fft // 2 + 1)
    fb = np.zeros((bands, len(freqs)))
    for i in range(bands):
        lo, mid, hi = edges[i : i + 3]
        fb[i] = np.clip(np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)), 0.0, None)
    return fb


def mel_magnitudes(samples: np.ndarray, rate: int) -> np.ndarray:
    """[bands, frames] mel magnitude spectrogram of mono float samples."""
    x = np.asarray(samples, dtype=np.float64)
    if len(x) < N_FFT:
        x = np.pad(x, (0, N_FFT - len(x)))
    _, _, z = stft(x, fs=rate, nperseg=N_FFT, noverlap=N_FFT - HOP, boundary=None, padded=True)
    return mel_filterbank(rate) @ np.abs(z)


def ratio_db(ref: np.ndarray, got: np.ndarray) -> float:
    """10 log10(sum ref^2 / sum (ref - got)^2), within +-MAX_DB (identical: MAX_DB; a silent reference: -MAX_DB)."""
    err = float(np.sum((ref - got) ** 2))
    sig = float(np.sum(ref**2))
    if err == 0.0:
        return MAX_DB
    if sig == 0.0:
        return -MAX_DB
    return float(min(MAX_DB, 10 * math.log10(sig / err)))


def mel_snr_db(reference: np.ndarray, audio: np.ndarray, rate: int) -> float:
    """The mel magnitude SNR of `audio` against `reference` in dB (see the module docstring)."""
    n = max(len(reference), len(audio))
    ref = mel_magnitudes(np.pad(np.asarray(reference, dtype=np.float64), (0, n - len(reference))), rate)
    got = mel_magnitudes(np.pad(np.asarray(audio, dtype=np.float64), (0, n - len(audio))), rate)
    return ratio_db(ref, got)
