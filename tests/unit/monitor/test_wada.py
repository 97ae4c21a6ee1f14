"""WADA-SNR blind estimator: known SNRs, documented failure modes, the table's provenance."""

from __future__ import annotations

import math
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from vvbench.monitor.audio import _wada_table
from vvbench.monitor.audio.wada import WADA_SNR_MAX_DB, WADA_SNR_MIN_DB, wada_snr

REPO_ROOT = Path(__file__).resolve().parents[3]


def mix(speech: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """`speech` plus white Gaussian noise at `snr_db` (energy over the whole signal)."""
    noise = rng.standard_normal(len(speech))
    scale = np.sqrt(np.mean(speech ** 2) / np.mean(noise ** 2) / 10 ** (snr_db / 10))
    return speech + scale * noise


@pytest.mark.parametrize("snr_db", [0, 5, 10, 15, 20, 30])
def test_gamma_speech_in_gaussian_noise_reads_true_snr(snr_db):
    rng = np.random.default_rng(1234 + snr_db)  # not the table's seed: an independent draw
    n = 240_000  # 10 s at 24 kHz
    speech = rng.gamma(0.4, 1.0, n) * rng.choice([-1.0, 1.0], n)
    assert wada_snr(mix(speech, snr_db, rng)) == pytest.approx(snr_db, abs=2.0)


def test_reading_does_not_depend_on_level_or_dtype():
    rng = np.random.default_rng(5)
    x = mix(rng.gamma(0.4, 1.0, 48_000) * rng.choice([-1.0, 1.0], 48_000), 12, rng)
    x /= np.abs(x).max()
    ref = wada_snr(x)
    assert wada_snr(x * 1e-3) == pytest.approx(ref, abs=1e-9)
    pcm = np.round(x * 32767).astype(np.int16)
    assert wada_snr(pcm) == pytest.approx(ref, abs=0.3)
    assert wada_snr(np.stack([x, x], axis=1)) == pytest.approx(ref, abs=1e-9)


def test_sustained_tone_reads_bottom_of_table():
    """Documented failure mode: a tone is not speech-like, whatever its real SNR."""
    t = np.arange(24_000) / 24_000
    tone = np.sin(2 * np.pi * 220 * t) + 1e-3 * np.random.default_rng(0).standard_normal(24_000)
    assert wada_snr(tone) < -15.0


def test_pure_noise_reads_low_and_clamps():
    noise = np.random.default_rng(1).standard_normal(100_000)
    snr = wada_snr(noise)
    assert WADA_SNR_MIN_DB <= snr < -5.0


def test_zero_padding_saturates_high():
    """Documented failure mode: digital zeros look like extremely peaky speech."""
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.standard_normal(10_000), np.zeros(10_000)])
    assert wada_snr(x) == WADA_SNR_MAX_DB


@pytest.mark.parametrize("bad", [np.array([]), np.zeros(1000), np.array([0.1, np.nan, 0.2]),
                                 np.array([1.0, np.inf])])
def test_unmeasurable_input_is_nan(bad):
    assert math.isnan(wada_snr(bad))


def test_table_is_monotonic_over_the_documented_range():
    g = np.asarray(_wada_table.G_TABLE)
    assert len(g) == _wada_table.SNR_DB_MAX - _wada_table.SNR_DB_MIN + 1 == 121
    assert np.all(np.diff(g) >= 0)
    assert np.all(np.diff(g[10:]) > 0)  # strictly increasing from -10 dB up
    # ends: Gaussian noise (ln sqrt(2/pi) + (gamma + ln 2)/2) and Gamma(0.4) speech
    assert g[0] == pytest.approx(np.log(np.sqrt(2 / np.pi)) + (np.euler_gamma + np.log(2)) / 2,
                                 abs=0.01)
    assert g[-1] < np.log(0.4) + 2.5614  # ln(k) - digamma(k) for k = 0.4: the noiseless limit


def test_table_matches_its_generator():
    snr = np.array([0.0, 20.0, 45.0])
    regenerated = np.round(_wada_table.simulate_g(snr), 6)
    idx = (snr - _wada_table.SNR_DB_MIN).astype(int)
    np.testing.assert_allclose(regenerated, np.asarray(_wada_table.G_TABLE)[idx], atol=1e-6)


# -- real speech ---------------------------------------------------------------------------
ESPEAK = shutil.which("espeak-ng")
ESPEAK_TEXT = ("The quick brown fox jumps over the lazy dog. Monitoring speech quality without a "
               "reference is useful, because production traffic has no clean copy to compare "
               "with. This sentence makes the sample a few seconds longer.")


@pytest.fixture(scope="module")
def espeak_speech(tmp_path_factory) -> np.ndarray:
    path = tmp_path_factory.mktemp("espeak") / "speech.wav"
    subprocess.run([ESPEAK, "-w", str(path), ESPEAK_TEXT], check=True, capture_output=True)
    with wave.open(str(path)) as fh:
        return np.frombuffer(fh.readframes(fh.getnframes()), dtype=np.int16).astype(np.float64)


@pytest.mark.skipif(ESPEAK is None, reason="espeak-ng is not installed (apt-get install espeak-ng)")
@pytest.mark.parametrize("snr_db", [0, 5, 10, 15, 20])
def test_espeak_speech_in_white_noise_reads_true_snr(espeak_speech, snr_db):
    rng = np.random.default_rng(100 + snr_db)
    assert wada_snr(mix(espeak_speech, snr_db, rng)) == pytest.approx(snr_db, abs=3.0)
