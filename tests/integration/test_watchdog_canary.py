"""The canary on a real service: clean output never flagged, added noise flagged within two periods.

The same run checks what the watchdog makes visible: the alert hook gets the failure as JSON,
/metrics (bound to loopback) is clean under promtool and carries the canary's state, and systemd
gets READY=1 once the service is ready and WATCHDOG=1 pings from the work loop.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

from tests.integration.watchkit import Watch, serve_cmd

PERIOD_S = 3.0
CLEAN_S = 12.0  # four canaries; test_clean_output_is_never_flagged_over_five_minutes (slow) watches a hundred
CANARY_TEXT = "Hello there, this is the canary."  # about a second of speech: a canary stays shorter than its period
PROMTOOL = shutil.which("promtool")


def scrape(port: int) -> tuple[str, dict[str, float]]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            values[key] = float(value)
    return text, values


class NotifySocket:
    """A systemd-style notify socket, read on a thread as systemd reads it (bounded by `max_s`)."""

    def __init__(self, path: str, max_s: float = 900.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(max_s,), daemon=True)
        self._thread.start()

    def _run(self, max_s: float) -> None:
        deadline = time.monotonic() + max_s
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue

    def close(self) -> list[str]:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()
        return self.messages


def run_clean_then_noisy(tmp_path, clean_s: float, period_s: float = PERIOD_S):
    notify_path = str(tmp_path / "notify.sock")
    notify = NotifySocket(notify_path)
    alerts = tmp_path / "alerts.jsonl"
    hook = f"{sys.executable} -c \"import sys; open('{alerts}', 'a').write(sys.stdin.read())\""
    args = ["--canary-every", f"{period_s}s", "--canary-text", CANARY_TEXT, "--sample-hz", "5", "--metrics-port", "0", "--systemd",
            "--alert-cmd", hook, "--run-for", f"{clean_s + 150:.0f}s"]
    env = {"NOTIFY_SOCKET": notify_path, "WATCHDOG_USEC": "1000000"}
    w = Watch(tmp_path / "watch", args, serve_cmd(tmp_path / "data", "--allow-faults", "--open-admin"), env=env).start()
    try:
        ready = w.wait_event("ready", 150)
        url = ready["url"]  # learned from the service's `listening on` line (it runs on port 0)
        port = w.wait_event("metrics", 5)["port"]
        baseline = w.wait_event("canary_baseline", 60)
        time.sleep(clean_s)
        text, values = scrape(port)
        clean_failures = w.of("canary_failed")
        t_noise = time.time()
        patched = httpx.post(f"{url}/admin/config", json={"faults": {"noise_db": -30}}, timeout=10)
        assert patched.status_code == 200, patched.text
        # the canary in flight when the noise starts may fail on its MD5 alone (noise in its last frames only):
        # the flag that counts is the first one that names the SNR
        failed = w.wait_event("canary_failed", 2 * period_s + 30, where=lambda e: {"snr", "snr_drop"} & set(e["failed"]))
        _, noisy_values = scrape(port)
    finally:
        rc = w.stop()
        messages = notify.close()
    return {"rc": rc, "watch": w, "baseline": baseline, "text": text, "values": values, "clean_failures": clean_failures,
            "t_noise": t_noise, "failed": failed, "noisy": noisy_values, "alerts": alerts, "notify": messages, "ready": ready}


@pytest.fixture(scope="module")
def noisy_run(tmp_path_factory):
    return run_clean_then_noisy(tmp_path_factory.mktemp("canary"), clean_s=CLEAN_S)


def test_clean_output_is_never_flagged(noisy_run):
    r = noisy_run
    assert r["clean_failures"] == [], r["clean_failures"]
    assert r["baseline"]["snr_db"] >= 25
    passed = r["values"]['vvbench_watch_canaries_total{result="passed"}']
    assert passed >= CLEAN_S / PERIOD_S * 0.5, passed  # canaries really ran all along
    assert r["values"]['vvbench_watch_canaries_total{result="failed"}'] == 0


def test_noise_is_flagged_within_two_canary_periods(noisy_run):
    r = noisy_run
    failed = r["failed"]
    assert failed["canary_t"] - r["t_noise"] <= 2 * PERIOD_S, failed
    assert {"snr", "snr_drop"} & set(failed["failed"]), failed
    assert "md5" in failed["failed"]  # the same seed no longer gives the same bits
    assert failed["snr_db"] < r["baseline"]["snr_db"] - 10
    assert r["noisy"]['vvbench_watch_canary_check_passed{check="md5"}'] == 0
    assert r["noisy"]["vvbench_watch_canary_snr_decibels"] == pytest.approx(failed["snr_db"], abs=30)


def test_the_alert_hook_gets_the_failure_as_json(noisy_run):
    kinds = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and "canary_failed" not in kinds:
        text = noisy_run["alerts"].read_text() if noisy_run["alerts"].exists() else ""
        kinds = [json.loads(line)["kind"] for line in text.splitlines() if line.strip()]
        time.sleep(0.2)
    assert "canary_failed" in kinds
    assert "ready" not in kinds  # info events are not alerts


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed")
def test_metrics_are_promtool_clean_and_name_the_service(noisy_run):
    text = noisy_run["text"]
    out = subprocess.run([PROMTOOL, "check", "metrics"], input=text, check=False, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and not out.stdout.strip(), out.stdout
    values = noisy_run["values"]
    assert values["vvbench_monitor_service_up"] == 1
    assert values['vvbench_watch_phase{phase="running"}'] == 1
    assert values["vvbench_monitor_process_resident_memory_bytes"] > 50 * 2**20
    assert re.search(r'vvbench_watch_restarts_total\{reason="memory"\} 0', text)


def test_systemd_ready_then_watchdog_pings_then_stopping(noisy_run):
    msgs = noisy_run["notify"]
    ready = [i for i, m in enumerate(msgs) if m.startswith("READY=1")]
    assert len(ready) == 1 and "STATUS=service ready at http://127.0.0.1:" in msgs[ready[0]], msgs[:5]
    assert msgs.index("STOPPING=1") > ready[0]
    assert sum(m == "WATCHDOG=1" for m in msgs) >= 2 * CLEAN_S  # every 0.5 s over a run of more than CLEAN_S
    assert "STOPPING=1" in msgs
    assert noisy_run["rc"] == 0


@pytest.mark.slow
def test_clean_output_is_never_flagged_over_five_minutes(tmp_path):
    r = run_clean_then_noisy(tmp_path, clean_s=300.0)
    assert r["clean_failures"] == []
    assert r["values"]['vvbench_watch_canaries_total{result="passed"}'] >= 300 / PERIOD_S * 0.5
    assert r["failed"]["canary_t"] - r["t_noise"] <= 2 * PERIOD_S
