"""A leaking service under load: restarted before its RSS passes the threshold, ready again, and no job lost."""

from __future__ import annotations

import itertools
import threading
import time

import httpx
import psutil
import pytest

from tests.integration.watchkit import Load, Watch, free_port, serve_cmd
from vvbench.core.audio import decode_wav

LEAK_MB = 20
# No memory rule can fire before --memory-settle (10 s after ready) has passed, and the trend then needs about
# 1.5 s of growth, so the job must outlast about 12 s beside the two leaking clients to be running when the restart
# begins. 14 sentences (1,190 characters, 8 chunks) once finished in 9.8 s on an idle 2-core machine, 1.8 s before
# the restart; 28 take about twice that.
JOB_TEXT = " ".join(["The watchdog restarts a leaking service, and this long job must survive the restart."] * 28)


class RssTrace:
    """RSS of one PID at 10 Hz, read independently of the watchdog, until the process is gone."""

    def __init__(self, pid: int, max_s: float = 300.0):
        self.pid, self.values = pid, []
        self._thread = threading.Thread(target=self._run, args=(max_s,), daemon=True)
        self._thread.start()

    def _run(self, max_s: float) -> None:
        try:
            proc = psutil.Process(self.pid)
            deadline = time.monotonic() + max_s
            while time.monotonic() < deadline and proc.status() != psutil.STATUS_ZOMBIE:
                self.values.append(proc.memory_info().rss)
                time.sleep(0.1)
        except psutil.Error:
            pass

    def join(self) -> list[int]:
        self._thread.join(timeout=60)
        return self.values


def test_leak_under_load_is_restarted_in_time_and_a_job_survives(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = serve_cmd(tmp_path / "data", "--allow-faults", "--leak-mb-per-request", str(LEAK_MB), "--max-batch", "2", port=port)
    # The trend horizon covers the drain: requests in flight at SIGTERM (at most the two clients') still
    # finish, and each leaks 20 MB; 6 s of growth exceeds that down to 3.5 MB/s, a heavily loaded machine's rate.
    # The settle period covers the warm-up: once ready again, the two requests queued during the restart finish
    # and leak within about 5 s (within 9 s on a loaded machine), then the RSS is flat; judged from
    # ready, a 3 s trend read that as a leak and restarted the healthy service.
    args = ["--url", url, "--sample-hz", "10", "--rss-max", "+150MB", "--consecutive", "1", "--trend-window", "3s",
            "--trend-horizon", "6s", "--memory-settle", "10s", "--probe-every", "1s", "--canary-every", "0", "--grace", "20s",
            "--backoff", "0.5s", "--run-for", "200s"]
    w = Watch(tmp_path / "watch", args, command).start()
    http = httpx.Client(base_url=url, timeout=30)
    try:
        first = w.wait_event("ready", 150)
        trace = RssTrace(first["pid"])
        created = http.post("/v1/jobs", json={"input": JOB_TEXT, "voice": "alloy", "seed": 7})
        assert created.status_code == 202, created.text
        job_id = created.json()["id"]
        load = Load(url, workers=2).start()
        try:
            deadline = time.monotonic() + 120
            while not w.of("restart") and time.monotonic() < deadline:  # the job's state until the restart begins
                state_before_restart = http.get(f"/v1/jobs/{job_id}").json()["state"]
                time.sleep(0.2)
            restart = w.wait_event("restart", 5)
            again = w.wait_event("ready", 150, count=2)
        finally:
            load.stop()
        assert http.get("/readyz").status_code == 200
        deadline = time.monotonic() + 150
        while (status := http.get(f"/v1/jobs/{job_id}").json())["state"] != "done" and time.monotonic() < deadline:
            assert status["state"] in ("queued", "running"), status
            assert len(w.of("restart")) == 1, f"restarted again once ready:\n{w.tail()}"
            time.sleep(0.5)
        assert status["state"] == "done", status
        audio, rate = decode_wav(http.get(f"/v1/jobs/{job_id}/audio").content)
    finally:
        http.close()
        rc = w.stop()
    rss = trace.join()

    assert restart["reason"] in ("memory", "memory_trend"), restart
    assert state_before_restart in ("queued", "running"), "the job must be unfinished when the restart begins"
    assert again["pid"] != first["pid"] and again["recovery_s"] > 0
    assert load.ok > 0
    # the threshold: the settled memory (the rule's own base, 10 s after ready) + 150 MB; one sample's growth: the
    # largest rise between two consecutive 10 Hz readings of the old process, measured here
    limit = restart["values"]["limit_bytes"]
    steps = [b - a for a, b in itertools.pairwise(rss)]
    one_sample = max(max(steps), LEAK_MB * 2**20)
    assert len(rss) > 10
    assert max(rss) <= limit + one_sample, (max(rss) - limit, one_sample)
    assert len(audio) / rate == pytest.approx(status["expected_audio_s"], abs=0.2)
    assert rc == 0, w.tail()  # stopped by SIGTERM: drained its service, exit 0
