"""Helpers for the load tests: the scripted fake TTS server as a real process, the CLI as a user runs it.

`FakeTTS(*flags)` starts `python -m vvbench.load.fakeserver --port 0 FLAGS` (a stdlib server with
exact timing: slow, pausing, silent-at-first, or dying — see its module docstring), reads its
URL, and stops it by PID. No Locust is ever imported in the test process: load runs go through
`vv("run", ...)`, a subprocess.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import yaml

ANNOUNCE = "fake-tts: listening on "


class FakeTTS:
    """The fake server as a child process (a context manager)."""

    def __init__(self, *flags: str):
        self.flags = list(flags)
        self.proc: subprocess.Popen | None = None
        self.url: str | None = None

    def start(self) -> FakeTTS:
        self.proc = subprocess.Popen([sys.executable, "-m", "vvbench.load.fakeserver", "--port", "0", *self.flags],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith(ANNOUNCE), line
        self.url = line[len(ANNOUNCE):].strip()
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def __enter__(self) -> FakeTTS:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def vv(*args: str, timeout: float = 180, cwd: str | Path | None = None) -> subprocess.CompletedProcess:
    """`vvbench ARGS` in a subprocess, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "vvbench.cli", *args], check=False, capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


def scenario_file(path: Path, **fields) -> Path:
    """Write a small scenario (one short speech class, closed loop of 2) with `fields` overriding."""
    data = {
        "name": "t", "seed": 1,
        "classes": [{"name": "short", "text": {"corpus": "short"}, "length": {"min_chars": 30, "max_chars": 60},
                     "timeout": "20s"}],
        "arrival": {"closed": {"users": 2}}, "warmup": "0s", "duration": "3s", "drain": "10s", "prebuffer_ms": 200,
    }
    data.update(fields)
    path.write_text(yaml.safe_dump(data))
    return path


def one_run_dir(out: Path) -> Path:
    """The single run directory under `out` (no partial ones left)."""
    dirs = [p for p in out.iterdir() if p.is_dir()]
    assert len(dirs) == 1, dirs
    assert not dirs[0].name.startswith("."), dirs
    return dirs[0]


def wait_for(predicate, timeout_s: float = 10.0, every_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every_s)
    return False
