"""Helpers for the watchdog tests: `vvbench watch` as a real child process, its events, and a load generator.

`Watch` runs `python -m vvbench.cli watch --events FILE ARGS -- COMMAND` as a
`vvbench.core.proc.Child` with its stdout and stderr in files, reads the JSONL events as they are
written, and stops the watchdog by PID (SIGTERM, which drains the service). Every service PID the
watchdog reported is checked at cleanup and killed by that PID if it outlived the watchdog — a
test never leaves a process behind (the service has its own session, out of the watchdog's group).
`Load` sends `POST /v1/audio/speech` requests from a few threads, bounded in count and time.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil

from tests.integration.serverkit import serve_cmd
from vvbench.core.net import free_port
from vvbench.core.proc import Child


class WatchFailed(AssertionError):
    """The watchdog did not do what the test waited for (its stderr tail is in the message)."""


class Watch:
    """One `vvbench watch` child (see the module docstring)."""

    def __init__(self, tmp: Path, args: list[str], command: list[str] | None = None, env: dict | None = None):
        self.tmp = Path(tmp)
        self.events_path = self.tmp / "events.jsonl"
        argv = [sys.executable, "-m", "vvbench.cli", "watch", "--events", str(self.events_path), *args]
        self.child = Child(argv + (["--", *command] if command else []), env=env, stdout=self.tmp / "watch.stdout",
                           stderr=self.tmp / "watch.stderr", name="vvbench watch")

    def start(self) -> Watch:
        self.child.start()
        return self

    def events(self) -> list[dict]:
        if not self.events_path.exists():
            return []
        lines = self.events_path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip().endswith("}")]

    def of(self, kind: str) -> list[dict]:
        return [e for e in self.events() if e["kind"] == kind]

    def stderr(self) -> str:
        path = self.child.stderr_path
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_event(self, kind: str, timeout_s: float, count: int = 1, where=None) -> dict:
        """The `count`-th event of `kind` (matching `where`), waiting at most `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while True:
            code = self.child.poll()  # read before the events: an exit's last events are on disk by then
            found = [e for e in self.of(kind) if where is None or where(e)]
            if len(found) >= count:
                return found[count - 1]
            if code is not None:
                raise WatchFailed(f"watchdog exited ({code}) before {count} {kind} event(s):\n{self.tail()}")
            if time.monotonic() > deadline:
                raise WatchFailed(f"no {count} {kind} event(s) within {timeout_s:g} s:\n{self.tail()}")
            time.sleep(0.1)

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.stderr().splitlines()[-lines:])

    def service_pids(self) -> set[int]:
        return {e["pid"] for e in self.events() if e["kind"] in ("start", "attach") and e.get("pid")}

    def wait(self, timeout_s: float) -> int:
        code = self.child.reap(timeout_s)
        if code is None:
            raise WatchFailed(f"watchdog still running after {timeout_s:g} s:\n{self.tail()}")
        return code

    def stop(self, timeout_s: float = 60.0) -> int | None:
        """SIGTERM the watchdog (it drains its service) and wait; then make sure no service PID survived."""
        rc = self.child.stop(grace_s=timeout_s)
        for pid in self.service_pids():
            try:
                p = psutil.Process(pid)
                if p.cmdline()[:1] == [sys.executable] and p.status() != psutil.STATUS_ZOMBIE:
                    p.kill()
            except psutil.Error:
                pass
        return rc


class Load:
    """`workers` threads each sending speech requests (stream false) until stopped or `max_requests`."""

    def __init__(self, url: str, workers: int = 2, text: str = "Load keeps the engine busy while the watchdog watches.",
                 max_requests: int = 2000, max_s: float = 300.0):
        self.url, self.text = url.rstrip("/"), text
        self.max_requests, self.deadline = max_requests, time.monotonic() + max_s
        self.ok = self.failed = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(workers)]

    def _run(self, worker: int) -> None:
        with httpx.Client(timeout=30) as client:
            n = 0
            while not self._stop.is_set() and time.monotonic() < self.deadline:
                with self._lock:
                    if self.ok + self.failed >= self.max_requests:
                        return
                body = {"model": "load", "input": self.text, "voice": "alloy", "response_format": "wav",
                        "seed": worker * 100_000 + n, "stream": False}
                n += 1
                try:
                    good = client.post(f"{self.url}/v1/audio/speech", json=body).status_code == 200
                except httpx.HTTPError:
                    good = False
                with self._lock:
                    self.ok += good
                    self.failed += not good
                if not good:
                    self._stop.wait(0.2)  # refused while restarting: do not spin

    def start(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=40)


__all__ = ["Load", "Watch", "WatchFailed", "free_port", "serve_cmd"]
