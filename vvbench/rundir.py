"""The run directory (DESIGN.md section 10): built aside, every file atomic, then renamed into place.

`runs/<UTC time>-<scenario>-<id>/` holds `run.json`, `requests.parquet`, `samples.parquet`,
`events.jsonl`, `locust/`, `summary.md`, `report.html`, and `target/` (an embedded or command
target's stdout/stderr). While the run goes, it lives in `runs/.<name>.partial/` (with the load
processes' scratch space in `.work/`); `finalize()` removes the scratch and renames the
directory, so a finished run directory is never half-written. A run that fails after its
directory exists is still finalized (with `status` saying why), keeping the rows it recorded.

Also here: the facts every result records (host, CPU, memory, load average, GPUs and driver,
Python, torch and Locust versions, git SHA of the checkout).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import shutil
import socket
import subprocess
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

SCHEMA_VERSION = 1


class RunDir:
    """A run directory being written (see the module docstring)."""

    def __init__(self, out_root: str | Path, scenario: str):
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        self.run_id = uuid.uuid4().hex[:6]
        self.name = f"{stamp}-{scenario}-{self.run_id}"
        self.root = Path(out_root)
        self.final = self.root / self.name
        self.path = self.root / f".{self.name}.partial"
        self.path.mkdir(parents=True)
        self.work = self.path / ".work"
        self._events = open(self.path / "events.jsonl", "a", buffering=1)

    def event(self, event: str, /, **data) -> None:
        """Append one event (epoch time, name, details) to events.jsonl."""
        if not self._events.closed:
            self._events.write(json.dumps({"t": time.time(), "event": event, **data}, default=str) + "\n")

    def write_text(self, name: str, text: str) -> Path:
        path = self.path / name
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        return path

    def write_json(self, name: str, data: dict) -> Path:
        return self.write_text(name, json.dumps(data, indent=2, default=str, allow_nan=False))

    def adopt(self, src: Path, name: str) -> None:
        """Move a directory produced elsewhere (Locust's CSV) into the run directory."""
        if src.is_dir():
            dest = self.path / name
            dest.mkdir(exist_ok=True)
            for f in src.iterdir():
                os.replace(f, dest / f.name)

    def discard(self) -> None:
        """Remove the directory of a run that never started."""
        self._events.close()
        shutil.rmtree(self.path, ignore_errors=True)

    def finalize(self) -> Path:
        """Drop the scratch space and rename the directory into place."""
        self._events.close()
        shutil.rmtree(self.work, ignore_errors=True)
        os.replace(self.path, self.final)
        return self.final


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def git_facts() -> dict:
    """SHA and dirtiness of the checkout vvbench runs from (None outside a git checkout)."""
    repo = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], check=False, cwd=repo, capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return {"sha": None, "dirty": None}
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], check=False, cwd=repo,
                               capture_output=True, text=True, timeout=10)
        return {"sha": sha.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"sha": None, "dirty": None}


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None)
    except OSError:
        return platform.processor() or None


def host_facts() -> dict:
    """Host, CPU, memory, load, GPUs, and the versions that shape the figures."""
    import psutil

    from monitor import nvml

    gpus = nvml.device_facts()
    return {
        "hostname": socket.gethostname(), "platform": platform.platform(), "python": platform.python_version(),
        "cpu_model": _cpu_model(), "cpu_count": os.cpu_count(), "memory_bytes": psutil.virtual_memory().total,
        "loadavg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "gpus": gpus, "nvml": None if gpus else (nvml.last_error() or "no GPU"),
        "versions": {name: _version(name) for name in ("vvbench", "torch", "locust", "pandas", "pyarrow", "nvidia-ml-py")},
    }
