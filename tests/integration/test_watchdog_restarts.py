"""Crashes, crash loops and hangs of a real `vvbench serve` under the watchdog."""

from __future__ import annotations

import sys
import threading
import time

import httpx
import pytest

from tests.integration.watchkit import Watch, free_port, serve_cmd

SPEECH = {"model": "t", "input": "A short sentence for the service.", "voice": "alloy", "response_format": "wav",
          "seed": 1, "stream": False}


def speak(url: str, timeout_s: float = 30.0) -> int | None:
    try:
        return httpx.post(f"{url}/v1/audio/speech", json=SPEECH, timeout=timeout_s).status_code
    except httpx.HTTPError:
        return None


def test_crash_after_requests_is_restarted_with_exponential_backoff(tmp_path):
    # the warm-up counts as one finished request: two requests pass, the third admission exits 70.
    # Port 0 and no --url: every start announces its own port, which the watchdog must follow.
    command = serve_cmd(tmp_path / "data", "--allow-faults", "--crash-after-requests", "3")
    args = ["--probe-every", "1s", "--canary-every", "0", "--backoff", "0.5s", "--backoff-max", "10s",
            "--stable", "5m", "--start-timeout", "150s", "--run-for", "200s"]
    w = Watch(tmp_path / "watch", args, command).start()
    try:
        url = w.wait_event("ready", 150)["url"]
        for cycle in (1, 2):
            codes = [speak(url) for _ in range(3)]
            assert codes[:2] == [200, 200] and codes[2] is None, codes
            restart = w.wait_event("restart", 30, count=cycle)
            assert restart["reason"] == "exit" and restart["values"]["exit_code"] == 70
            assert restart["backoff_s"] == pytest.approx(0.5 * 2 ** (cycle - 1))
            url = w.wait_event("ready", 150, count=cycle + 1)["url"]
        assert speak(url) == 200  # served again after the second restart
    finally:
        rc = w.stop()
    exits = [e for e in w.of("exit") if not e["expected"]]
    starts = w.of("start")
    assert [e["exit_code"] for e in exits] == [70, 70]
    assert starts[1]["t"] - exits[0]["t"] >= 0.5 and starts[2]["t"] - exits[1]["t"] >= 1.0  # the backoff was waited
    assert rc == 0


@pytest.mark.parametrize("case", ["exits-1-at-once", "serve-with-an-invalid-flag"])
def test_a_service_that_crashes_at_start_trips_the_crash_loop_guard(tmp_path, case):
    command = ([sys.executable, "-c", "import sys; sys.exit(1)"] if case == "exits-1-at-once"
               else serve_cmd(tmp_path / "data", "--no-such-flag"))
    args = ["--canary-every", "0", "--backoff", "0.1s", "--crash-loop-restarts", "3", "--crash-loop-window", "2m",
            "--run-for", "120s", "--url", f"http://127.0.0.1:{free_port()}"]
    w = Watch(tmp_path / "watch", args, command).start()
    try:
        rc = w.wait(90)
    finally:
        w.stop()
    assert rc == 1, w.tail()
    restarts = w.of("restart")
    assert len(restarts) == 3 and {r["reason"] for r in restarts} == {"exit"}
    assert [r["backoff_s"] for r in restarts] == pytest.approx([0.1, 0.2, 0.4])
    loop = w.of("crash_loop")
    assert len(loop) == 1 and "3 restarts within 120 s" in loop[0]["message"]
    assert w.of("ready") == []
    assert "crash_loop: 3 restarts within 120 s" in w.stderr()  # said on stderr too, one line per event


def test_a_hung_engine_is_caught_by_health_probes_and_restarted(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = serve_cmd(tmp_path / "data", "--allow-faults", "--hang-after-requests", "2", port=port)
    args = ["--url", url, "--probe-every", "0.5s", "--probe-timeout", "1s", "--probe-failures", "3", "--grace", "3s",
            "--canary-every", "0", "--backoff", "0.2s", "--run-for", "200s"]
    w = Watch(tmp_path / "watch", args, command).start()
    try:
        first = w.wait_event("ready", 150)
        assert speak(url) == 200  # the second finished request: the engine hangs after it
        stuck = threading.Thread(target=speak, args=(url, 20.0), daemon=True)
        stuck.start()  # waits in the hung engine, so the drain cannot finish by itself
        restart = w.wait_event("restart", 60)
        assert restart["reason"] == "health" and restart["values"]["last_status"] == 503
        kill = w.wait_event("kill", 30)  # the stuck request outlasts the grace period
        assert kill["t"] - restart["t"] >= 3.0 - 0.3
        again = w.wait_event("ready", 150, count=2)
        assert again["pid"] != first["pid"] and again["reason"] == "health"
        assert speak(url) == 200
        stuck.join(timeout=30)
    finally:
        rc = w.stop()
    assert rc == 0
    assert next(e for e in w.of("exit") if e["pid"] == first["pid"])["exit_code"] == -9


def test_an_engine_whose_steps_fail_is_reported_within_one_probe_period_restarted_and_no_request_hangs(tmp_path):
    # The warm-up and one request finish, then every step raises: after three failed steps the loop stops.
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = serve_cmd(tmp_path / "data", "--allow-faults", "--fail-step-after-requests", "2", "--drain-timeout-s", "60",
                        port=port)
    probe_every_s, probe_timeout_s = 1.0, 1.0
    args = ["--url", url, "--probe-every", f"{probe_every_s}s", "--probe-timeout", f"{probe_timeout_s}s",
            "--probe-failures", "1", "--grace", "60s", "--canary-every", "0", "--backoff", "0.2s", "--run-for", "200s"]
    w = Watch(tmp_path / "watch", args, command).start()
    try:
        first = w.wait_event("ready", 150)
        assert speak(url) == 200
        codes = [speak(url) for _ in range(3)]  # each answered, 500 saying why (none hangs: speak's timeout is 30 s)
        t_dead = time.time()
        assert codes == [500, 500, 500], codes
        t0 = time.monotonic()
        after = speak(url)  # the dead engine, a draining service or a closed port: an answer or a refusal at once
        assert after in (503, None) and time.monotonic() - t0 < 5, after
        restart = w.wait_event("restart", 30)
        assert restart["reason"] == "health" and restart["values"]["last_status"] == 503
        assert restart["t"] - t_dead <= probe_every_s + probe_timeout_s, restart["t"] - t_dead
        gone = w.wait_event("exit", 30, where=lambda e: e["pid"] == first["pid"])
        assert gone["t"] - restart["t"] < 10 and not w.of("kill")  # nothing in flight: no drain to wait out
        again = w.wait_event("ready", 150, count=2)
        assert again["pid"] != first["pid"] and speak(url) == 200
    finally:
        rc = w.stop()
    assert rc == 0


def test_a_watchdog_killed_without_stopping_its_service_takes_the_service_with_it(tmp_path):
    # SIGKILL (or the OOM killer) runs none of the watchdog's drain; the service, in a session of its own, is reached
    # only through its tether, and must not stay behind unsupervised on the port the next watchdog will want. The
    # scripted server follows the tether as `vvbench serve` does (that one is shown in test_target_contract.py)
    import psutil

    w = Watch(tmp_path / "watch", ["--probe-every", "1s", "--canary-every", "0", "--start-timeout", "60s", "--run-for", "200s"],
              [sys.executable, "-m", "vvbench.load.fakeserver"]).start()
    try:
        pid = w.wait_event("ready", 60)["pid"]
        service = psutil.Process(pid)
        w.child.kill()
        assert w.wait(10) == -9
        service.wait(15)
    finally:
        w.stop()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
