"""Helpers for the load tests: the scripted fake TTS server as a real process, the CLI as a user runs it.

`FakeTTS(*flags)` starts `python -m vvbench.load.fakeserver --port 0 FLAGS` (a stdlib server with
exact timing: slow, pausing, silent-at-first, or dying — see its module docstring) as a
`vvbench.core.proc.Child`, reads the URL it announces, and stops it by PID. No Locust is ever
imported in the test process: load runs go through `vv("run", ...)`, a subprocess.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from vvbench.core.proc import Child


class FakeTTS(Child):
    """The fake server as a child process (a context manager); its output in a temp directory."""

    def __init__(self, *flags: str):
        self.log_dir = Path(tempfile.mkdtemp(prefix="fake-tts-"))
        super().__init__([sys.executable, "-m", "vvbench.load.fakeserver", "--port", "0", *flags],
                         stdout=self.log_dir / "stdout.log", stderr=self.log_dir / "stderr.log", name="fake-tts")

    def start(self) -> FakeTTS:
        super().start().wait_url(30)
        return self

    def stop(self, grace_s: float = 10.0) -> int | None:
        code = super().stop(grace_s)
        shutil.rmtree(self.log_dir, ignore_errors=True)
        return code


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
