"""Admission control: an overload burst against a real server; API key, rate limit and memory guard in process."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
from serverkit import assert_error, wav_info

from vvbench.server.settings import MemoryLimit

LONG = "A long request that keeps its slot busy for a good while, sentence after sentence. " * 2


def test_burst_of_15_long_requests_gets_only_200_or_503_with_retry_after(serve_factory):
    server = serve_factory.start("--max-batch", "2", "--max-queue", "2", "--batch-window-ms", "0", name="burst")

    def one(i: int) -> tuple[int, dict, bytes]:
        with httpx.Client(base_url=server.url, timeout=300) as c:
            resp = c.post("/v1/audio/speech", json={"model": "tts-1", "input": LONG, "seed": i, "response_format": "wav"})
            return resp.status_code, dict(resp.headers), resp.content

    with ThreadPoolExecutor(15) as pool:
        results = list(pool.map(one, range(15)))
    statuses = sorted(s for s, _, _ in results)
    assert set(statuses) <= {200, 503}, statuses
    assert statuses.count(200) >= 2 and statuses.count(503) >= 1, statuses
    for status, headers, body in results:
        if status == 503:
            assert int(headers["retry-after"]) >= 1
            err = assert_error(httpx.Response(503, content=body, headers=headers), 503)
            assert err["code"] == "queue_full" and err["type"] == "service_unavailable_error"
        else:
            assert body[:4] == b"RIFF" and int.from_bytes(body[24:28], "little") == 24_000
            assert len(body) > 44 + 2 * 24_000 * 5  # the whole audio, several seconds of it
    stats = server.stats()
    assert stats["service"]["rejections"]["queue_full"] == statuses.count(503)


@pytest.fixture(scope="module")
def keyed(service_factory):
    """The service in process with an API key and a rate limit (the checks are HTTP middleware: no process needed)."""
    return service_factory(api_key="s3cret", rate_limit_rps=0.5, rate_burst=4)


def test_api_key_required_on_api_routes_but_not_on_probes(keyed):
    c = keyed
    err = assert_error(c.get("/v1/voices"), 401)
    assert err["type"] == "authentication_error"
    assert_error(c.get("/v1/voices", headers={"Authorization": "Bearer wrong"}), 401)
    assert_error(c.post("/admin/config", json={"batch_window_ms": 1}), 401)
    assert_error(c.post("/v1/jobs", json={"input": "Hi."}), 401)
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert c.get(path).status_code == 200, path
    audio = openai.OpenAI(base_url="http://testserver/v1", api_key="s3cret", max_retries=0, http_client=c).audio.speech.create(
        model="tts-1", voice="alloy", input="Authorised.", response_format="wav")
    assert wav_info(audio.content)[0] == 24_000
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url="http://testserver/v1", api_key="nope", max_retries=0, http_client=c).audio.speech.create(
            model="tts-1", voice="alloy", input="Not authorised.")


def test_rate_limit_answers_429_with_retry_after(keyed):
    headers = {"Authorization": "Bearer s3cret"}
    statuses = [keyed.get("/v1/voices", headers=headers).status_code for _ in range(8)]
    assert statuses.count(429) >= 3, statuses  # burst of 4 (some used by the test above), then 0.5/s
    resp = keyed.get("/v1/voices", headers=headers)
    err = assert_error(resp, 429)
    assert err["type"] == "rate_limit_error" and int(resp.headers["retry-after"]) >= 1
    assert keyed.get("/healthz").status_code == 200  # probes are not rate limited


def test_memory_guard_refuses_new_work_with_503(service_factory):
    c = service_factory(memory_guard=MemoryLimit(limit_bytes=1_000_000))  # the test process is far over 1 MB
    resp = c.post("/v1/audio/speech", json={"model": "tts-1", "input": "Too much memory in use."})
    err = assert_error(resp, 503)
    assert err["code"] == "memory_guard" and int(resp.headers["retry-after"]) >= 1
    assert c.get("/readyz").status_code == 200
    assert c.get("/v1/stats").json()["service"]["rejections"]["memory_guard"] == 1
