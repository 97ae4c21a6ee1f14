"""Watchdog rules: pure functions from what was recently observed to the actions it calls for.

The `Rule` contract:

- `rule(recent) -> list[Action]`. Pure: no I/O, no clock, no state between calls — the time is
  `recent.now` and every observation carries its own epoch time `t`. The same `Recent` gives the
  same actions, so rules are tested with plain lists of numbers.
- A rule that cannot judge (too few samples, a source that is NA) returns `[]`; NA values
  (None) never count as over a threshold and break a run of consecutive samples.
- The supervisor calls every rule at each tick, acts on the first RESTART in rule order and
  records the rest. `Recent` holds only the current incarnation of the service (observations
  from before a restart are dropped), and memory and health rules see only what came after the
  service became ready: a model loading is not a leak, and a loading service is not unhealthy
  (`StartTimeout` covers a start that never finishes).

Memory limits are absolute bytes, a fraction of the total, or growth over the memory the
incarnation settled at (`+150MB`: a leak detector that needs no knowledge of the model's size);
the supervisor passes that base, its first reading once `memory.settle` has passed since ready,
in `Recent.baseline`.

Warm-up is not a trend. A fresh process grows for its first seconds after ready — allocator
pools, the first batch of each shape, caches, and for a restarted service the requests that
queued up during the restart all finishing at once — and then levels off. Fitted over a short
window, that growth extrapolates to a crossing; the restart that follows warms up the same way,
so the service would be restarted in a loop. Two conditions keep `MemoryTrend` from reading it:

- it judges only samples taken `settle_s` after ready (and the growth base is taken there too,
  so `+150MB` measures growth over the settled memory, not over the memory before warm-up);
- the trend must persist: the fit over the recent half of the window must project the crossing
  within the horizon as well, so a step that has already flattened does not fire.

Either alone falls short: a settle period that outlasts every warm-up on a loaded machine is a
guess, and persistence alone would still count growth limits from before the warm-up and read
two steps close together as a trend.

Judging growth per finished request was the other choice; it needs a request count from the
service, which a server that only speaks `/v1/audio/speech` does not give. The settle period
costs detection time (a leak is caught `settle_s` later, the absolute and fractional thresholds
still apply from ready on), and persistence costs at most the time until the next growth lands
in the recent half of the window.

Memory sources: `rss` is the resident memory of the service's process tree, its fraction taken
of the machine's RAM; `gpu` is the service's own GPU memory (NVML's per-process list) when NVML
reports it, else the memory in use on the GPUs, its fraction taken of their total.
"""

from __future__ import annotations

import enum
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np


class ActionKind(str, enum.Enum):
    """What a rule asks for."""

    RESTART = "restart"


class Phase(str, enum.Enum):
    """Where the supervised service is in its life."""

    STARTING = "starting"
    RUNNING = "running"
    DRAINING = "draining"
    BACKOFF = "backoff"
    RESTARTING = "restarting"  # attach mode: the restart command runs
    STOPPING = "stopping"
    STOPPED = "stopped"
    GAVE_UP = "gave_up"


@dataclass(frozen=True)
class Action:
    """A rule's verdict: restart (or alert), why, and the values it judged."""

    kind: ActionKind
    reason: str
    message: str
    values: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Probe:
    """One health or readiness probe: ok when it answered 200 within the slow line."""

    t: float
    ok: bool
    status: int | None
    latency_s: float
    error: str | None = None
    slow: bool = False


@dataclass(frozen=True)
class Limit:
    """A memory threshold: absolute bytes, a fraction of the total, or growth over the settled memory."""

    bytes: int | None = None
    fraction: float | None = None
    growth_bytes: int | None = None

    def resolve(self, total: float | None, baseline: float | None = None) -> float | None:
        """The threshold in bytes (None when the total, or the settled memory, it needs is unknown)."""
        if self.bytes is not None:
            return float(self.bytes)
        if self.growth_bytes is not None:
            return None if baseline is None else float(baseline) + self.growth_bytes
        if self.fraction is None or not total:
            return None
        return self.fraction * float(total)

    def __str__(self) -> str:
        if self.bytes is not None:
            return f"{self.bytes / 2**20:.0f} MiB"
        if self.growth_bytes is not None:
            return f"+{self.growth_bytes / 2**20:.0f} MiB over the settled memory"
        return f"{self.fraction:.0%}"


