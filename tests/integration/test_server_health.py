"""Health and readiness against real servers: the hang and step faults turn /healthz to 503; OpenAPI is complete."""

from __future__ import annotations

import time

import httpx
from serverkit import assert_error


def test_healthz_turns_503_when_the_engine_hangs_and_waiting_requests_time_out(serve_factory):
    # The warm-up request is the first finished request; the hang starts after the second.
    server = serve_factory.start("--allow-faults", "--hang-after-requests", "2", "--request-timeout-s", "4", "--max-batch", "2", name="hang")
    with httpx.Client(base_url=server.url, timeout=60) as c:
        assert c.get("/healthz").status_code == 200
        assert c.post("/v1/audio/speech", json={"input": "Last.", "stream": False}).status_code == 200
        deadline = time.monotonic() + 5
        while c.get("/healthz").status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        resp = c.get("/healthz")
        assert resp.status_code == 503 and "hung" in resp.json()["detail"]
        assert "vvbench_engine_hung 1.0" in c.get("/metrics").text
        stuck = c.post("/v1/audio/speech", json={"input": "Nobody will say this."})  # waits, then times out
        err = assert_error(stuck, 503)
        assert err["code"] == "request_timeout" and int(stuck.headers["retry-after"]) >= 1


def test_a_failing_engine_answers_every_request_says_so_at_once_and_sigterm_does_not_wait_out_the_drain(serve_factory):
    # The warm-up and one request finish; then every step raises: three failed steps in a row stop the loop.
    server = serve_factory.start("--allow-faults", "--fail-step-after-requests", "2", "--drain-timeout-s", "60",
                                 "--max-batch", "2", name="failstep")
    with httpx.Client(base_url=server.url, timeout=30) as c:  # a request that hung would time out here
        assert c.post("/v1/audio/speech", json={"input": "Fine.", "stream": False}).status_code == 200
        for i in range(3):
            err = assert_error(c.post("/v1/audio/speech", json={"input": f"Fails {i}.", "stream": i % 2 == 0}), 500)
            assert err["code"] == "synthesis_failed" and "InjectedFault" in err["message"], err
            assert c.get("/healthz").status_code == (200 if i < 2 else 503)  # one failed request does not end the loop
        health = c.get("/healthz").json()
        assert "steps failed in a row" in health["detail"], health
        assert c.get("/readyz").status_code == 503
        for path, body in (("/v1/audio/speech", {"input": "After."}), ("/v1/jobs", {"input": "After."})):
            err = assert_error(c.post(path, json=body), 503)
            assert err["code"] == "engine_unavailable" and "needs a restart" in err["message"]
    t0 = time.monotonic()
    server.terminate()
    code = server.reap(30)
    assert code == 0 and time.monotonic() - t0 < 10, (code, time.monotonic() - t0)  # the drain limit is 60 s


def test_readyz_and_healthz_on_a_ready_server(app_http):
    assert app_http.get("/readyz").json() == {"status": "ready", "detail": None}
    assert app_http.get("/healthz").json()["status"] == "ok"


def test_openapi_describes_every_endpoint_and_the_error_shape(app_http):
    spec = app_http.get("/openapi.json").json()
    paths = spec["paths"]
    for path, method in [("/v1/audio/speech", "post"), ("/v1/jobs", "post"), ("/v1/jobs", "get"), ("/v1/jobs/{job_id}", "get"),
                         ("/v1/jobs/{job_id}", "delete"), ("/v1/jobs/{job_id}/chunks/{index}", "get"),
                         ("/v1/jobs/{job_id}/audio", "get"), ("/healthz", "get"), ("/readyz", "get"), ("/metrics", "get"),
                         ("/v1/stats", "get"), ("/admin/config", "post"), ("/v1/voices", "get")]:
        assert method in paths[path], (path, method)
        responses = paths[path][method]["responses"]
        assert "422" not in responses
    speech = paths["/v1/audio/speech"]["post"]["responses"]
    for status in ("400", "413", "429", "503"):
        assert speech[status]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
    detail = spec["components"]["schemas"]["ErrorDetail"]["properties"]
    assert set(detail) == {"message", "type", "param", "code"}
