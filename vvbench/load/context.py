"""What one load process knows and does, without Locust: the plan, the schedule, the rows.

`LoadPlan` is what `vvbench run` hands to its load processes (a JSON file; a Locust master sends
it to remote workers in a message). `LoadContext` holds a worker's share of the work — the
open-loop arrivals or the closed-loop request indexes —, executes one request through
`vvbench.load.client`, builds its row and counts it. The Locust users (`vvbench.load.users`) are
thin wrappers around it, so everything here is tested without gevent.

Timeline: `start_at` (epoch) is time 0; requests whose *scheduled* start (open loop) or actual
start (closed loop) falls before `start_at + warmup_s` are warm-up rows; no new request starts
after `start_at + window_s`; in-flight ones get `drain_s` more.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from vvbench.artifacts.metrics import metric
from vvbench.artifacts.scenarios import Scenario
from vvbench.load import client, jobs
from vvbench.load.arrivals import default_pool, schedule, worker_share
from vvbench.load.mix import RequestMix, RequestSpec
from vvbench.load.records import RowRecorder, build_row

LIVE_METRIC = metric("ttfa_p95_s")  # the one figure the live view shows while a run goes


class LoadPlan(BaseModel):
    """Everything a load process needs (written by `vvbench run`)."""

    model_config = ConfigDict(extra="forbid")
    scenario: Scenario = Field(description="the resolved scenario")
    base_url: str = Field(description="target base URL, e.g. http://127.0.0.1:8000")
    api_key: str | None = Field(None, description="Bearer key for the target")
    start_at: float | None = Field(None, description="epoch time 0 of the run (None: when the load process is ready)")
    workers: int = Field(1, ge=1, description="load processes sharing the work")
    clock: Literal["auto", "read"] = Field("auto", description="auto: the kernel's arrival stamps where the platform "
                                           "gives them, else read times; read: always the read time")


def users_needed(plan: LoadPlan, workers: int) -> int:
    """Locust users for the whole run: closed-loop users, or the open-loop pool of every worker."""
    arrival = plan.scenario.arrival
    if not arrival.open_loop:
        return arrival.closed.users
    longest = max(c.timeout for c in plan.scenario.classes)
    return default_pool(arrival, longest, workers) * workers


class LoadContext:
    """One worker's share of a run (see the module docstring)."""

    def __init__(self, plan: LoadPlan, worker_index: int, rows_dir: str | Path, worker_name: str | None = None):
        self.plan = plan
        self.scenario = plan.scenario
        self.index = worker_index
        self.workers = plan.workers
        self.name = worker_name or f"w{worker_index}"
        self.mix = RequestMix(self.scenario)
        self.recorder = RowRecorder(rows_dir, self.name)
        self.start_at = plan.start_at or time.time()
        arrival = self.scenario.arrival
        if arrival.open_loop:
            offsets = schedule(arrival, self.scenario.window_s, self.scenario.seed)
            self.arrivals = deque(worker_share(offsets, worker_index, self.workers))
            self.offered = len(self.arrivals)
        else:
            self.arrivals = deque()
            self.offered = 0
        self.pool = users_needed(plan, self.workers) // (self.workers if arrival.open_loop else 1)
        self._next_closed = worker_index
        self.in_flight = 0
        self.waiting = 0  # open loop: arrivals taken by a user who sleeps until their time
        self.started = 0
        self.done = 0
        self.failed = 0
        self._ttfa: list[float] = []
        self.stopping = False

    # -- the timeline ---------------------------------------------------------------------
    @property
    def window_end(self) -> float:
        return self.start_at + self.scenario.window_s

    @property
    def drain_end(self) -> float:
        return self.window_end + (self.scenario.drain or 0.0)

    def accepting(self, now: float | None = None) -> bool:
        """May a new request start now?"""
        return not self.stopping and (now or time.time()) < self.window_end

    def finished(self, now: float | None = None) -> bool:
        """Nothing left to send and nothing in flight (or the drain time is over)."""
        now = now or time.time()
        busy = self.in_flight or self.waiting
        idle = not busy and (not self.accepting(now) or (self.scenario.arrival.open_loop and not self.arrivals))
        return idle or now >= self.drain_end

    # -- what users call ------------------------------------------------------------------
    def next_arrival(self) -> tuple[RequestSpec, float] | None:
        """Open loop: the next (spec, scheduled epoch time), or None when the schedule is done."""
        if not self.arrivals or self.stopping:
            return None
        index, offset = self.arrivals.popleft()
        self.waiting += 1
        return self.mix.spec(index), self.start_at + offset

    def next_closed(self) -> RequestSpec:
        """Closed loop: this worker's next request (indexes w, w + n, ... so they never collide)."""
        index = self._next_closed
        self._next_closed += self.workers
        return self.mix.spec(index)

    def begin(self) -> None:
        self.in_flight += 1
        self.started += 1

    def session(self) -> client.Session:
        """A user's connection to the target, with the plan's clock."""
        return client.Session(self.plan.base_url, self.plan.api_key, kernel_stamps=self.plan.clock == "auto")

    def off_loop(self, session: client.Session, spec: RequestSpec) -> bool:
        """Must this request run on a thread of its own? (speech over the wire blocks its thread.)"""
        return spec.api != "job" and session.uses_wire

    def execute(self, session: client.Session, spec: RequestSpec, t_scheduled: float | None = None,
                call: Callable[[Callable[[], dict]], dict] | None = None) -> dict:
        """Send one request, record its row, return it (the caller fires Locust's event).

        `call(fn)` runs `fn` (the request and the building of its row, which touch nothing
        shared) where the caller wants it — the Locust users pass a thread pool's `apply`;
        by default it runs here. Counting and keeping the row happen here, on the caller's thread.
        """
        self.begin()
        if t_scheduled is not None:
            self.waiting -= 1
        try:
            def measure() -> dict:
                sender = jobs.job if spec.api == "job" else client.speech
                return self.row(spec, sender(session, spec, self.scenario.pcm_sample_rate), t_scheduled)
            row = call(measure) if call is not None else measure()
        finally:
            self.in_flight -= 1
        return self.keep(row)

    def row(self, spec: RequestSpec, out: client.Outcome, t_scheduled: float | None) -> dict:
        """The row of a finished (or cancelled) request: warm-up marked, playback model applied."""
        t_ref = t_scheduled if t_scheduled is not None else out.t_start
        warmup = t_ref < self.start_at + self.scenario.warmup
        return build_row(spec, out, worker=self.name, prebuffer_ms=self.scenario.prebuffer_ms,
                         warmup=warmup, t_scheduled=t_scheduled)

    def record(self, spec: RequestSpec, out: client.Outcome, t_scheduled: float | None) -> dict:
        """Build, keep and count the row of a finished (or cancelled) request."""
        return self.keep(self.row(spec, out, t_scheduled))

    def keep(self, row: dict) -> dict:
        """Keep and count a row."""
        warmup = row["warmup"]
        self.recorder.add(row)
        self.done += 1
        if row["status"] != "ok":
            self.failed += 1
        elif not warmup:
            self._ttfa.append(row["ttfa_s"])
        return row

    def cancelled(self, spec: RequestSpec, t_start: float, t_scheduled: float | None) -> dict:
        """Row for a request still running when the run was stopped (`execute` already uncounted it)."""
        out = client.Outcome(t_start=t_start, e2e_s=time.time() - t_start)
        return self.record(spec, out.fail("cancelled", "still running when the run ended"), t_scheduled)

    # -- progress -------------------------------------------------------------------------
    def progress(self) -> dict:
        """Counts for the live display (TTFA p95 over measured successful rows so far)."""
        ttfa = float(np.percentile(self._ttfa, 95)) if self._ttfa else None
        return {"t": time.time(), "started": self.started, "done": self.done, "errors": self.failed,
                "in_flight": self.in_flight, "offered": self.offered, LIVE_METRIC.name: ttfa,
                "ttfa_values": len(self._ttfa)}


def merge_progress(parts: list[dict], ttfa_values: list[float] | None = None) -> dict:
    """Sum worker progress dicts; the p95 comes from raw values, never from the workers' p95s."""
    out = {k: sum(p.get(k, 0) or 0 for p in parts) for k in ("started", "done", "errors", "in_flight", "offered")}
    out["t"] = max((p.get("t", 0) for p in parts), default=time.time())
    vals = [v for v in (ttfa_values or []) if v is not None and not math.isnan(v)]
    out[LIVE_METRIC.name] = float(np.percentile(vals, 95)) if vals else None
    return out
