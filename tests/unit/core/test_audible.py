"""What "audible" means: the first whole 20 ms window from sample 0 whose RMS is above -50 dBFS.

The load generator's time to first audible audio and the monitor's silence check read the same
definition; the last test holds them to it on one signal.
"""

from __future__ import annotations

import numpy as np
import pytest

from vvbench.core.audio import AUDIBLE, first_audible, from_pcm16, to_pcm16, window_rms, window_samples
from vvbench.load.audio import AudioStream
from vvbench.monitor.audio.checks import check_audio

RATE = 24_000
WIN = 480  # 20 ms at 24 kHz


def tone(n: int, dbfs: float) -> np.ndarray:
    amp = 10 ** (dbfs / 20) * np.sqrt(2)  # a sine's RMS is amp / sqrt(2)
    return amp * np.sin(2 * np.pi * 300 * np.arange(n) / RATE)


def test_the_definition_in_words_and_samples():
    assert AUDIBLE == "20 ms window above -50 dBFS"
    assert window_samples(RATE) == WIN and window_samples(16_000) == 320 and window_samples(10) == 1


@pytest.mark.parametrize("dbfs, audible", [(-49.5, True), (-50.5, False), (-120, False)])
def test_the_line_is_minus_50_dbfs(dbfs, audible):
    assert (first_audible(tone(10 * WIN, dbfs), RATE) == WIN) is audible
    if not audible:
        assert first_audible(tone(10 * WIN, dbfs), RATE) is None


def test_windows_are_aligned_at_sample_zero_and_only_whole_ones_count():
    x = np.concatenate([np.zeros(3 * WIN), tone(WIN, -10)])
    assert first_audible(x, RATE) == 4 * WIN
    shifted = np.concatenate([np.zeros(3 * WIN + WIN // 2), tone(WIN, -10), np.zeros(WIN)])
    assert first_audible(shifted, RATE) == 4 * WIN  # half a window of tone is still well above the line
    tail = np.concatenate([np.zeros(2 * WIN), tone(WIN - 1, -10)])
    assert first_audible(tail, RATE) is None  # the window it would complete has not arrived
    assert first_audible(np.zeros(0), RATE) is None


def test_window_rms_keeps_a_last_window_only_when_asked_and_half_full():
    x = np.concatenate([np.ones(WIN), 0.5 * np.ones(WIN // 2 + 1)])
    assert window_rms(x, WIN).tolist() == [1.0]
    assert window_rms(x, WIN, partial=True).tolist() == [1.0, 0.5]
    assert window_rms(x[: WIN + WIN // 2 - 1], WIN, partial=True).tolist() == [1.0]


@pytest.mark.parametrize("dbfs", [-49.0, -51.0])
def test_the_load_generator_and_the_silence_check_draw_the_same_line(dbfs):
    pcm = to_pcm16(np.concatenate([np.zeros(5 * WIN), tone(50 * WIN, dbfs)]))
    stream = AudioStream("pcm", RATE)
    stream.feed(pcm)
    levels = check_audio(from_pcm16(pcm), RATE).levels
    if dbfs > -50:
        assert stream.audible_at == 6 * WIN
        assert levels.leading_silence_s == pytest.approx(5 * 0.020) and levels.active_ratio == pytest.approx(50 / 55)
    else:
        assert stream.audible_at is None
        assert levels.active_ratio == 0.0
