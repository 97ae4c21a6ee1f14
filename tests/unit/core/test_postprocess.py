"""Post-processing: VAD trim on real (espeak-ng) and runtime speech, soxr resampling, BS.1770 loudness."""

from __future__ import annotations

import math
import shutil
import subprocess

import numpy as np
import pytest
import soxr

from vvbench.core.audio import read_audio
from vvbench.core.postprocess import (
    Chain,
    LoudnessNormaliser,
    PeakLimiter,
    PostprocessError,
    Resampler,
    SilenceTrimmer,
    build_chain,
    integrated_loudness,
    process_all,
)
from vvbench.core.postprocess.trim import HANGOVER_S

R = 24_000
TEXT = "The quick brown fox jumps over the lazy dog. After a short pause, it runs back home again."
RUNTIME_TEXT = "Hello there. How are you today?"  # ~2.8 s of audio, ~4 s to synthesise on tiny
CHUNKS = [None, 960, 3200]  # whole, 40 ms, 133 ms


def run(stage, x, chunk):
    """All of a stage's output for `x` fed whole (chunk None) or in pieces of `chunk` samples."""
    if chunk is None:
        parts = [stage.process(x)]
    else:
        parts = [stage.process(x[i:i + chunk]) for i in range(0, len(x), chunk)]
    return np.concatenate(parts + [stage.flush()])


def audible_bounds(x, rate=R, window_s=0.01, dbfs=-50.0):
    """(first, last) sample of the 10 ms windows above -50 dBFS: where the speech is."""
    w = round(window_s * rate)
    n = len(x) // w
    rms_db = 20 * np.log10(np.sqrt(np.mean(x[:n * w].astype(np.float64).reshape(n, w) ** 2, axis=1)) + 1e-12)
    idx = np.nonzero(rms_db > dbfs)[0]
    return idx[0] * w, (idx[-1] + 1) * w


@pytest.fixture(scope="module")
def espeak(tmp_path_factory):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    path = tmp_path_factory.mktemp("espeak") / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(path), TEXT], check=True, capture_output=True)
    x, rate = read_audio(path)
    return soxr.resample(x.astype(np.float32), rate, R).astype(np.float32)


@pytest.fixture(scope="module")
def runtime_speech(tiny_engine):
    from vvbench.runtime.request import SynthesisRequest

    handle = tiny_engine.submit(SynthesisRequest(text=RUNTIME_TEXT, voice="alloy", seed=7))
    audio = np.concatenate([c.audio for c in handle.chunks()]).astype(np.float32)
    assert handle.sample_rate == R
    return audio


@pytest.fixture(params=["espeak", "runtime"])
def speech(request):
    """espeak-ng speech, then the runtime's own voice (its engine and synthesis are set-up cost)."""
    return request.getfixturevalue("espeak" if request.param == "espeak" else "runtime_speech")


def padded(speech, floor_dbfs):
    pad = np.zeros(R, np.float32)
    y = np.concatenate([pad, speech, pad])
    if floor_dbfs is not None:
        y = y + np.float32(10 ** (floor_dbfs / 20)) * np.random.default_rng(3).standard_normal(len(y)).astype(np.float32)
    return y


def locate(y, out):
    """Where the trimmer's output sits in its input: it is always a contiguous slice x[a:a+len]."""
    mark_y = np.flatnonzero(np.abs(y) > 0.01)[0]
    mark_out = np.flatnonzero(np.abs(out) > 0.01)[0]
    a = int(mark_y - mark_out)
    assert np.array_equal(y[a:a + len(out)], out), "the trimmed output is not a slice of the input"
    return a


