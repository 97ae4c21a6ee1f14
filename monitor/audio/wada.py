"""Blind SNR estimation of speech: WADA-SNR (Kim & Stern, Interspeech 2008).

WADA ("waveform amplitude distribution analysis") needs no clean reference: it assumes the
amplitude of clean speech follows a Gamma distribution of shape 0.4 and the noise is Gaussian,
measures G = ln(mean|x|) - mean(ln|x|) of the signal, and reads the SNR off a table of G against
SNR (`vvbench.monitor.audio._wada_table`, generated here by simulation over -20..100 dB).

What it can and cannot tell (see the tests for measured figures):
* speech with natural syllable modulation and pauses reads close to its true SNR over ~0..30 dB
  in white noise; above ~40 dB the reading is coarse (G flattens), so compare with a clean
  baseline of the same service rather than trusting an absolute value up there;
* non-speech reads wrongly: a sustained tone reads about -20 dB whatever its noise, digital
  silence or zero padding pushes the reading to 100 dB (every exact zero is floored at 1e-10 of
  the peak, which looks like extremely peaky "speech");
* results are clamped to the table's ends (-20 and 100 dB).
"""

from __future__ import annotations

import math

import numpy as np

from vvbench.monitor.audio._wada_table import G_TABLE, SNR_DB_MAX, SNR_DB_MIN, g_statistic

__all__ = ["WADA_SNR_MAX_DB", "WADA_SNR_MIN_DB", "wada_snr"]

WADA_SNR_MIN_DB = float(SNR_DB_MIN)
WADA_SNR_MAX_DB = float(SNR_DB_MAX)
_SNR_GRID_DB = np.arange(SNR_DB_MIN, SNR_DB_MAX + 1, dtype=np.float64)
_G_GRID = np.asarray(G_TABLE, dtype=np.float64)


def wada_snr(x: np.ndarray) -> float:
    """Estimated SNR (dB) of the speech in `x`; NaN when it cannot be measured.

    `x`: samples of any numeric dtype and scale (int16 PCM or floats; the estimate does not
    depend on the level). A multi-channel array is read as one sequence of samples. Returns NaN
    for an empty signal, one that is all zeros, or one holding NaN or infinity.
    """
    samples = np.asarray(x, dtype=np.float64).reshape(-1)
    if samples.size == 0 or not np.all(np.isfinite(samples)) or not np.any(samples):
        return math.nan
    g = g_statistic(samples)
    # np.interp clamps outside the table, which is the documented behaviour at both ends.
    return float(np.interp(g, _G_GRID, _SNR_GRID_DB))
