"""Every `response_format` against a real `vvbench serve`: the openai client, streamed bytes, decoded audio.

Each body is decoded whole with PyAV and compared with the same request's raw PCM (same seed,
so the same samples): the decoded length must be the PCM's (at the output rate) plus at most the
codec's declared delay and one frame of padding, and its level within 1 dB of the PCM's.
"""

from __future__ import annotations

import base64
import io
import json
import time

import av
import httpx
import numpy as np
import openai
import pytest
from serverkit import assert_error, wav_info

from vvbench.core.audio import from_pcm16
from vvbench.core.formats import CONTENT_TYPES, FORMATS
from vvbench.core.formats.encode import CODEC_DELAYS

TEXT = "The quick brown fox jumps over the lazy dog."
LONG = "This sentence is here to make the request long, so it keeps streaming for a while. " * 2
FRAME = {"mp3": 1152, "aac": 1024, "opus": 960, "flac": 0, "wav": 0, "pcm": 0}  # padding at the output rate, at most


def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=120)


def decode(data: bytes, fmt: str, rate: int = 24_000) -> tuple[np.ndarray, int]:
    """(float samples, rate) of a whole body; a truncated one decodes as far as it goes."""
    if fmt == "pcm":
        return from_pcm16(data), rate
    out = []
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        try:
            for frame in container.decode(stream):
                out.append(frame.to_ndarray().astype(np.float64).reshape(-1) / (32768.0 if frame.format.name.startswith("s16") else 1.0))
        except av.error.FFmpegError:
            pass  # the cut end of a prefix
        return (np.concatenate(out) if out else np.zeros(0)), stream.rate


def rms_db(x: np.ndarray) -> float:
    return 20 * np.log10(np.sqrt(np.mean(np.square(x))) + 1e-12)


@pytest.fixture(scope="module")
def reference(server) -> dict[int, np.ndarray]:
    """Raw PCM of TEXT per seed (what every format must carry)."""
    with httpx.Client(base_url=server.url, timeout=120) as http:
        return {seed: from_pcm16(http.post("/v1/audio/speech", json={"input": TEXT, "seed": seed, "response_format": "pcm",
                                                                     "stream": False}).content) for seed in (7, 8)}


def check_audio(data: bytes, fmt: str, ref: np.ndarray, rate: int = 24_000) -> None:
    y, got_rate = decode(data, fmt, rate)
    want_rate = 48_000 if fmt == "opus" else rate
    assert got_rate == want_rate
    expected = round(len(ref) * want_rate / 24_000)
    delay = CODEC_DELAYS.get(fmt, 0)
    assert expected <= len(y) <= expected + delay + FRAME[fmt], (fmt, len(y), expected, delay)
    if rate == 24_000:
        aligned = y[delay:delay + expected]
        assert abs(rms_db(aligned) - rms_db(ref)) < 1.0, (fmt, rms_db(aligned), rms_db(ref))


@pytest.mark.parametrize("fmt", FORMATS)
def test_openai_client_plain(server, reference, fmt):
    audio = client(server).audio.speech.create(model="tts-1", voice="alloy", input=TEXT, response_format=fmt,
                                               extra_body={"seed": 7})
    assert audio.response.headers["content-type"] == CONTENT_TYPES[fmt]
    check_audio(audio.content, fmt, reference[7])


@pytest.mark.parametrize("fmt", FORMATS)
def test_openai_client_streaming_and_whole_body_agree(server, reference, fmt):
    with client(server).audio.speech.with_streaming_response.create(
            model="tts-1", voice="alloy", input=TEXT, response_format=fmt, extra_body={"seed": 8}) as resp:
        assert "encode;dur=" in resp.headers["server-timing"]
        streamed = b"".join(resp.iter_bytes())
    check_audio(streamed, fmt, reference[8])
    whole = httpx.post(f"{server.url}/v1/audio/speech", timeout=120,
                       json={"input": TEXT, "seed": 8, "response_format": fmt, "stream": False})
    assert int(whole.headers["content-length"]) == len(whole.content)
    assert "encode;dur=" in whole.headers["server-timing"] and "total;dur=" in whole.headers["server-timing"]
    if fmt == "wav":  # the whole body has the real sizes where the stream has the streaming ones
        assert whole.content[44:] == streamed[44:] and wav_info(whole.content)[3] == len(reference[8])
    else:
        assert whole.content == streamed


def test_default_format_is_mp3(server, reference):
    audio = client(server).audio.speech.create(model="tts-1", voice="alloy", input=TEXT, extra_body={"seed": 7})
    assert audio.response.headers["content-type"] == "audio/mpeg"
    assert audio.content[0] == 0xFF and audio.content[1] & 0xE0 == 0xE0  # an MPEG audio frame sync, no ID3 tag
    check_audio(audio.content, "mp3", reference[7])


