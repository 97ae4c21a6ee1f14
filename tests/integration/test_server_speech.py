"""`POST /v1/audio/speech` against a real server: the openai client, streaming, seeds, timings."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
from serverkit import wav_info

from vvbench.core.audio import STREAMING_SIZE

TEXT = "The quick brown fox jumps over the lazy dog."
LONG = "This sentence is here to make the request long, so it keeps streaming for a while. " * 6


def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=120)


def speech(http: httpx.Client, **body) -> httpx.Response:
    return http.post("/v1/audio/speech", json={"model": "tts-1", "voice": "alloy", **body})


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_openai_client_whole_wav(server):
    audio = client(server).audio.speech.create(model="tts-1", voice="nova", input=TEXT, response_format="wav")
    rate, channels, width, frames = wav_info(audio.content)
    assert (rate, channels, width) == (24_000, 1, 2)
    assert frames > 24_000  # more than a second of audio for a ten-word sentence


def test_openai_client_streaming_pcm_and_wav(server):
    c = client(server)
    with c.audio.speech.with_streaming_response.create(
            model="gpt-4o-mini-tts", voice="onyx", input=TEXT, response_format="pcm", extra_body={"seed": 11}) as resp:
        assert resp.headers["x-seed"] == "11"
        assert "queue;dur=" in resp.headers["server-timing"]
        pcm = b"".join(resp.iter_bytes())
    assert len(pcm) % 2 == 0 and len(pcm) > 2 * 24_000
    with c.audio.speech.with_streaming_response.create(
            model="tts-1", voice="onyx", input=TEXT, response_format="wav", extra_body={"seed": 11}) as resp:
        wav = b"".join(resp.iter_bytes())
    assert wav[:4] == b"RIFF" and int.from_bytes(wav[40:44], "little") == STREAMING_SIZE
    assert int.from_bytes(wav[24:28], "little") == 24_000
    assert wav[44:] == pcm  # same seed, same samples, whatever the container


def test_whole_body_has_exact_length_and_full_server_timing(http):
    resp = speech(http, input=TEXT, seed=3, stream=False, response_format="wav")
    assert resp.status_code == 200
    assert int(resp.headers["content-length"]) == len(resp.content)
    assert wav_info(resp.content)[3] == (len(resp.content) - 44) // 2
    timing = resp.headers["server-timing"]
    for stage in ("queue", "lm", "diffusion", "decode", "total"):
        assert f"{stage};dur=" in timing, timing
    assert resp.headers["x-request-id"].startswith("req_") and resp.headers["x-seed"] == "3"


def test_sse_events_carry_the_same_audio(http):
    whole = speech(http, input=TEXT, seed=5, stream=False, response_format="pcm").content
    events = []
    with http.stream("POST", "/v1/audio/speech", json={"input": TEXT, "seed": 5, "stream_format": "sse",
                                                       "response_format": "pcm"}) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    assert [e["type"] for e in events[:-1]] == ["speech.audio.delta"] * (len(events) - 1)
    assert events[-1]["type"] == "speech.audio.done" and events[-1]["usage"]["output_tokens"] > 0
    assert b"".join(base64.b64decode(e["audio"]) for e in events[:-1]) == whole


TEXTS = ["Short one.", "A somewhat longer sentence, with a comma, and more words.", "Hi!", "Numbers like 1,234 are read.",
         "Speaker 1: Hello there.\nSpeaker 2: Hi, how are you?", "One more.", "The last but one, please.", TEXT]
VOICES = ["alloy", "onyx", "vv-ben", "nova", "echo", "vv-anna", "sage", "alloy"]


def test_same_seed_same_md5_concurrently_and_alone(http, server):
    bodies = [{"input": t, "voice": v, "seed": 100 + i, "stream": False, "response_format": "pcm"}
              for i, (t, v) in enumerate(zip(TEXTS, VOICES))]
    alone = [md5(speech(http, **b).content) for b in bodies]
    before = server.stats()["batch_sizes"]
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda b: md5(speech(http, **b).content), bodies))
    assert together == alone
    after = server.stats()["batch_sizes"]
    grew = {k for k in after if after[k] > before.get(k, 0)}
    assert max(int(k) for k in grew) >= 3, after  # they really shared batches


def test_time_to_first_audio_does_not_grow_with_text_length(http):
    def time_to_first_audio(text: str) -> float:
        t0 = time.perf_counter()
        with http.stream("POST", "/v1/audio/speech", json={"input": text, "seed": 1, "response_format": "pcm"}) as resp:
            assert resp.status_code == 200
            for chunk in resp.iter_bytes():
                if chunk:
                    return time.perf_counter() - t0  # leaving the block disconnects: the rest is cancelled
        raise AssertionError("no audio")

    short = time_to_first_audio("Hello.")
    longest = time_to_first_audio(("A long input of many words. " * 200)[:4000])  # about 4.5 minutes of audio
    assert longest < short + 1.0, (short, longest)


def wait_idle(server, timeout_s: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        stats = server.stats()
        if (stats["active_streams"] == 0 and stats["queue_depth"] == 0) or time.monotonic() > deadline:
            return stats
        time.sleep(0.05)


def test_client_disconnect_frees_the_slot(server):
    host, port = server.url.removeprefix("http://").split(":")
    body = json.dumps({"input": LONG * 3, "seed": 2, "response_format": "pcm"}).encode()
    cancelled_before = wait_idle(server)["requests"].get("cancelled", 0)  # earlier tests' disconnects settle first
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")  # streaming has begun
        assert server.stats()["active_streams"] == 1
    stats = wait_idle(server)
    assert stats["active_streams"] == 0 and stats["service"]["active_http_streams"] == 0
    assert stats["requests"]["cancelled"] == cancelled_before + 1


def test_voices_models_and_stats(http):
    voices = http.get("/v1/voices").json()["data"]
    assert {"id": "alloy", "kind": "openai"} in voices and {"id": "vv-dev", "kind": "runtime"} in voices
    assert http.get("/v1/models").json()["data"][0]["id"] == "tiny"
    stats = http.get("/v1/stats").json()
    for key in ("queue_depth", "active_streams", "batch_sizes", "stage_s", "config", "service"):
        assert key in stats
    assert stats["service"]["ready"] is True and stats["service"]["max_job_streams"] == 2


def test_admin_config_hot_knobs_apply_and_restart_only_are_refused(http):
    resp = http.post("/admin/config", json={"batch_window_ms": 10})
    assert resp.status_code == 200 and resp.json()["config"]["batch_window_ms"] == 10
    assert http.get("/v1/stats").json()["config"]["batch_window_ms"] == 10
    resp = http.post("/admin/config", json={"max_batch": 8, "preset": "small"})
    assert resp.status_code == 400
    err = resp.json()["error"]
    assert err["param"] == "max_batch,preset" and "restart" in err["message"]
    assert http.post("/admin/config", json={"chunk_frames": 0}).status_code == 400
    http.post("/admin/config", json={"batch_window_ms": 20})


def test_metrics_pass_promtool_and_count_requests(http):
    import shutil
    import subprocess

    speech(http, input="Count me.", seed=1, stream=False)
    text = http.get("/metrics").text
    for name in ("vvbench_http_requests_total", "vvbench_speech_ttfa_seconds_bucket", "vvbench_engine_queue_depth",
                 "vvbench_engine_active_streams", "vvbench_engine_batch_size_bucket", "vvbench_engine_stage_seconds_total",
                 "vvbench_audio_delivered_seconds_total", "vvbench_engine_weights_bytes", "process_resident_memory_bytes"):
        assert name in text, name
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (scripts/install.sh test installs it)")
    check = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
