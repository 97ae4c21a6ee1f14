"""Samplers: one reading of a source per call, NA when the source is missing, never an exception.

The `Sampler` contract (shared by `vvbench run` and the watchdog):

- `columns` names every key `sample()` returns; the keys are the same at every call.
- `sample()` never raises. A missing, dead or failing source yields NA (None) for its columns;
  the first failure of each kind is logged once and kept in `notes` (so a report can say "no
  GPU" once, not at every tick).
- Values are plain numbers in base units (bytes, shares 0..1, percent of one core for CPU).
- One thread calls `sample()` (samplers are not thread-safe); it must stay cheap at 20 Hz.
- `close()` releases what the sampler holds; calling it twice is harmless.

Here: the service's process tree (psutil: RSS, CPU), the system CPU (idle and iowait shares),
the host's CPU used by everything else (`HostOtherCpuSampler`), and the service's own `/v1/stats` (queue depth, active streams, cache and allocator bytes).
NVML lives in `vvbench.monitor.nvml`.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod

import psutil

from vvbench.artifacts.stats import SAMPLED, ServiceStats

log = logging.getLogger("vvbench.monitor")


class Sampler(ABC):
    """Base of every sampler (see the module docstring for the contract)."""

    columns: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.notes: list[str] = []

    @abstractmethod
    def read(self) -> dict:
        """Read the source; may raise (sample() turns any exception into NA)."""

    def sample(self) -> dict:
        try:
            values = self.read()
        except Exception as exc:  # noqa: BLE001 - the contract: never raise, say it once
            self.note(f"{type(self).__name__}: {type(exc).__name__}: {exc}")
            values = {}
        return {c: values.get(c) for c in self.columns}

    def note(self, message: str, level: int = logging.INFO) -> None:
        """Log a problem the first time it happens (and keep it in `notes`)."""
        if message not in self.notes:
            self.notes.append(message)
            log.log(level, "%s", message)

    def close(self) -> None:  # noqa: B027 - a default no-op: most samplers hold nothing
        pass


def tree_pids(pid: int) -> set[int]:
    """`pid` and all its descendants now (just `pid` when it is gone or unreadable)."""
    try:
        return {pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))}
    except psutil.Error:
        return {pid}


class ProcessTreeSampler(Sampler):
    """RSS and CPU of a process and all its descendants (the tree is re-listed every `refresh_s`)."""

    columns = ("rss_bytes", "cpu_percent", "procs")

    def __init__(self, pid: int | None, refresh_s: float = 1.0):
        super().__init__()
        self.pid = pid
        self.refresh_s = refresh_s
        self._tree: dict[int, psutil.Process] = {}
        self._listed = 0.0

    def _refresh(self) -> None:
        root = psutil.Process(self.pid)
        procs = [root, *root.children(recursive=True)]
        known = self._tree
        self._tree = {p.pid: known.get(p.pid, p) for p in procs}
        for p in self._tree.values():
            if p.pid not in known:
                p.cpu_percent(None)  # prime: the first reading of a process is meaningless
        self._listed = time.monotonic()

    def read(self) -> dict:
        if self.pid is None:
            return {}
        if time.monotonic() - self._listed >= self.refresh_s or not self._tree:
            try:
                self._refresh()
            except psutil.NoSuchProcess:
                self.note(f"service process {self.pid} is gone")
                self._tree = {}
                return {}
        rss, cpu, alive = 0, 0.0, 0
        for p in list(self._tree.values()):
            try:
                with p.oneshot():
                    rss += p.memory_info().rss
                    cpu += p.cpu_percent(None)
                alive += 1
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                self._tree.pop(p.pid, None)
        return {"rss_bytes": rss, "cpu_percent": cpu, "procs": alive} if alive else {}


class SystemCpuSampler(Sampler):
    """System-wide CPU idle and iowait shares (0..1) since the previous sample."""

    columns = ("sys_cpu_idle", "sys_cpu_iowait")

    def __init__(self) -> None:
        super().__init__()
        psutil.cpu_times_percent(None)  # prime

    def read(self) -> dict:
        t = psutil.cpu_times_percent(None)
        iowait = getattr(t, "iowait", None)
        return {"sys_cpu_idle": t.idle / 100.0, "sys_cpu_iowait": None if iowait is None else iowait / 100.0}


class HostOtherCpuSampler(Sampler):
    """CPU cores the host spent on processes that are not the run's, since the previous sample.

    `host_other_cpu` = (the system's busy CPU time, hypervisor steal included, minus the CPU time
    of "our" processes: this process and its descendants — the load generator, an embedded
    service — and each of `pids` with its descendants) / wall time. It is what other work on the
    machine took while the run measured: 0 on a quiet host. A process of ours that started and
    ended between two samples counts as other work (rare: our processes live for the whole run).
    """

    columns = ("host_other_cpu",)

    def __init__(self, pids: list[int | None] | None = None, refresh_s: float = 1.0) -> None:
        super().__init__()
        self.roots = [os.getpid(), *(p for p in pids or () if p)]
        self.refresh_s = refresh_s
        self._procs: dict[int, psutil.Process] = {}
        self._listed = 0.0
        self._last: tuple[float, float, dict[int, float]] = (time.monotonic(), self._busy(), self._ours())

    @staticmethod
    def _busy() -> float:
        t = psutil.cpu_times()
        idle = t.idle + getattr(t, "iowait", 0.0)
        guest = getattr(t, "guest", 0.0) + getattr(t, "guest_nice", 0.0)  # Linux counts these inside user and nice too
        return sum(t) - idle - guest

    def _ours(self) -> dict[int, float]:
        if time.monotonic() - self._listed >= self.refresh_s or not self._procs:
            found: dict[int, psutil.Process] = {}
            for root in self.roots:
                try:
                    proc = self._procs.get(root) or psutil.Process(root)
                    for p in (proc, *proc.children(recursive=True)):
                        found.setdefault(p.pid, self._procs.get(p.pid, p))
                except psutil.Error:
                    continue
            self._procs, self._listed = found, time.monotonic()
        times = {}
        for pid, p in list(self._procs.items()):
            try:
                c = p.cpu_times()
                times[pid] = c.user + c.system
            except psutil.Error:
                self._procs.pop(pid, None)
        return times

    def read(self) -> dict:
        now, busy, ours = time.monotonic(), self._busy(), self._ours()
        t0, busy0, ours0 = self._last
        self._last = (now, busy, ours)
        if now - t0 <= 0:
            return {}
        # a process first seen now counts whole only when it started after the previous sample (its time is all
        # in this interval); one that was there but not yet listed is left out of this one interval
        mine = 0.0
        for pid, used in ours.items():
            if pid in ours0:
                mine += max(0.0, used - ours0[pid])
            else:
                try:
                    if self._procs[pid].create_time() >= time.time() - (now - t0):
                        mine += used
                except (psutil.Error, KeyError):
                    pass
        return {"host_other_cpu": max(0.0, (busy - busy0) - mine) / (now - t0)}


class ServiceStatsSampler(Sampler):
    """The service's `GET /v1/stats`, read through the shared `ServiceStats` model (other servers' missing keys are NA)."""

    columns = SAMPLED

    def __init__(self, base_url: str | None, api_key: str | None = None, timeout_s: float = 1.0):
        super().__init__()
        self.url = f"{base_url.rstrip('/')}/v1/stats" if base_url else None
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.timeout_s = timeout_s

    def read(self) -> dict:
        if self.url is None:
            return {}
        try:
            with urllib.request.urlopen(urllib.request.Request(self.url, headers=self.headers), timeout=self.timeout_s) as r:
                data = json.load(r)
        except urllib.error.HTTPError as exc:
            self.note(f"{self.url} answered HTTP {exc.code}: service stats are NA")
            return {}
        except (OSError, ValueError) as exc:
            self.note(f"{self.url} unreadable ({type(exc).__name__}): service stats are NA while it is")
            return {}
        return ServiceStats.read(data).sample()
