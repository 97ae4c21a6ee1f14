"""Events: everything the watchdog does, as one stderr line, one JSONL record, and an optional alert hook.

An event is a flat JSON object: `t` (epoch seconds), `time` (UTC ISO 8601), `kind`, `severity`
(`info`, `warning`, `error`, `critical`), `message`, and the kind's own fields (`pid`, `reason`,
`exit_code`, ...). Each one is

- written as one line to the line sink (the CLI passes stderr):
  `vvbench watch: 2026-11-22T02:40:01Z warning canary_failed: snr: blind SNR 12.3 dB ...`;
- appended to the JSONL file, flushed at once (a crash loses no event);
- counted for the metrics (`vvbench_watch_events_total{severity}`, last event time);
- for severity warning and above, given to `--alert-cmd` as JSON on its stdin.

The alert command runs without a shell, one at a time on its own thread (a slow hook never stalls
the watchdog's loop), bounded by `alert_timeout_s`; at most `MAX_PENDING_ALERTS` wait, the
oldest ones beyond that are dropped and counted. A hook that fails or times out is reported as an
`alert_failed` event, which is not itself sent to the hook.
"""

from __future__ import annotations

import json
import logging
import subprocess
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from vvbench.core.errors import ConfigError

log = logging.getLogger("vvbench.watch")

SEVERITIES = ("info", "warning", "error", "critical")
MAX_PENDING_ALERTS = 100


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class EventLog:
    """Emits events to the line sink, the JSONL file and the alert hook; counts them."""

    def __init__(self, path: str | Path | None = None, line_sink: Callable[[str], None] | None = None,
                 alert_cmd: list[str] | None = None, alert_timeout_s: float = 10.0, prefix: str = "vvbench watch"):
        self.path = Path(path) if path else None
        self.line_sink = line_sink
        self.alert_cmd = list(alert_cmd) if alert_cmd else None
        self.alert_timeout_s = alert_timeout_s
        self.prefix = prefix
        self.by_severity: Counter = Counter({s: 0 for s in SEVERITIES})
        self.last_t: float | None = None
        self.alerts_sent = 0
        self.alerts_dropped = 0
        self._lock = threading.Lock()
        self._file = None
        if self.path is not None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - held for the watchdog's life
            except OSError as exc:
                raise ConfigError(f"--events {self.path}: cannot open for appending: {exc.strerror or exc}") from None
        self._pending: deque = deque()
        self._wake = threading.Condition(self._lock)
        self._closing = False
        self._worker: threading.Thread | None = None
        if self.alert_cmd:
            self._worker = threading.Thread(target=self._alert_loop, name="vvbench-alerts", daemon=True)
            self._worker.start()

    def emit(self, kind: str, severity: str, message: str, **fields) -> dict:
        """Record one event (see the module docstring); returns it."""
        if severity not in SEVERITIES:
            raise ValueError(f"unknown severity {severity!r}")
        t = time.time()
        event = {"t": round(t, 6), "time": _iso(t), "kind": kind, "severity": severity, "message": message, **fields}
        line = json.dumps(event, default=str, separators=(",", ":"))
        with self._lock:
            self.by_severity[severity] += 1
            self.last_t = t
            if self._file is not None:
                self._file.write(line + "\n")
                self._file.flush()
            if self.alert_cmd and severity != "info" and kind != "alert_failed" and not self._closing:
                if len(self._pending) >= MAX_PENDING_ALERTS:
                    self._pending.popleft()
                    self.alerts_dropped += 1
                self._pending.append(line)
                self._wake.notify()
        if self.line_sink is not None:
            self.line_sink(f"{self.prefix}: {event['time']} {severity:<8} {kind}: {message}")
        log.debug("event %s", line)
        return event

    def _alert_loop(self) -> None:
        while True:
            with self._lock:
                while not self._pending and not self._closing:
                    self._wake.wait(1.0)
                if not self._pending:
                    return
                line = self._pending.popleft()
            self._run_hook(line)

    def _run_hook(self, line: str) -> None:
        try:
            done = subprocess.run(self.alert_cmd, input=line + "\n", text=True, capture_output=True,
                                  timeout=self.alert_timeout_s, check=False)
        except subprocess.TimeoutExpired:
            self.emit("alert_failed", "warning", f"alert command took longer than {self.alert_timeout_s:g} s and was killed")
            return
        except OSError as exc:
            self.emit("alert_failed", "warning", f"alert command could not run: {exc.strerror or exc}")
            return
        if done.returncode != 0:
            tail = " ".join(done.stderr.split())[-200:]
            self.emit("alert_failed", "warning", f"alert command exited with code {done.returncode}: {tail}",
                      exit_code=done.returncode)
            return
        with self._lock:
            self.alerts_sent += 1

    def close(self, timeout_s: float = 15.0) -> None:
        """Let pending alerts run (bounded by `timeout_s`), then close the file."""
        with self._lock:
            self._closing = True
            self._wake.notify()
        if self._worker is not None:
            self._worker.join(timeout=timeout_s)
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
