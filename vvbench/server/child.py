"""`vvbench serve` as a child process: start it, learn its URL, wait until ready, stop it by PID.

Used by the integration tests and the benchmarks (and meant for the `embedded` target). The
child binds port 0 and announces `vvbench serve: listening on URL` on stdout; its stdout and
stderr go to files (never an unread pipe that could fill and block it). Stopping sends SIGTERM to
that PID — never a signal by process name — waits for the graceful drain, then SIGKILLs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from vvbench.core.errors import TargetError

LISTENING = "vvbench serve: listening on "


def http_status(url: str, timeout_s: float = 2.0) -> int | None:
    """Status code of a GET (None when nothing answers)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return None


class ServerChild:
    """One `vvbench serve` child process (see the module docstring)."""

    def __init__(self, args: list[str], *, env: dict[str, str] | None = None, log_dir: str | Path | None = None):
        self.args = list(args)
        self.env = {**os.environ, **(env or {})}
        self.log_dir = Path(log_dir or tempfile.mkdtemp(prefix="vvbench-serve-"))
        self.proc: subprocess.Popen | None = None
        self.url: str | None = None
        self.returncode: int | None = None

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise TargetError("server not started")
        return self.proc.pid

    def start(self, timeout_s: float = 180.0, wait_ready: bool = True) -> str:
        """Start the child, parse its URL, and (by default) wait for /readyz; returns the URL."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        out = self.log_dir / "stdout.log"
        err = self.log_dir / "stderr.log"
        cmd = [sys.executable, "-m", "vvbench.cli", "serve", "--port", "0", *self.args]
        with open(out, "wb") as fo, open(err, "ab") as fe:
            self.proc = subprocess.Popen(cmd, stdout=fo, stderr=fe, stdin=subprocess.DEVNULL, env=self.env)
        deadline = time.monotonic() + timeout_s
        while self.url is None:
            for line in out.read_text(errors="replace").splitlines():
                if line.startswith(LISTENING):
                    self.url = line[len(LISTENING):].strip()
            self._check_alive("before announcing its address")
            if time.monotonic() > deadline:
                self.kill()
                raise TargetError(f"server did not announce its address within {timeout_s:g} s; log: {err}")
            time.sleep(0.05)
        if wait_ready:
            self.wait_ready(max(1.0, deadline - time.monotonic()))
        return self.url

    def wait_ready(self, timeout_s: float = 180.0) -> None:
        """Poll /readyz until 200 (TargetError if the child dies or the time runs out)."""
        deadline = time.monotonic() + timeout_s
        while http_status(f"{self.url}/readyz") != 200:
            self._check_alive("while loading")
            if time.monotonic() > deadline:
                raise TargetError(f"server at {self.url} not ready within {timeout_s:g} s; log: {self.log_dir / 'stderr.log'}")
            time.sleep(0.1)

    def _check_alive(self, when: str) -> None:
        rc = self.proc.poll() if self.proc else None
        if rc is not None:
            self.returncode = rc
            raise TargetError(f"server exited with code {rc} {when}: {self.stderr_tail()}")

    def stderr_tail(self, lines: int = 20) -> str:
        path = self.log_dir / "stderr.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stats(self) -> dict:
        """GET /v1/stats (no API key)."""
        with urllib.request.urlopen(f"{self.url}/v1/stats", timeout=10) as resp:
            return json.load(resp)

    def stop(self, timeout_s: float = 60.0) -> int:
        """SIGTERM this PID, wait for the drain, SIGKILL if it takes longer; returns the exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.returncode = self.proc.returncode
        return self.returncode

    def kill(self) -> int:
        """SIGKILL this PID (a crash, as `kill -9` would do)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.returncode = self.proc.returncode if self.proc else None
        return self.returncode

    def __enter__(self) -> ServerChild:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
