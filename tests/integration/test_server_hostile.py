"""Hostile input to the service, case by case, each with the status it must get; the service keeps serving.

In process (the app around the session's real `tiny` engine, `service_factory`): what a request
body, an id, a header or a config value can do shows here without a socket. The cases that need
one (slowloris, a body shorter than its Content-Length, heads h11 parses) are in
test_server_http_limits.py; command lines in tests/e2e/test_cli_hostile.py.
"""

from __future__ import annotations

import pytest
from serverkit import assert_error

from vvbench.core.errors import ConfigError

JSON = {"content-type": "application/json"}
JOB = "job_" + "0" * 32
SPEAK = b'{"input": "hello", "stream": false, "response_format": "wav"}'


@pytest.fixture(autouse=True)
def _engine_config_restored(tiny_engine):
    """Every case starts from, and leaves, the session engine's config as it was."""
    saved = tiny_engine.config
    yield
    tiny_engine.config = saved


@pytest.fixture(scope="module")
def admin(service_factory):
    return service_factory(open_admin=True)


def test_the_attack_sequence_is_refused_and_the_service_keeps_serving(admin):
    # The value that killed the engine: accepted with 200, then the next admission overflowed.
    bad = admin.post("/admin/config", content=b'{"diffusion_steps":{"min":1,"max":10,"per_char":1e308}}', headers=JSON)
    err = assert_error(bad, 400, "diffusion_steps")
    assert "per_char" in err["message"] and "1000" in err["message"]
    assert admin.get("/v1/stats").json()["config"]["diffusion_steps"] is None  # nothing applied
    resp = admin.post("/v1/audio/speech", content=SPEAK, headers=JSON)
    assert resp.status_code == 200 and resp.content[:4] == b"RIFF"
    assert admin.get("/healthz").json()["status"] == "ok"
    assert admin.post("/v1/jobs", json={"input": "hello"}).status_code == 202


# (raw /admin/config body, status, param)
ADMIN_CASES = [
    (b'{"diffusion_steps": {"min": 1, "max": 10, "per_char": 1e308}}', 400, "diffusion_steps"),
    (b'{"diffusion_steps": {"min": 1, "max": 10, "per_char": NaN}}', 400, "diffusion_steps"),
    (b'{"diffusion_steps": {"min": 1, "max": 10}}', 400, "diffusion_steps"),
    (b'{"diffusion_steps": 1001}', 400, "diffusion_steps"),
    (b'{"diffusion_steps": true}', 400, "diffusion_steps"),
    (b'{"threads": 1024}', 400, "threads"),
    (b'{"threads": 0}', 400, "threads"),
    (b'{"request_timeout_s": Infinity}', 400, "request_timeout_s"),
    (b'{"request_timeout_s": NaN}', 400, "request_timeout_s"),
    (b'{"request_timeout_s": 1e9}', 400, "request_timeout_s"),
    (b'{"request_timeout_s": -1}', 400, "request_timeout_s"),
    (b'{"cfg_scale": 1e400}', 400, "cfg_scale"),
    (b'{"cfg_scale": -Infinity}', 400, "cfg_scale"),
    (b'{"batch_window_ms": "5"}', 400, "batch_window_ms"),  # strict, as request bodies are
    (b'{"chunk_frames": "5"}', 400, "chunk_frames"),
    (b'{"chunk_frames": 5.5}', 400, "chunk_frames"),
    (b'{"chunk_frames": true}', 400, "chunk_frames"),
    (b'{"first_chunk_frames": 100000000000000000000}', 400, "first_chunk_frames"),
    (b'{"max_queue": -1}', 400, "max_queue"),
    (b'{"max_queue": 1e9}', 400, "max_queue"),
    (b'{"max_input_chars": 1000000000000}', 400, "max_input_chars"),
    (b'{"empty_cache_every": 1000000000000000000000000000000}', 400, "empty_cache_every"),
    (b'{"cudnn_benchmark": "yes"}', 400, "cudnn_benchmark"),
    (b'{"faults": {"crash_after_requests": 1}}', 403, "faults"),
    (b'{"faults": {"hang_after_requests": 1}}', 403, "faults"),
    (b'{"faults": {"leak_mb_per_request": 65536}}', 403, "faults"),
    (b'{"faults": {"fail_step_after_requests": 1}}', 403, "faults"),
    (b'{"faults": {"noise_db": -30}}', 403, "faults"),
    (b'{"faults": {}}', 403, "faults"),
    (b'{"max_batch": 8}', 400, "max_batch"),
    (b'{"preset": "small"}', 400, "preset"),
    (b'{"offload": {"lm": "cpu"}}', 400, "offload"),
    (b'{"nope": 1}', 400, "nope"),
    (b'[1, 2]', 400, "body"),
    (b'"text"', 400, "body"),
    (b'{', 400, "body"),
    (b'{}', 200, None),
    (b'{"batch_window_ms": 7}', 200, None),
]