@pytest.mark.parametrize("fmt", ["opus", "mp3"])
def test_sse_deltas_carry_the_encoded_stream(server, fmt):
    body = {"input": TEXT, "seed": 8, "response_format": fmt}
    with httpx.Client(base_url=server.url, timeout=120) as http:
        raw = http.post("/v1/audio/speech", json=body).content
        with http.stream("POST", "/v1/audio/speech", json={**body, "stream_format": "sse"}) as resp:
            events = [json.loads(line[6:]) for line in resp.iter_lines() if line.startswith("data: ")]
    assert events[-1]["type"] == "speech.audio.done"
    deltas = [base64.b64decode(e["audio"]) for e in events[:-1]]
    assert len(deltas) > 1 and all(deltas)
    assert b"".join(deltas) == raw


@pytest.mark.parametrize("fmt", ["mp3", "opus", pytest.param("aac", marks=pytest.mark.slow), pytest.param("flac", marks=pytest.mark.slow)])
def test_first_audio_leaves_long_before_the_synthesis_ends(server, fmt):
    arrivals = []  # (seconds since the request, bytes so far)
    received = b""
    t0 = time.perf_counter()
    with httpx.stream("POST", f"{server.url}/v1/audio/speech", timeout=120,
                      json={"input": LONG, "seed": 3, "response_format": fmt}) as resp:
        assert resp.status_code == 200
        for piece in resp.iter_raw():
            received += piece
            arrivals.append((time.perf_counter() - t0, len(received)))
    t_end = arrivals[-1][0]
    early = [n for t, n in arrivals if t < t_end / 2]
    assert early, arrivals[:5]
    samples, rate = decode(received[:early[-1]], fmt)  # what had arrived by half-time already plays
    assert len(samples) / rate > 0.5, (fmt, len(samples), rate, arrivals[:5], t_end)
    assert len(arrivals) > 4  # pieces over the synthesis, not one burst at the end


@pytest.mark.parametrize(("fmt", "rate"), [("mp3", 16_000), ("aac", 44_100), ("flac", 8_000), ("wav", 22_050),
                                           ("pcm", 48_000), ("opus", 48_000), ("mp3", 8_000)])
def test_sample_rate_round_trip(server, reference, fmt, rate):
    resp = httpx.post(f"{server.url}/v1/audio/speech", timeout=120,
                      json={"input": TEXT, "seed": 7, "response_format": fmt, "sample_rate": rate, "stream": False})
    assert resp.status_code == 200, resp.text[:300]
    check_audio(resp.content, fmt, reference[7], rate)
    y, _ = decode(resp.content, fmt, rate)
    assert rms_db(y) > rms_db(reference[7]) - 6.0  # band-limiting keeps most of the speech's energy


@pytest.mark.parametrize(("body", "param"), [
    ({"response_format": "ogg"}, "response_format"),
    ({"response_format": "MP3"}, "response_format"),
    ({"sample_rate": 12_345}, "sample_rate"),
    ({"sample_rate": "24000"}, "sample_rate"),
    ({"response_format": "opus", "sample_rate": 16_000}, "sample_rate"),
    ({"loudness": -80}, "loudness"),
    ({"loudness": 0}, "loudness"),
    ({"loudness": "loud"}, "loudness"),
    ({"trim_silence": "yes"}, "trim_silence"),
])
def test_bad_format_fields_are_400_naming_the_field(server, body, param):
    resp = httpx.post(f"{server.url}/v1/audio/speech", timeout=30, json={"input": TEXT, **body})
    assert_error(resp, 400, param)



@pytest.mark.parametrize(("field", "stage"), [({"trim_silence": True}, "trim"), ({"loudness": -23}, "loudness"),
                                              ({"sample_rate": 16_000}, "resample")])
@pytest.mark.parametrize("stream", [False, True])
def test_post_processing_runs_and_is_timed(server, reference, field, stage, stream):
    resp = httpx.post(f"{server.url}/v1/audio/speech", timeout=120,
                      json={"input": TEXT, "seed": 7, "response_format": "flac", "stream": stream, **field})
    assert resp.status_code == 200, resp.text[:300]
    assert f"{stage};dur=" in resp.headers["server-timing"]
    y, rate = decode(resp.content, "flac")
    expected = round(len(reference[7]) * rate / 24_000)
    if stage == "trim":
        assert 0 < len(y) < expected  # the runtime's audio starts and ends with a pause
    else:
        assert len(y) == expected
    if stage == "loudness":
        from vvbench.core.postprocess import integrated_loudness

        assert abs(integrated_loudness(y.astype(np.float32), rate) - -23) < 1.5


@pytest.mark.parametrize(("fmt", "delay"), [("mp3", "1105"), ("aac", "1024"), ("opus", None), ("flac", None), ("wav", None)])
def test_raw_codec_streams_declare_their_delay_in_a_header(server, fmt, delay):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        resp = c.post("/v1/audio/speech", json={"input": "Hi there.", "seed": 3, "response_format": fmt})
    assert resp.status_code == 200
    assert resp.headers.get("x-codec-delay") == delay