# --- trim ---------------------------------------------------------------------------------
@pytest.mark.parametrize("floor_dbfs", [None, -60.0], ids=["digital-silence", "noise-floor-60dBFS"])
def test_trim_cuts_padding_to_the_documented_margins_and_keeps_the_speech(speech, floor_dbfs):
    on, off = audible_bounds(speech)
    y = padded(speech, floor_dbfs)
    whole = None
    for chunk in CHUNKS:
        t = SilenceTrimmer(R)
        out = run(t, y, chunk)
        if whole is None:
            whole = out
        else:  # decisions are made on fixed blocks: chunking changes nothing
            assert np.array_equal(out, whole), f"chunk {chunk}"
        a = locate(y, out)
        kept_lead_s = (R + on - a) / R
        kept_trail_s = (a + len(out) - (R + off)) / R
        assert kept_lead_s == pytest.approx(t.lead / R, abs=0.05), (chunk, kept_lead_s)
        assert kept_trail_s == pytest.approx(t.trail / R + HANGOVER_S, abs=0.05), (chunk, kept_trail_s)
        assert t.seconds > 0.0


@pytest.mark.parametrize("floor_dbfs", [None, -60.0])
def test_trim_of_silence_alone_is_empty(floor_dbfs):
    y = padded(np.zeros(R, np.float32), floor_dbfs)
    assert len(run(SilenceTrimmer(R), y, 3200)) == 0