@pytest.mark.parametrize("raw, status, param", ADMIN_CASES, ids=[c[0].decode()[:50] for c in ADMIN_CASES])
def test_admin_config_values(admin, raw, status, param):
    resp = admin.post("/admin/config", content=raw, headers=JSON)
    if status == 200:
        assert resp.status_code == 200, resp.text
    else:
        err = assert_error(resp, status, param)
        if status == 403:
            assert "--allow-faults" in err["message"] and err["code"] == "faults_disabled"
    assert admin.get("/healthz").status_code == 200


def test_admin_is_off_on_a_service_without_a_key(service_factory):
    closed = service_factory()
    err = assert_error(closed.post("/admin/config", json={"batch_window_ms": 5}), 403, None)
    assert err["code"] == "admin_disabled" and "--api-key" in err["message"] and "--open-admin" in err["message"]
    assert closed.get("/v1/stats").status_code == 200  # /v1 stays open without a key


@pytest.mark.parametrize("authorization, status", [(None, 401), ("Bearer wrong", 401), ("Bearer", 401), ("Basic azN5", 401),
                                                   ("Bearer k3y ", 200), ("Bearer k3y", 200)])
def test_admin_with_a_key(service_factory, authorization, status):
    keyed = service_factory(api_key="k3y")
    headers = {"authorization": authorization} if authorization else {}
    resp = keyed.post("/admin/config", json={"batch_window_ms": 5}, headers=headers)
    if status == 200:
        assert resp.status_code == 200, resp.text
        # the key opens admin, not the fault knobs
        faults = keyed.post("/admin/config", json={"faults": {"noise_db": -30}}, headers=headers)
        assert "--allow-faults" in assert_error(faults, 403, "faults")["message"]
    else:
        assert_error(resp, status)


def test_fault_knobs_apply_where_they_are_allowed(service_factory, tiny_engine):
    allowed = service_factory(open_admin=True, allow_faults=True)
    assert allowed.post("/admin/config", json={"faults": {"noise_db": -30}}).status_code == 200
    assert tiny_engine.config.faults.noise_db == -30  # reset by the autouse fixture


def test_fault_knobs_at_start_up_need_the_flag(tmp_path):
    from vvbench.runtime.config import RuntimeConfig
    from vvbench.server.app import create_app
    from vvbench.server.settings import ServiceSettings

    config = RuntimeConfig(preset="tiny", faults={"crash_after_requests": 3})
    with pytest.raises(ConfigError, match=r"faults.crash_after_requests: .*--allow-faults"):
        create_app(config, settings=ServiceSettings(data_dir=tmp_path))
    create_app(config, settings=ServiceSettings(data_dir=tmp_path, allow_faults=True))  # builds; nothing starts


# (path, raw POST body, status it must get, the error's param)
BODY_CASES = [
    ("/v1/audio/speech", b'{"input": "\xff\xfe hello"}', 400, "body"),  # invalid UTF-8
    ("/v1/audio/speech", b"[" * 100_000 + b"]" * 100_000, 400, "body"),  # deep nesting
    ("/v1/audio/speech", b'{"input":' * 5_000 + b'"x"' + b"}" * 5_000, 400, "body"),
    ("/v1/jobs", b'{"input": "\xc3\x28"}', 400, "body"),
    ("/v1/jobs", b"[" * 100_000, 400, "body"),
    ("/v1/audio/speech", b'{"input": "\\ud800 lone surrogate"}', 400, "input"),
    ("/v1/jobs", b'{"input": "\\ud800 lone surrogate"}', 400, "input"),
    ("/v1/audio/speech", b'{"input": "\\u0000\\u0001"}', 400, "input"),
    ("/v1/audio/speech", b'{"input": "hi", "speed": NaN}', 400, "speed"),
    ("/v1/audio/speech", b'{"input": "hi", "speed": Infinity}', 400, "speed"),
    ("/v1/audio/speech", b'{"input": "hi", "speed": 1e400}', 400, "speed"),
    ("/v1/audio/speech", b'{"input": "hi", "seed": 1e400}', 400, "seed"),
    ("/v1/audio/speech", b'{"input": "hi", "seed": 100000000000000000000000000000}', 400, "seed"),
    ("/v1/jobs", b'{"input": "hi", "seed": -1}', 400, "seed"),
    ("/v1/audio/speech", b'{"input": {"text": "hi"}}', 400, "input"),
    ("/v1/audio/speech", b'{"input": "hi", "voice": {"id": "alloy", "x": 1}}', 400, "voice"),
    ("/v1/audio/speech", b'{"input": "hi", "voice": "../../etc/passwd"}', 400, "voice"),
    ("/v1/audio/speech", b'{"input": "hi", "model": "' + b"m" * 300 + b'"}', 400, "model"),
    ("/v1/audio/speech", b"", 400, "body"),
    ("/v1/audio/speech", b"null", 400, "body"),
    ("/v1/jobs", b'{"input": "hi", "stream": true}', 400, "stream"),
]


