"""`vvbench check-audio` reads every response format: real espeak-ng speech encoded with PyAV."""

import json
import shutil
import subprocess
import sys

import av
import numpy as np
import pytest

from vvbench.core.audio import decode_wav, to_pcm16

ESPEAK = shutil.which("espeak-ng")
TEXT = "Checking speech in every format the service can answer with, one sentence after another."
# format -> (muxer, encoder, encoder rate); libopus takes no 22.05 kHz input: PyAV resamples to 24 kHz
ENCODERS = {"mp3": ("mp3", "libmp3lame", None), "opus": ("ogg", "libopus", 24_000), "aac": ("adts", "aac", None),
            "flac": ("flac", "flac", None)}

pytestmark = pytest.mark.skipif(ESPEAK is None, reason="espeak-ng is not installed (apt-get install espeak-ng)")


def vv(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vvbench.cli", *args], check=False, capture_output=True, text=True, timeout=120)


def encode(x: np.ndarray, rate: int, fmt: str, path) -> None:
    muxer, codec, codec_rate = ENCODERS[fmt]
    with av.open(str(path), "w", format=muxer) as out:
        stream = out.add_stream(codec, rate=codec_rate or rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.frombuffer(to_pcm16(x), "<i2").reshape(1, -1).copy(), format="s16", layout="mono")
        frame.sample_rate = rate
        for p in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(p)


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    folder = tmp_path_factory.mktemp("formats")
    wav = folder / "speech.wav"
    subprocess.run([ESPEAK, "-w", str(wav), TEXT], check=True, capture_output=True)
    x, rate = decode_wav(wav.read_bytes(), str(wav))
    files = {"wav": wav}
    for fmt in ENCODERS:
        files[fmt] = folder / f"speech.{fmt}"
        encode(x, rate, fmt, files[fmt])
    (folder / "speech.pcm").write_bytes(to_pcm16(x))
    files["pcm"] = folder / "speech.pcm"
    return files, len(x) / rate


def test_every_format_is_read_and_checked_like_the_wav(speech):
    files, duration_s = speech
    got = vv("check-audio", "--json", "--rate", "22050", *(str(files[f]) for f in ("wav", "pcm", *ENCODERS)))
    assert got.returncode in (0, 1), got.stderr
    reports = {r["format"]: r for r in json.loads(got.stdout)}
    assert set(reports) == {"wav", "pcm", *ENCODERS}
    ref = reports["wav"]
    assert ref["ok"], ref
    for fmt, r in reports.items():
        m = r["measurements"]
        assert m["duration_s"] == pytest.approx(duration_s, abs=0.08), fmt  # codec priming/padding: a few frames at most
        assert m["rate"] == (48_000 if fmt == "opus" else 22_050), fmt
        assert r["ok"], (fmt, r["failed"], m["snr_db"])  # clean speech stays clean through every codec


def test_a_silent_opus_fails_and_a_corrupt_one_is_unreadable(tmp_path):
    encode(np.zeros(24_000), 24_000, "opus", tmp_path / "silent.opus")
    assert vv("check-audio", str(tmp_path / "silent.opus")).returncode == 1
    good = (tmp_path / "silent.opus").read_bytes()
    (tmp_path / "cut.opus").write_bytes(good[:60] + b"\x00" * 200)
    bad = vv("check-audio", str(tmp_path / "cut.opus"))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