@dataclass(frozen=True)
class Recent:
    """What the rules see: the current incarnation's recent observations (see the module docstring)."""

    now: float
    phase: Phase
    samples: Sequence[Mapping] = ()
    probes: Sequence[Probe] = ()
    canary_ok: Sequence[bool] = ()
    exited: bool = False
    exit_code: int | None = None
    started_t: float | None = None
    ready_t: float | None = None
    ram_total_bytes: int | None = None
    baseline: Mapping[str, float] = field(default_factory=dict)  # memory by source once settled (growth limits' base)


def memory_value(row: Mapping, source: str, ram_total_bytes: int | None) -> tuple[float | None, float | None]:
    """(used bytes, total bytes) of `source` in one sample row; None where NA."""
    if source == "rss":
        return row.get("rss_bytes"), ram_total_bytes
    used = row.get("gpu_proc_mem_bytes")
    if used is None:
        used = row.get("gpu_mem_used_bytes")
    return used, row.get("gpu_mem_total_bytes")


def _mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


class Rule(ABC):
    """Base of every rule (see the module docstring for the contract)."""

    name: str = "rule"

    @abstractmethod
    def __call__(self, recent: Recent) -> list[Action]:
        """The actions `recent` calls for (empty when all is well or it cannot judge)."""


class ProcessExited(Rule):
    """The service process ended while it should be running: restart it."""

    name = "exit"

    def __call__(self, recent: Recent) -> list[Action]:
        if not recent.exited or recent.phase not in (Phase.STARTING, Phase.RUNNING):
            return []
        code = recent.exit_code
        how = ("ended (no exit status: not our child, or it never started)" if code is None
               else f"was killed by signal {-code}" if code < 0 else f"exited with code {code}")
        when = "while starting" if recent.phase is Phase.STARTING else "while running"
        return [Action(ActionKind.RESTART, "exit", f"the service {how} {when}", {"exit_code": code})]


@dataclass(frozen=True)
class StartTimeout(Rule):
    """The service did not become ready within `timeout_s` of its start."""

    timeout_s: float
    name = "start_timeout"

    def __call__(self, recent: Recent) -> list[Action]:
        if recent.phase is not Phase.STARTING or recent.started_t is None or recent.exited:
            return []
        waited = recent.now - recent.started_t
        if waited <= self.timeout_s:
            return []
        return [Action(ActionKind.RESTART, "start_timeout", f"not ready {waited:.0f} s after start (limit {self.timeout_s:g} s)",
                       {"waited_s": round(waited, 3)})]


def _ready_samples(recent: Recent) -> list[Mapping]:
    if recent.phase is not Phase.RUNNING or recent.ready_t is None:
        return []
    return [r for r in recent.samples if r.get("t") is not None and r["t"] >= recent.ready_t]


@dataclass(frozen=True)
class MemoryOverThreshold(Rule):
    """`source` memory over `limit` for the last `consecutive` samples."""

    source: str
    limit: Limit
    consecutive: int = 3
    name = "memory"

    def __call__(self, recent: Recent) -> list[Action]:
        rows = _ready_samples(recent)[-self.consecutive:]
        if len(rows) < self.consecutive:
            return []
        values = []
        for row in rows:
            used, total = memory_value(row, self.source, recent.ram_total_bytes)
            limit = self.limit.resolve(total, recent.baseline.get(self.source))
            if used is None or limit is None or used < limit:
                return []
            values.append(float(used))
        step = values[-1] - values[-2] if len(values) > 1 else None
        return [Action(ActionKind.RESTART, "memory",
                       f"{self.source} {_mib(values[-1])} over {_mib(limit)} ({self.limit}) for {self.consecutive} samples",
                       {"source": self.source, "value_bytes": values[-1], "limit_bytes": limit, "step_bytes": step})]


