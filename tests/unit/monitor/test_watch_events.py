"""Events (stderr line, JSONL, alert hook) and systemd notifications, with real sockets and real commands."""

from __future__ import annotations

import json
import os
import socket
import sys
import time

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from vvbench.monitor.exporter import WatchCollector
from vvbench.monitor.watch.events import MAX_PENDING_ALERTS, EventLog
from vvbench.monitor.watch.state import WatchState
from vvbench.monitor.watch.systemd import SystemdNotifier


def wait_for(predicate, timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_every_event_is_a_line_a_record_and_a_count(tmp_path):
    lines: list[str] = []
    log = EventLog(tmp_path / "ev" / "events.jsonl", line_sink=lines.append)
    log.emit("restart", "warning", "restarting (memory): rss over", reason="memory", pid=42)
    log.emit("ready", "info", "ready", pid=43)
    log.close()
    records = [json.loads(x) for x in (tmp_path / "ev" / "events.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in records] == ["restart", "ready"]
    assert records[0]["reason"] == "memory" and records[0]["pid"] == 42 and records[0]["time"].endswith("Z")
    assert len(lines) == 2 and lines[0].startswith("vvbench watch: ") and "warning  restart: restarting (memory)" in lines[0]
    assert log.by_severity["warning"] == 1 and log.by_severity["info"] == 1 and log.last_t is not None
    with pytest.raises(ValueError):
        log.emit("x", "loud", "unknown severity")


def test_alert_command_gets_warning_events_as_json_on_stdin(tmp_path):
    got = tmp_path / "alerts.jsonl"
    hook = [sys.executable, "-c", f"import sys; open({str(got)!r}, 'a').write(sys.stdin.read())"]
    log = EventLog(tmp_path / "events.jsonl", alert_cmd=hook, alert_timeout_s=20)
    log.emit("ready", "info", "not an alert")
    log.emit("canary_failed", "warning", "snr: blind SNR 9 dB", failed=["snr"])
    log.emit("crash_loop", "critical", "giving up")
    log.close(timeout_s=60)
    alerts = [json.loads(x) for x in got.read_text().splitlines()]
    assert [a["kind"] for a in alerts] == ["canary_failed", "crash_loop"]
    assert alerts[0]["failed"] == ["snr"]
    assert log.alerts_sent == 2


def test_a_failing_or_hanging_alert_command_is_reported_not_fatal(tmp_path):
    log = EventLog(tmp_path / "events.jsonl", alert_cmd=[sys.executable, "-c", "import sys; sys.exit(3)"], alert_timeout_s=20)
    log.emit("restart", "warning", "x")
    assert wait_for(lambda: any(json.loads(x)["kind"] == "alert_failed" for x in (tmp_path / "events.jsonl").read_text().splitlines()), 60)
    log.close()
    slow = EventLog(tmp_path / "slow.jsonl", alert_cmd=[sys.executable, "-c", "import time; time.sleep(30)"], alert_timeout_s=0.5)
    t0 = time.monotonic()
    slow.emit("restart", "warning", "x")
    assert time.monotonic() - t0 < 0.5  # emitting never waits for the hook
    assert wait_for(lambda: "took longer than 0.5 s" in (tmp_path / "slow.jsonl").read_text(), 30)
    slow.close()


def test_alerts_beyond_the_queue_are_dropped_counted_and_exported(tmp_path):
    log = EventLog(tmp_path / "events.jsonl", alert_cmd=[sys.executable, "-c", "import time; time.sleep(30)"], alert_timeout_s=0.5)
    try:
        for i in range(MAX_PENDING_ALERTS + 10):
            log.emit("restart", "warning", f"restart {i}")
        assert 9 <= log.alerts_dropped <= 10  # the one the hook is running may have left the queue
        registry = CollectorRegistry()
        registry.register(WatchCollector(WatchState().snapshot, log))
        assert f"vvbench_watch_alerts_dropped_total {float(log.alerts_dropped)}" in generate_latest(registry).decode()
    finally:
        log.close(timeout_s=1)


@pytest.fixture
def notify_socket(tmp_path):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2)
    yield path, sock
    sock.close()


def test_systemd_ready_and_watchdog_pings_at_half_the_interval(notify_socket):
    path, sock = notify_socket
    n = SystemdNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())})
    assert n.active and n.interval_s == 1.0
    n.ready("service ready")
    assert sock.recv(1024) == b"READY=1\nSTATUS=service ready"
    assert n.ping(now=100.0) is True and sock.recv(1024) == b"WATCHDOG=1"
    assert n.ping(now=100.5) is False  # not before half the interval
    assert n.ping(now=101.0) is True and sock.recv(1024) == b"WATCHDOG=1"


def test_systemd_watchdog_is_not_ours_or_not_configured(notify_socket):
    path, _ = notify_socket
    other = SystemdNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"})
    assert other.interval_s is None and other.ping() is False
    off = SystemdNotifier({})
    assert not off.active and off.notify("READY=1") is False


def test_systemd_abstract_socket_and_a_dead_socket():
    name = f"vvbench-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    try:
        SystemdNotifier({"NOTIFY_SOCKET": "@" + name}).ready()
        assert sock.recv(64) == b"READY=1"
    finally:
        sock.close()
    dead = SystemdNotifier({"NOTIFY_SOCKET": "/nonexistent/notify.sock"})
    assert dead.notify("READY=1") is False  # logged once, never raised
