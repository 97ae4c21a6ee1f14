"""`vvbench synth` and `plan` run as a user runs them: a real process, real files (`demo`: test_demo.py)."""

import json
import subprocess
import sys
import wave

import pytest

from vvbench.core.audio import read_audio
from vvbench.monitor.audio.wada import wada_snr


def vv(*args, timeout=180, cwd=None):
    return subprocess.run([sys.executable, "-m", "vvbench.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


def test_synth_writes_wav_and_reports_figures(tmp_path):
    out = tmp_path / "a.wav"
    r = vv("synth", "Hello from the command line.", "--out", str(out), "--seed", "7", "--json",
           "--diffusion-steps", "4", "--chunk-frames", "3")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    with wave.open(str(out)) as w:
        assert w.getframerate() == 24_000 and w.getnchannels() == 1 and w.getsampwidth() == 2
        assert w.getnframes() == pytest.approx(res["audio_s"] * 24_000)
    assert res["audio_s"] > 1 and res["rtf"] == pytest.approx(res["wall_s"] / res["audio_s"])
    assert 0 < res["ttfc_s"] <= res["wall_s"]
    audio, rate = read_audio(out)
    assert wada_snr(audio) >= 30
    # the same seed from a second process: the same file
    out2 = tmp_path / "b.wav"
    vv("synth", "Hello from the command line.", "--out", str(out2), "--seed", "7", "--diffusion-steps", "4", "--chunk-frames", "3")
    assert out.read_bytes() == out2.read_bytes()


@pytest.mark.parametrize(
    "args, words",
    [
        (["synth", "x", "--out", "o.wav", "--max-batch", "0"], ["max_batch", "greater than or equal to 1"]),
        (["synth", "x", "--out", "o.wav", "--preset", "huge"], ["preset", "tiny"]),
        (["synth", "x", "--out", "o.wav", "--diffusion-steps", "-2"], ["diffusion_steps"]),
        (["synth", "   ", "--out", "o.wav"], ["input"]),
        (["synth", "x", "--out", "o.wav", "--voice", "nobody"], ["voice", "alloy"]),
        (["synth", "x", "--out", "o.wav", "--offload", "lm.layers.0-1=cpu"], ["offload", "2-3"]),
        (["plan", "--config", "missing.yaml"], ["missing.yaml", "cannot read"]),
        (["plan", "--streams", "0"], ["streams"]),
        (["plan", "--budget", "lots"], ["size"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, words):
    r = vv(*args, cwd=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("vvbench: error:"), r.stderr
    assert "Traceback" not in r.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_config_file_and_flags(tmp_path):
    cfg = tmp_path / "rt.yaml"
    cfg.write_text("preset: tiny\nmax_batch: 3\n")
    r = vv("plan", "--config", str(cfg), "--max-batch", "5", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["max_batch"] == 5


def test_plan_large_preset_answers_in_seconds():
    r = vv("plan", "--preset", "vibevoice-1.5b", "--streams", "3", "--max-audio-min", "90", "--json", timeout=60)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["weights_bytes"] == data["params_total"] * 2 and data["streams"] == 3
    human = vv("plan", "--preset", "vibevoice-1.5b", "--streams", "3", "--max-audio-min", "90", timeout=60)
    assert "KV per stream" in human.stdout and "max streams" in human.stdout


def test_plan_says_a_step_knob_does_not_apply_to_chattts():
    r = vv("plan", "--preset", "chattts", "--diffusion-steps", "30", "--dtype", "float32", timeout=60)
    assert r.returncode == 0, r.stderr
    assert "diffusion_steps does not apply to preset chattts" in r.stderr


@pytest.mark.slow  # synthesises with the full-size ChatTTS shapes on the CPU (over a minute on 2 cores)
def test_chattts_says_step_knob_does_not_apply(tmp_path):
    r = vv("synth", "Hi.", "--out", str(tmp_path / "c.wav"), "--preset", "chattts", "--diffusion-steps", "30",
           "--dtype", "float32")
    assert r.returncode == 0, r.stderr
    assert "diffusion_steps does not apply to preset chattts" in r.stderr
