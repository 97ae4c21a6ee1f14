"""The supervisor's own loop: an error in it takes the spawned service down; its backoff counts from the recorded exit."""

from __future__ import annotations

import json
import sys
import time

import psutil
import pytest

from vvbench.monitor.watch.config import load_watch_config
from vvbench.monitor.watch.events import EventLog
from vvbench.monitor.watch.supervisor import Supervisor


def test_an_error_in_the_loop_takes_the_spawned_service_down(tmp_path):
    cfg = load_watch_config(None, {"command": [sys.executable, "-c", "import time; time.sleep(60)"],
                                   "url": "http://127.0.0.1:9", "canary.every": "0"})
    sup = Supervisor(cfg, EventLog(tmp_path / "events.jsonl"))
    started = []

    def failing_tick(now: float) -> None:
        started.append(sup.service.pid)
        raise OSError(28, "No space left on device")  # e.g. the events file's disk is full

    sup.tick = failing_tick
    t0 = time.monotonic()
    with pytest.raises(OSError):
        sup.run()
    assert time.monotonic() - t0 < 30
    assert started and not psutil.pid_exists(started[0])


def test_the_backoff_is_waited_from_the_exit_as_recorded_not_from_the_ticks_start(tmp_path):
    # A tick reads the clock, then samples, reads its inbox and polls the service before it records the exit: on a
    # busy host that takes a while, and a backoff counted from the tick's clock started the next service that much
    # sooner after the recorded exit than the backoff says (0.992 s after it, with a 1 s backoff, in a suite run).
    cfg = load_watch_config(None, {"command": [sys.executable, "-c", "raise SystemExit(3)"], "canary.every": "0",
                                   "restart.backoff": "1s"})
    events = tmp_path / "events.jsonl"
    sup = Supervisor(cfg, EventLog(events))
    try:
        sup._start(time.time())
        deadline = time.monotonic() + 30
        while sup.service.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        sup.tick(time.time() - 0.5)  # the tick's clock, read half a second before it gets to the exit
        exit_t = next(e["t"] for e in map(json.loads, events.read_text().splitlines()) if e["kind"] == "exit")
        assert sup.backoff_until >= exit_t + 1.0
    finally:
        sup.service.stop(5)