@dataclass(frozen=True)
class MemoryTrend(Rule):
    """Least-squares trend of `source` memory over `window_s` reaching `limit` within `horizon_s`.

    Judged only on samples taken `settle_s` after ready or later, with at least `min_samples` of
    them spanning at least half the window. Fires when the fit over those samples, and the fit
    over their recent half alone, both rise and both reach the limit within the horizon (the
    module docstring says why).
    """

    source: str
    limit: Limit
    window_s: float
    horizon_s: float
    min_samples: int = 10
    settle_s: float = 0.0
    name = "memory_trend"

    def __call__(self, recent: Recent) -> list[Action]:
        if self.horizon_s <= 0 or recent.ready_t is None:
            return []
        since = max(recent.now - self.window_s, recent.ready_t + self.settle_s)
        ts, vs, limit = [], [], None
        for row in _ready_samples(recent):
            if row["t"] < since:
                continue
            used, total = memory_value(row, self.source, recent.ram_total_bytes)
            lim = self.limit.resolve(total, recent.baseline.get(self.source))
            if used is None or lim is None:
                continue
            ts.append(float(row["t"]))
            vs.append(float(used))
            limit = lim
        if len(ts) < max(2, self.min_samples) or ts[-1] - ts[0] < self.window_s / 2:
            return []
        t, v = np.asarray(ts) - ts[-1], np.asarray(vs)
        half = t >= t[0] / 2
        if half.sum() < max(2, self.min_samples // 2):
            return []
        whole, late = _projection(t, v, self.horizon_s), _projection(t[half], v[half], self.horizon_s)
        if whole is None or late is None or whole[2] < limit or late[2] < limit:
            return []
        (slope, intercept, _), late_slope = whole, late[0]
        eta = max(0.0, (limit - intercept) / slope)
        return [Action(ActionKind.RESTART, "memory_trend",
                       f"{self.source} grows {slope / 2**20:.1f} MiB/s ({late_slope / 2**20:.1f} MiB/s over the last "
                       f"{-t[half][0]:.1f} s; now {_mib(intercept)}): reaches {_mib(limit)} ({self.limit}) in {eta:.1f} s, "
                       f"within the {self.horizon_s:g} s horizon",
                       {"source": self.source, "value_bytes": vs[-1], "fitted_bytes": float(intercept), "limit_bytes": limit,
                        "slope_bytes_per_s": float(slope), "recent_slope_bytes_per_s": float(late_slope),
                        "eta_s": round(eta, 3), "step_bytes": vs[-1] - vs[-2]})]


def _projection(t: np.ndarray, v: np.ndarray, horizon_s: float) -> tuple[float, float, float] | None:
    """(slope, fitted value at t = 0, fitted value `horizon_s` later) of a rising least-squares line; None if not rising."""
    slope, intercept = np.polyfit(t, v, 1)
    if not slope > 0 or not math.isfinite(slope):
        return None
    return float(slope), float(intercept), float(intercept + slope * horizon_s)


@dataclass(frozen=True)
class HealthProbeFailures(Rule):
    """The last `failures` health probes since ready all failed (error, non-200, or slower than the slow line)."""

    failures: int = 3
    name = "health"

    def __call__(self, recent: Recent) -> list[Action]:
        if recent.phase is not Phase.RUNNING:
            return []
        probes = [p for p in recent.probes if recent.ready_t is None or p.t >= recent.ready_t][-self.failures:]
        if len(probes) < self.failures or any(p.ok for p in probes):
            return []
        last = probes[-1]
        what = last.error or (f"HTTP {last.status}" + (f" in {last.latency_s:.2f} s (slow)" if last.slow else ""))
        return [Action(ActionKind.RESTART, "health", f"{self.failures} health probes failed in a row (last: {what})",
                       {"failures": self.failures, "last_status": last.status, "last_latency_s": round(last.latency_s, 4)})]


@dataclass(frozen=True)
class CanaryFailures(Rule):
    """The last `consecutive` canaries all failed (off unless configured: a canary failure alerts by itself)."""

    consecutive: int
    name = "canary"

    def __call__(self, recent: Recent) -> list[Action]:
        last = list(recent.canary_ok)[-self.consecutive:]
        if recent.phase is not Phase.RUNNING or len(last) < self.consecutive or any(last):
            return []
        return [Action(ActionKind.RESTART, "canary", f"{self.consecutive} canaries failed in a row", {"failures": self.consecutive})]


RESTART_REASONS = ("exit", "start_timeout", "memory", "memory_trend", "health", "canary")


def evaluate(rules: Sequence[Rule], recent: Recent) -> list[Action]:
    """Every rule's actions, in rule order."""
    out: list[Action] = []
    for rule in rules:
        out.extend(rule(recent))
    return out
