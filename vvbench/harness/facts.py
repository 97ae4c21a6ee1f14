"""The facts every result records: host, CPU, memory, load average, GPUs and driver, the versions
that shape the figures (Python, torch, Locust, pandas, pyarrow, NVML), and the git SHA of the checkout."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import socket
import subprocess
from pathlib import Path


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def git_facts() -> dict:
    """SHA and dirtiness of the checkout vvbench runs from (None outside a git checkout)."""
    repo = Path(__file__).resolve().parents[2]
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

    from vvbench.monitor import nvml

    gpus = nvml.device_facts()
    return {
        "hostname": socket.gethostname(), "platform": platform.platform(), "python": platform.python_version(),
        "cpu_model": _cpu_model(), "cpu_count": os.cpu_count(), "memory_bytes": psutil.virtual_memory().total,
        "loadavg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "gpus": gpus, "nvml": None if gpus else (nvml.last_error() or "no GPU"),
        "versions": {name: _version(name) for name in ("vvbench", "torch", "locust", "pandas", "pyarrow", "nvidia-ml-py")},
    }
