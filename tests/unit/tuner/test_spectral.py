"""The mel SNR: phase-blind, and falling with a real change of the spectrum."""

import numpy as np

from vvbench.tuner.quality import snr_db
from vvbench.tuner.spectral import MAX_DB, mel_snr_db

RATE = 24_000


def voice(phase0: float, f0: float = 140.0, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    return env * sum(np.sin(2 * np.pi * k * f0 * t + k * phase0) / k for k in range(1, 12)) * 0.2


def test_identical_audio_reads_the_cap():
    x = voice(0.0)
    assert mel_snr_db(x, x, RATE) == MAX_DB


def test_a_phase_shift_ruins_the_waveform_snr_but_not_the_mel_snr():
    ref, shifted = voice(0.0), voice(1.3)
    assert snr_db(ref, shifted) < 3.0
    assert mel_snr_db(ref, shifted, RATE) > 25.0


def test_the_mel_snr_falls_as_noise_grows_and_as_pitch_moves():
    ref = voice(0.0)
    rng = np.random.default_rng(1)
    noise = rng.standard_normal(len(ref))
    by_noise = [mel_snr_db(ref, ref + a * noise, RATE) for a in (0.001, 0.01, 0.05)]
    assert by_noise[0] > by_noise[1] > by_noise[2]
    by_pitch = [mel_snr_db(ref, voice(0.0, f0), RATE) for f0 in (141.0, 150.0, 180.0)]
    assert by_pitch[0] > by_pitch[1] > by_pitch[2]


def test_a_truncated_answer_costs_its_missing_part():
    ref = voice(0.0)
    assert mel_snr_db(ref, ref[: len(ref) // 2], RATE) < 6.0
