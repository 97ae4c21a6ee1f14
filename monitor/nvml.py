"""GPU memory and utilisation through NVML (`nvidia-ml-py`, imported as `pynvml`).

Every NVML call goes through `nvml()`: it returns the call's value, or `NA` when the library is
missing, NVML cannot start (no driver: `NVMLError_LibraryNotFound`), or the call is not
supported or fails (`pynvml.NVMLError`). `NvmlSampler` turns NA into None, and says "no GPU"
once (in its `notes` and the log) instead of at every tick.

Columns: device count, memory in use and total over all devices (`used` from `nvmlDeviceGetMemoryInfo`:
occupancy, not the utilisation's `memory` field, which is time spent accessing memory), mean
GPU utilisation in percent, and the memory held by the service's processes (NVML's per-process
list; PIDs are host PIDs, so inside a container this may stay NA).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from vvbench.monitor.samplers import Sampler, tree_pids

log = logging.getLogger("vvbench.monitor")


class _NotAvailable:
    """The value of a failed or unsupported NVML read."""

    def __repr__(self) -> str:
        return "N/A"

    def __bool__(self) -> bool:
        return False


NA: Any = _NotAvailable()

try:
    import pynvml as _pynvml
except ImportError:  # pragma: no cover - a dependency, but degrade rather than crash
    _pynvml = None

_state = {"init": None, "error": None}  # init: None unknown, True ok, False failed


def nvml(name: str, *args: Any) -> Any:
    """The one door to NVML: `pynvml.<name>(*args)`, or NA on any NVML error."""
    if _pynvml is None:
        _state["error"] = "nvidia-ml-py is not installed"
        return NA
    try:
        return getattr(_pynvml, name)(*args)
    except _pynvml.NVMLError as exc:
        _state["error"] = f"{name}: {exc}"
        return NA


def available() -> bool:
    """Initialise NVML once; False (and the reason in `last_error()`) when there is no GPU to read."""
    if _state["init"] is None:
        _state["init"] = nvml("nvmlInit") is not NA
    return bool(_state["init"])


def last_error() -> str | None:
    return _state["error"]


def device_facts() -> list[dict]:
    """Name, total memory and driver of each GPU (empty without NVML), for run.json's host facts."""
    if not available():
        return []
    driver = nvml("nvmlSystemGetDriverVersion")
    out = []
    for i in range(nvml("nvmlDeviceGetCount") or 0):
        h = nvml("nvmlDeviceGetHandleByIndex", i)
        mem = nvml("nvmlDeviceGetMemoryInfo", h) if h is not NA else NA
        name = nvml("nvmlDeviceGetName", h) if h is not NA else NA
        out.append({"index": i, "name": None if name is NA else str(name),
                    "memory_total_bytes": None if mem is NA else int(mem.total),
                    "driver": None if driver is NA else str(driver)})
    return out


@dataclass
class DeviceReading:
    """One GPU now: memory in use and total, utilisation (0..1), and the memory of the asked-for PIDs.

    Fields are None where NVML could not read them; `processes` maps PID -> bytes for the PIDs
    that NVML lists on this device (host PIDs: inside a container it may stay empty).
    """

    index: int
    name: str | None
    memory_used_bytes: int | None
    memory_total_bytes: int | None
    utilization_ratio: float | None
    processes: dict[int, int] = field(default_factory=dict)


def read_devices(pids: Iterable[int] | None = None) -> list[DeviceReading]:
    """Every GPU's readings now, per device (empty without NVML); for the exporter at scrape time."""
    if not available():
        return []
    wanted = set(pids or ())
    out = []
    for i in range(nvml("nvmlDeviceGetCount") or 0):
        h = nvml("nvmlDeviceGetHandleByIndex", i)
        if h is NA:
            continue
        name, mem, util = nvml("nvmlDeviceGetName", h), nvml("nvmlDeviceGetMemoryInfo", h), nvml("nvmlDeviceGetUtilizationRates", h)
        procs: dict[int, int] = {}
        if wanted:
            for p in nvml("nvmlDeviceGetComputeRunningProcesses", h) or ():
                if p.pid in wanted and p.usedGpuMemory is not None:
                    procs[int(p.pid)] = procs.get(int(p.pid), 0) + int(p.usedGpuMemory)
        out.append(DeviceReading(
            index=i, name=None if name is NA else str(name),
            memory_used_bytes=None if mem is NA else int(mem.used), memory_total_bytes=None if mem is NA else int(mem.total),
            utilization_ratio=None if util is NA else float(util.gpu) / 100.0, processes=procs))
    return out


class NvmlSampler(Sampler):
    """GPU memory and utilisation over all devices, and the memory held by a process and its descendants."""

    columns = ("gpu_count", "gpu_mem_used_bytes", "gpu_mem_total_bytes", "gpu_util_pct", "gpu_proc_mem_bytes")

    def __init__(self, pid: int | None = None, refresh_s: float = 1.0):
        super().__init__()
        self.pid = pid
        self.refresh_s = refresh_s  # the process tree is re-listed at most this often
        self._pids: set[int] = set()
        self._listed = -float("inf")

    def _tree(self) -> set[int]:
        if self.pid is not None and time.monotonic() - self._listed >= self.refresh_s:
            self._pids, self._listed = tree_pids(self.pid), time.monotonic()
        return self._pids

    def read(self) -> dict:
        if not available():
            self.note(f"no GPU: NVML not available ({last_error()}); GPU columns are NA", level=logging.INFO)
            return {}
        devices = read_devices(self._tree())
        if not devices:
            self.note("no GPU: NVML found no devices; GPU columns are NA", level=logging.INFO)
            return {}
        used = [d.memory_used_bytes for d in devices if d.memory_used_bytes is not None]
        total = [d.memory_total_bytes for d in devices if d.memory_total_bytes is not None]
        utils = [d.utilization_ratio for d in devices if d.utilization_ratio is not None]
        procs = [b for d in devices for b in d.processes.values()]
        return {"gpu_count": len(devices), "gpu_mem_used_bytes": sum(used) if total else None,
                "gpu_mem_total_bytes": sum(total) or None, "gpu_util_pct": 100.0 * sum(utils) / len(utils) if utils else None,
                "gpu_proc_mem_bytes": sum(procs) if procs else None}
