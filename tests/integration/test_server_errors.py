"""Bad input is a 4xx with the OpenAI error shape naming the parameter; nothing a client sends is a 500.

Requests go to the service in process (`app_http`: the app around a real tiny engine); the
bodies that need a real socket (a huge declared or chunked body) go to a real `vvbench serve`.
"""

from __future__ import annotations

import json
import socket

import pytest
from serverkit import assert_error

OK = {"model": "tts-1", "input": "Hello.", "voice": "alloy"}

SPEECH_CASES = [
    ({"input": ""}, "input"),
    ({"input": "   \n\t "}, "input"),
    ({"input": "x " * 2500}, "input"),  # over max_input_chars (4096)
    ({"input": "?!..."}, "input"),  # nothing speakable
    ({"input": 123}, "input"),
    ({"input": None}, "input"),
    ({"voice": "nobody"}, "voice"),
    ({"voice": {"id": "nobody"}}, "voice"),
    ({"voice": 7}, "voice"),
    ({"response_format": "ogg"}, "response_format"),
    ({"response_format": "webm"}, "response_format"),
    ({"sample_rate": 11_025}, "sample_rate"),
    ({"loudness": -4}, "loudness"),
    ({"stream_format": "video"}, "stream_format"),
    ({"speed": 0.1}, "speed"),
    ({"speed": 4.5}, "speed"),
    ({"speed": "fast"}, "speed"),
    ({"speed": "1.0"}, "speed"),
    ({"seed": -1}, "seed"),
    ({"seed": 1.5}, "seed"),
    ({"seed": 2**64}, "seed"),
    ({"stream": "yes"}, "stream"),
    ({"model": ["tts-1"]}, "model"),
    ({"instructions": 5}, "instructions"),
    ({"unknown_field": 1}, "unknown_field"),
]


@pytest.mark.parametrize("patch, param", SPEECH_CASES, ids=[f"{p}-{i}" for i, (_, p) in enumerate(SPEECH_CASES)])
def test_bad_speech_field_is_400_naming_it(app_http, patch, param):
    err = assert_error(app_http.post("/v1/audio/speech", json={**OK, **patch}), 400, param)
    assert err["type"] == "invalid_request_error"


def test_missing_input_names_it(app_http):
    assert_error(app_http.post("/v1/audio/speech", json={"model": "tts-1", "voice": "alloy"}), 400, "input")


def test_unsupported_format_message_lists_the_allowed_ones(app_http):
    err = assert_error(app_http.post("/v1/audio/speech", json={**OK, "response_format": "ogg"}), 400, "response_format")
    assert all(f in err["message"] for f in ("mp3", "opus", "aac", "flac", "wav", "pcm")) and "ogg" in err["message"], err


def test_unknown_field_lists_the_allowed_ones(http):
    err = assert_error(http.post("/v1/audio/speech", json={**OK, "vioce": "alloy"}), 400, "vioce")
    assert err["code"] == "unknown_parameter"
    assert err["message"].startswith("vioce: unknown parameter; allowed: ") and "voice" in err["message"], err


def test_a_bad_value_is_quoted_in_the_message(http):
    err = assert_error(http.post("/v1/audio/speech", json={**OK, "speed": 9.5}), 400, "speed")
    assert "(got 9.5)" in err["message"], err


@pytest.mark.parametrize("raw", [b"{bad json", b"[1, 2]", b"null", b"", b'"text"', b"\xff\xfe"])
def test_malformed_bodies_are_400(app_http, raw):
    resp = app_http.post("/v1/audio/speech", content=raw, headers={"content-type": "application/json"})
    assert_error(resp, 400, "body")


def test_form_body_is_400(app_http):
    assert_error(app_http.post("/v1/audio/speech", data={"input": "hi"}), 400)


def _raw(server, head: bytes, body_parts=(), read=65536) -> bytes:
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head)
        try:
            for part in body_parts:
                sock.sendall(part)
        except OSError:
            pass  # the server stopped reading: that is the point
        data = b""
        while b"\r\n\r\n" not in data or len(data) < data.find(b"\r\n\r\n") + 4 + 50:
            more = sock.recv(read)
            if not more:
                break
            data += more
        return data


def test_huge_declared_body_is_refused_before_it_is_read(server):
    head = (b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 500000000\r\n\r\n")
    reply = _raw(server, head)  # sends no body at all: the answer cannot depend on reading it
    assert reply.startswith(b"HTTP/1.1 413")
    body = json.loads(reply.split(b"\r\n\r\n", 1)[1])
    assert body["error"]["param"] == "body"


def test_huge_chunked_body_is_cut_off(server):
    head = b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    piece = b"a" * 65536
    parts = [b"%x\r\n" % (len(piece) + 10) + b'{"input":"' + piece + b"\r\n"]
    parts += [b"%x\r\n" % len(piece) + piece + b"\r\n"] * 40  # 2.6 MB, over the 1.3 MB limit
    reply = _raw(server, head, parts)
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]


JOB_ID = "job_" + "0" * 32


def test_job_ids_and_chunk_indexes(app_http):
    assert_error(app_http.get("/v1/jobs/not-a-job"), 400, "job_id")
    assert_error(app_http.get("/v1/jobs/job_XYZ"), 400, "job_id")
    assert_error(app_http.get(f"/v1/jobs/{JOB_ID}"), 404, "job_id")
    assert_error(app_http.get(f"/v1/jobs/{JOB_ID}/audio"), 404, "job_id")
    assert_error(app_http.delete(f"/v1/jobs/{JOB_ID}"), 404, "job_id")
    assert_error(app_http.get(f"/v1/jobs/{JOB_ID}/chunks/-1"), 400, "index")
    assert_error(app_http.get(f"/v1/jobs/{JOB_ID}/chunks/abc"), 400, "index")
    assert_error(app_http.get(f"/v1/jobs/{JOB_ID}/chunks/0"), 404, "job_id")
    assert_error(app_http.get("/v1/jobs", params={"limit": 0}), 400, "limit")


def test_bad_job_bodies(app_http):
    assert_error(app_http.post("/v1/jobs", json={"input": "Hi.", "stream": True}), 400, "stream")
    assert_error(app_http.post("/v1/jobs", json={"input": "Hi.", "stream_format": "sse"}), 400, "stream_format")
    assert_error(app_http.post("/v1/jobs", json={"input": "  "}), 400, "input")
    assert_error(app_http.post("/v1/jobs", json={"input": "word " * 40001}), 400, "input")  # over max_job_chars
    assert_error(app_http.post("/v1/jobs", json={"input": "Hi.", "voice": "nobody"}), 400, "voice")


def test_admin_config_bad_bodies(service_factory):
    admin = service_factory(open_admin=True)
    assert_error(admin.post("/admin/config", json=[1, 2]), 400, "body")
    assert_error(admin.post("/admin/config", json={"no_such_knob": 1}), 400, "no_such_knob")
    assert_error(admin.post("/admin/config", json={"max_batch": 2}), 400, "max_batch")
    assert_error(admin.post("/admin/config", json={"batch_window_ms": "soon"}), 400)


def test_unknown_routes_and_methods(app_http):
    assert_error(app_http.get("/v1/nothing-here"), 404)
    resp = app_http.delete("/v1/audio/speech")
    assert_error(resp, 405)
    assert "POST" in resp.headers["allow"]


def test_no_request_in_this_module_got_a_500(app_http):
    text = app_http.get("/metrics").text
    lines = [line for line in text.splitlines() if line.startswith("vvbench_http_requests_total{")]
    assert lines
    assert not [line for line in lines if 'status="5' in line and 'status="503"' not in line], lines