def test_trim_keeps_inner_pauses_whole(espeak):
    gap = np.zeros(R // 2, np.float32)  # 500 ms of digital silence between two utterances
    y = padded(np.concatenate([espeak, gap, espeak]), None)
    out = run(SilenceTrimmer(R), y, 3200)
    a = locate(y, out)
    on, _ = audible_bounds(y)
    _, off = audible_bounds(y)
    assert a <= on and a + len(out) >= off  # everything between first and last speech, the gap too


@pytest.mark.parametrize("rate", [16_000, 22_050, 48_000])
def test_trim_at_other_rates(espeak, rate):
    speech = soxr.resample(espeak, R, rate).astype(np.float32)
    y = np.concatenate([np.zeros(rate, np.float32), speech, np.zeros(rate, np.float32)])
    out = run(SilenceTrimmer(rate), y, round(0.133 * rate))
    assert abs(len(out) / rate - len(speech) / rate) < 0.3


# --- resample -----------------------------------------------------------------------------
def tone(freq_hz, seconds, rate, amp=0.5):
    return (amp * np.sin(2 * np.pi * freq_hz * np.arange(round(seconds * rate)) / rate)).astype(np.float32)


def log_chirp(f0, f1, seconds, rate, fade_s=0.02):
    """A log sweep with 20 ms raised-cosine fades: an abrupt start or end is a click whose
    broadband energy lands in band after any resampler (measured: -50 dB in the last frame)."""
    t = np.arange(round(seconds * rate)) / rate
    k = math.log(f1 / f0) / seconds
    x = 0.5 * np.sin(2 * np.pi * f0 * (np.exp(k * t) - 1) / k)
    n = round(fade_s * rate)
    fade = 0.5 - 0.5 * np.cos(np.pi * np.arange(n) / n)
    x[:n] *= fade
    x[-n:] *= fade[::-1]
    return x.astype(np.float32), f0 * np.exp(k * t)


@pytest.mark.parametrize("out_rate", [8_000, 16_000, 44_100, 48_000])
def test_resample_keeps_duration_and_level(out_rate):
    x = tone(1000.0, 3.0, R)
    y = run(Resampler(R, out_rate), x, 3200)
    assert abs(len(y) - len(x) * out_rate / R) <= len(x) * out_rate / R / 1000
    mid = slice(len(y) // 4, 3 * len(y) // 4)
    rms_in = np.sqrt(np.mean(x[len(x) // 4:3 * len(x) // 4].astype(np.float64) ** 2))
    rms_out = np.sqrt(np.mean(y[mid].astype(np.float64) ** 2))
    assert abs(20 * math.log10(rms_out / rms_in)) < 0.2


def frame_db(y, rate, frame_s=0.02):
    w = round(frame_s * rate)
    n = len(y) // w
    return 10 * np.log10(np.mean(y[:n * w].astype(np.float64).reshape(n, w) ** 2, axis=1) + 1e-30), w


def test_downsampling_a_sweep_does_not_alias():
    """A log chirp 20 Hz -> 12 kHz at 24 kHz, to 16 kHz: while the chirp is above the new Nyquist
    frequency (8 kHz) the output must be >= 60 dB below its level while the chirp is in band."""
    x, inst_hz = log_chirp(20.0, 12_000.0, 4.0, R)
    y = run(Resampler(R, 16_000), x, 3200)
    db, w = frame_db(y, 16_000)
    centre_hz = inst_hz[np.minimum((np.arange(len(db)) * w + w // 2) * R // 16_000, len(x) - 1)]
    in_band = db[(centre_hz > 200) & (centre_hz < 6_000)]
    above = db[centre_hz > 8_300]  # past the transition band (the chirp moves ~50 Hz per frame there)
    assert len(above) > 10
    assert np.median(in_band) - above.max() >= 60.0


def test_upsampling_puts_no_image_above_the_old_nyquist():
    x, _ = log_chirp(20.0, 11_000.0, 4.0, R)
    y = run(Resampler(R, 48_000), x, 3200).astype(np.float64)
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y)))) ** 2
    f = np.fft.rfftfreq(len(y), 1 / 48_000)
    in_band = spec[(f > 200) & (f < 10_000)].mean()
    assert 10 * np.log10(spec[f > 12_500].max() / in_band) <= -60.0


@pytest.mark.parametrize("out_rate", [16_000, 48_000])
@pytest.mark.parametrize("chunk", [960, 3200, 777])
def test_resample_streaming_equals_whole(out_rate, chunk):
    x, _ = log_chirp(20.0, 10_000.0, 2.0, R)
    whole = soxr.resample(x, R, out_rate, quality="HQ")
    y = run(Resampler(R, out_rate), x, chunk)
    assert len(y) == len(whole)
    assert np.max(np.abs(y - whole)) < 1e-4


def test_same_rate_passes_through_and_flush_ends_the_stream():
    x = tone(440.0, 0.5, R)
    r = Resampler(R, R)
    assert np.array_equal(r.process(x), x) and len(r.flush()) == 0
    with pytest.raises(RuntimeError):
        r.process(x)


# --- loudness -----------------------------------------------------------------------------
@pytest.mark.parametrize("target", [-30.0, -23.0, -16.0])
def test_loudness_reaches_the_target_without_clipping(speech, target):
    x = speech
    y = process_all(x, R, loudness=target)
    assert len(y) == len(x)
    assert integrated_loudness(y, R) == pytest.approx(target, abs=0.5)
    assert np.max(np.abs(y)) <= 10 ** (-1 / 20) + 1e-6  # the limiter's -1 dBFS ceiling


@pytest.mark.parametrize("target", [-14.0, -10.0])
def test_a_target_beyond_the_ceiling_is_limited_not_clipped(speech, target):
    """Near -10 LUFS speech's peaks (espeak-ng's are 18.5 dB over its loudness) pass the -1 dBFS
    ceiling: the limiter wins, the output stays under the ceiling and may fall short of the target
    (documented), but never below what a clip-free static gain would reach."""
    x = speech
    n = LoudnessNormaliser(R, target, measure_s=None)
    y = run(n, x, None)
    assert np.max(np.abs(y)) <= 10 ** (-1 / 20) + 1e-6
    loudness_in = integrated_loudness(x, R)
    static_gain_db = min(target - loudness_in, -1.0 - 20 * math.log10(np.max(np.abs(x))))
    assert loudness_in + static_gain_db - 0.1 <= integrated_loudness(y, R) <= target + 0.5
    assert n.gain_db == pytest.approx(target - loudness_in)


@pytest.mark.parametrize("chunk", [960, 3200])
def test_streaming_loudness_measures_the_first_seconds_then_holds_the_gain(espeak, chunk):
    n = LoudnessNormaliser(R, -20.0, measure_s=2.0)
    y = run(n, espeak, chunk)
    assert len(y) == len(espeak)
    assert integrated_loudness(y[:2 * R], R) == pytest.approx(-20.0, abs=0.5)
    assert n.measured_lufs == pytest.approx(integrated_loudness(espeak[:2 * R], R))
    limited = np.abs(espeak * 10 ** (n.gain_db / 20)) > 10 ** (-1 / 20)
    assert not limited.any()  # at -20 LUFS nothing reaches the ceiling: the gain is all there is
    np.testing.assert_allclose(y, espeak * np.float32(10 ** (n.gain_db / 20)), rtol=1e-6, atol=1e-7)


def test_limiter_never_exceeds_the_ceiling_and_leaves_quiet_audio_alone():
    rng = np.random.default_rng(9)
    x = (0.2 * rng.standard_normal(R * 2)).astype(np.float32)
    x[R // 2] = 3.0  # a lone spike, far over full scale
    x[R: R + 2400] *= 8.0  # a loud burst
    for chunk in CHUNKS:
        y = run(PeakLimiter(R, ceiling_dbfs=-1.0), x, chunk)
        assert len(y) == len(x)
        assert np.max(np.abs(y)) <= 10 ** (-1 / 20) * (1 + 1e-6)
    quiet = (0.1 * rng.standard_normal(R)).astype(np.float32)
    assert np.array_equal(run(PeakLimiter(R), quiet, 3200), quiet)


def test_silence_keeps_unity_gain():
    x = np.zeros(R * 3, np.float32)
    n = LoudnessNormaliser(R, -16.0)
    assert np.array_equal(run(n, x, 3200), x) and n.gain_db == 0.0


def test_short_signal_is_measured_as_one_block(espeak):
    x = espeak[R // 2: R // 2 + R // 5]  # 200 ms of speech, under one 400 ms block
    y = process_all(x, R, loudness=-20.0)
    assert integrated_loudness(y, R) == pytest.approx(-20.0, abs=0.5)


@pytest.mark.parametrize("bad", [-3.0, -80.0, float("nan"), True, "loud"])
def test_target_out_of_range_is_a_value_error_naming_the_range(bad):
    with pytest.raises(ValueError, match="-70 to -5 LUFS") as info:
        LoudnessNormaliser(R, bad)
    assert isinstance(info.value, PostprocessError) and info.value.param == "loudness"


# --- the chain ----------------------------------------------------------------------------
def test_process_all_runs_trim_resample_loudness(espeak):
    y = padded(espeak, -60.0)
    out = process_all(y, R, out_rate=16_000, trim=True, loudness=-18.0)
    trimmed = run(SilenceTrimmer(R), y, None)
    assert abs(len(out) - len(trimmed) * 16_000 / R) <= 1
    assert integrated_loudness(out, 16_000) == pytest.approx(-18.0, abs=0.5)


def test_chain_streaming_equals_process_all(espeak):
    y = padded(espeak, -60.0)
    chain = build_chain(R, out_rate=48_000, trim=True, loudness=-18.0, loudness_measure_s=None)
    assert isinstance(chain, Chain) and chain.out_rate == 48_000
    streamed = run(chain, y, 3200)
    whole = process_all(y, R, out_rate=48_000, trim=True, loudness=-18.0)
    assert len(streamed) == len(whole)
    assert np.max(np.abs(streamed - whole)) < 1e-4
    assert chain.seconds > 0.0


def test_bad_rates_and_shapes_are_refused():
    with pytest.raises(PostprocessError):
        build_chain(R, out_rate=0)
    with pytest.raises(PostprocessError):
        SilenceTrimmer(100)
    with pytest.raises(ValueError):
        Resampler(R, 16_000).process(np.zeros((10, 2), np.float32))
