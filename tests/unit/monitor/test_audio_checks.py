"""Audio checks on real speech (espeak-ng) and on the failures they must name: noise, silence, clipping, truncation."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from vvbench.core.audio import read_audio, to_pcm16, write_wav
from vvbench.monitor.audio.checks import AudioThresholds, check_audio

ESPEAK = shutil.which("espeak-ng")
pytestmark = pytest.mark.skipif(ESPEAK is None, reason="espeak-ng is not installed (apt-get install espeak-ng)")
TEXT = ("The quick brown fox jumps over the lazy dog. Monitoring speech quality without a reference is "
        "useful, because production traffic has no clean copy to compare with.")


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> tuple[np.ndarray, int]:
    path = tmp_path_factory.mktemp("espeak") / "speech.wav"
    subprocess.run([ESPEAK, "-w", str(path), TEXT], check=True, capture_output=True)
    return read_audio(path)


def with_noise(x: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(len(x))
    noise *= np.sqrt(np.mean(x ** 2) / np.mean(noise ** 2) / 10 ** (snr_db / 10))
    mixed = x + noise
    return mixed * (0.8 / np.max(np.abs(mixed)))  # room below full scale: nothing clips


def vv(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vvbench.cli", *args], check=False, capture_output=True, text=True, timeout=120)


def test_clean_speech_passes_every_check(speech):
    x, rate = speech
    report = check_audio(x, rate, expected_s=len(x) / rate)
    assert report.ok, report.reasons()
    assert all(c.ok is True for c in report.checks.values()), report.to_json()
    assert -30 < report.levels.rms_dbfs < -3


@pytest.mark.parametrize("snr_db", [0, 5, 10, 15, 20])
def test_check_audio_cli_reads_snr_within_3_db(speech, tmp_path, snr_db):
    x, rate = speech
    path = tmp_path / f"noisy-{snr_db}.wav"
    write_wav(path, with_noise(x, snr_db, seed=snr_db), rate)
    out = vv("check-audio", "--json", str(path))
    assert out.returncode == 1, out.stderr  # every one of these is below the 25 dB floor
    report = json.loads(out.stdout)[0]
    assert report["measurements"]["snr_db"] == pytest.approx(snr_db, abs=3.0)
    assert "snr" in report["failed"]
    assert report["checks"]["clipping"]["ok"] is True


def test_silence_is_flagged_by_the_silence_check(speech):
    _, rate = speech
    report = check_audio(np.zeros(rate * 3), rate)
    assert report.failed == ["silence"]
    assert report.checks["snr"].ok is None and report.checks["level"].ok is None
    faint = np.random.default_rng(0).standard_normal(rate * 3) * 10 ** (-70 / 20)
    assert "silence" in check_audio(faint, rate).failed


def test_clipping_is_flagged_by_the_clipping_check(speech):
    x, rate = speech
    clipped = np.clip(x * 6.0, -1.0, 1.0)
    report = check_audio(clipped, rate, expected_s=len(x) / rate)
    assert "clipping" in report.failed
    assert report.checks["clipping"].value > 0.01
    for other in ("silence", "dropout", "duration", "valid"):
        assert report.checks[other].ok is True


def test_truncation_is_flagged_by_the_duration_check(speech):
    x, rate = speech
    full = len(x) / rate
    report = check_audio(x[: len(x) // 2], rate, expected_s=full)
    assert report.failed == ["duration"]
    assert "truncated" in report.checks["duration"].reason
    assert check_audio(np.concatenate([x, x, x]), rate, expected_s=full).failed == ["duration"]


def test_a_gap_inside_speech_is_a_dropout_but_natural_pauses_are_not(speech):
    x, rate = speech
    clean = check_audio(x, rate)
    assert clean.checks["dropout"].ok is True and clean.levels.gaps == 0
    half = len(x) // 2
    gapped = np.concatenate([x[:half], np.zeros(2 * rate), x[half:]])
    report = check_audio(gapped, rate)
    assert report.failed == ["dropout"]
    assert report.checks["dropout"].value == pytest.approx(2.0, abs=0.3)
    assert report.levels.gaps == 1  # the dropouts counted, by the check's own line


def test_nan_and_empty_fail_valid_and_nothing_else_is_measured():
    for bad in (np.array([]), np.array([0.1, np.nan, 0.2] * 1000)):
        report = check_audio(bad, 24_000)
        assert report.failed == ["valid"]
        assert all(c.ok is None for name, c in report.checks.items() if name != "valid")


def test_thresholds_are_configurable(speech):
    x, rate = speech
    noisy = with_noise(x, 15, seed=1)
    assert "snr" in check_audio(noisy, rate).failed
    assert "snr" not in check_audio(noisy, rate, thresholds=AudioThresholds(snr_min_db=10)).failed


def test_check_audio_cli_exit_codes_and_table(speech, tmp_path):
    x, rate = speech
    good, silent, raw = tmp_path / "good.wav", tmp_path / "silent.wav", tmp_path / "good.pcm"
    write_wav(good, x, rate)
    write_wav(silent, np.zeros(rate), rate)
    raw.write_bytes(to_pcm16(x))
    ok = vv("check-audio", str(good), "--rate", str(rate), str(raw))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "good.wav" in ok.stdout and "ok" in ok.stdout
    failed = vv("check-audio", str(good), str(silent))
    assert failed.returncode == 1
    assert "FAIL silence" in failed.stdout
    unreadable = vv("check-audio", str(good), str(tmp_path / "missing.wav"))
    assert unreadable.returncode == 2
    assert unreadable.stderr.strip().count("\n") == 0 and "missing.wav: cannot read" in unreadable.stderr
    listed = tmp_path / "thresholds.yaml"
    listed.write_text("- snr_min_db: 20\n")
    not_a_mapping = vv("check-audio", "--thresholds", str(listed), "--snr-min", "10", str(good))
    assert not_a_mapping.returncode == 2 and not_a_mapping.stderr.strip().count("\n") == 0, not_a_mapping.stderr
    assert "expected a mapping of thresholds" in not_a_mapping.stderr
    truncated = vv("check-audio", "--json", "--expected-s", f"{2 * len(x) / rate:.3f}", str(good))
    assert truncated.returncode == 1 and json.loads(truncated.stdout)[0]["failed"] == ["duration"]
