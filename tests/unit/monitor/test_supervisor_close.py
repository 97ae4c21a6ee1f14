"""A watchdog whose own loop fails does not leave its spawned service running unsupervised."""

from __future__ import annotations

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