@pytest.mark.parametrize("path, raw, status, param", BODY_CASES, ids=[f"{c[0]}:{c[1][:40]!r}" for c in BODY_CASES])
def test_bad_bodies(admin, path, raw, status, param):
    assert_error(admin.post(path, content=raw, headers=JSON), status, param)


ID_CASES = [
    ("/v1/jobs/not-a-job", 400, "job_id"),
    ("/v1/jobs/" + JOB.upper(), 400, "job_id"),
    ("/v1/jobs/" + "j" * 10_000, 400, "job_id"),
    ("/v1/jobs/job_%00", 400, "job_id"),
    ("/v1/jobs/job_%C3%BF", 400, "job_id"),
    ("/v1/jobs/..%2F..%2Fetc%2Fpasswd", 404, None),
    ("/v1/jobs/" + JOB, 404, "job_id"),
    (f"/v1/jobs/{JOB}/chunks/99999999999999999999999", 400, "index"),
    (f"/v1/jobs/{JOB}/chunks/1e3", 400, "index"),
    (f"/v1/jobs/{JOB}/chunks/-1", 400, "index"),
    (f"/v1/jobs/{JOB}/audio", 404, "job_id"),
    ("/v1/jobs?limit=99999999999999999999", 400, "limit"),
    ("/v1/jobs?limit=abc", 400, "limit"),
]


@pytest.mark.parametrize("path, status, param", ID_CASES, ids=[c[0][:60] for c in ID_CASES])
def test_bad_ids(admin, path, status, param):
    assert_error(admin.get(path), status, param)
    if path.count("/") == 3 and "?" not in path:  # /v1/jobs/{id}: DELETE reads the id the same way
        assert_error(admin.delete(path), status, param)


HEADER_CASES = [
    ("get", "/v1/stats", {"x-padding": "a" * 70_000}, 431, "headers"),
    ("get", "/healthz", {f"x-h{i}": "b" * 200 for i in range(100)}, 431, "headers"),
    ("post", "/v1/audio/speech", {**JSON, "transfer-encoding": "chunked", "content-length": "34"}, 400, "headers"),
    ("post", "/v1/audio/speech", {**JSON, "content-length": "abc"}, 400, "body"),
    ("post", "/v1/audio/speech", {**JSON, "content-length": "-1"}, 400, "body"),
    ("post", "/v1/audio/speech", {**JSON, "content-length": "999999999999"}, 413, "body"),
    ("get", "/v1/stats/", {"host": "evil.example"}, 404, None),  # no trailing-slash redirect to the Host
    ("get", "/healthz/", {"host": "evil.example"}, 404, None),
]


@pytest.mark.parametrize("method, path, headers, status, param", HEADER_CASES,
                         ids=[f"{c[0]} {c[1]} {sorted(c[2])[-1]}" for c in HEADER_CASES])
def test_bad_headers(admin, method, path, headers, status, param):
    resp = admin.request(method.upper(), path, headers=headers, content=SPEAK if method == "post" else None)
    assert_error(resp, status, param)
    assert "location" not in resp.headers


def test_nothing_here_got_an_unexpected_500(admin):
    lines = [line for line in admin.get("/metrics").text.splitlines() if line.startswith("vvbench_http_requests_total{")]
    assert lines and not [line for line in lines if 'status="500"' in line], lines  # 503s: /readyz while loading
