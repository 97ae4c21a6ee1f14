"""Helpers shared by the service tests: `vvbench serve` as a real child, audio parsing, the error shape.

`Server` is a `vvbench.core.proc.Child` running `vvbench serve --preset tiny` on loopback (port 0
unless given): `serve()` starts it, reads the URL it announces and waits for `/readyz`; it is
stopped by PID like every child (`stop(grace_s)`; `kill()` then `reap()` is a crash).
"""

from __future__ import annotations

import io
import json
import sys
import time
import urllib.request
import wave
from pathlib import Path

import httpx

from vvbench.core.proc import Child

TINY = ["--preset", "tiny", "--threads", "1"]


def serve_cmd(data_dir: Path, *flags: str, port: int | None = None) -> list[str]:
    """argv of `vvbench serve --preset tiny` on loopback (port 0: it announces the port it got)."""
    return [sys.executable, "-m", "vvbench.cli", "serve", *TINY, "--port", str(0 if port is None else port),
            "--data-dir", str(data_dir), *flags]


class Server(Child):
    """One `vvbench serve` child for a test (see the module docstring)."""

    def __init__(self, log_dir: Path, data_dir: Path, *flags: str, port: int | None = None, env: dict | None = None):
        super().__init__(serve_cmd(data_dir, *flags, port=port), env=env, stdout=Path(log_dir) / "stdout.log",
                         stderr=Path(log_dir) / "stderr.log", name="vvbench serve")
        self.data_dir = Path(data_dir)

    def serve(self, timeout_s: float = 180.0) -> Server:
        """Start, read the announced URL, wait for /readyz 200 (TargetError with the stderr tail if it dies)."""
        deadline = time.monotonic() + timeout_s
        self.start()
        self.wait_ready(f"{self.wait_url(timeout_s)}/readyz", max(1.0, deadline - time.monotonic()))
        return self

    def stats(self) -> dict:
        """GET /v1/stats (no API key)."""
        with urllib.request.urlopen(f"{self.url}/v1/stats", timeout=10) as resp:
            return json.load(resp)


def wav_info(data: bytes) -> tuple[int, int, int, int]:
    """(sample rate, channels, sample width, frames) of a complete WAV."""
    with wave.open(io.BytesIO(data)) as w:
        return w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()


def assert_error(resp: httpx.Response, status: int, param: str | None = "__any__") -> dict:
    """The response is `status` with the OpenAI error shape (naming `param` when given)."""
    assert resp.status_code == status, (resp.status_code, resp.text[:300])
    body = resp.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}, err
    assert isinstance(err["message"], str) and err["message"]
    if param != "__any__":
        assert err["param"] == param, err
    return err
