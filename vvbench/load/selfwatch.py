"""The load worker watching itself: how late its event loop wakes, and how long its CPU waits.

`LoopWatch.run(sleep)` is a ticker for the worker's event loop (the gevent hub; `sleep` is
`gevent.sleep` there, `time.sleep` in the tests): every `tick_s` it records how late it woke
(`lag_s`: a loop that runs something slow wakes its ticker late by that long), the hub
thread's run delay over the tick (`run_delay_s`: time it was runnable but waiting for a CPU,
from `/proc/thread-self/schedstat`; NaN where the kernel does not give it) and the process's
CPU time over the tick (`cpu_s`). One row per tick, on the run's clock (epoch seconds of the
wake), in `vvbench.artifacts.schemas.LOOP` columns; `take()` hands over the rows so far.

A tick that woke `lag_s` late means the loop was blocked for about that long, ending at the
wake: the stall window is `[t - lag_s - tick_s, t]` (the block began at the latest `lag_s`
before the wake and at the earliest when the ticker went to sleep). `stall_windows` applies a
threshold to the rows; `vvbench.reports.trust` judges a run with it.

`trace_blocking` is the diagnosis tool (`VVBENCH_TRACE_BLOCKING=<ms>` in the worker's
environment): it logs every greenlet run and every garbage collection longer than the
threshold, with the greenlet's function, so a stall names its cause in the worker's log.

`injected_stall` reads the test hook `VVBENCH_INJECT_STALL=AT_S:DURATION_S`: the worker then
blocks its loop for DURATION_S at AT_S after time 0 of the run, running Python code on the hub
(the way a slow flush or a stats computation would), so the tests can hold the rows against an
independent clock through a stall. Never set by vvbench itself.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import os
import sys
import time
from collections.abc import Callable

TICK_S = 0.01
TRACE_ENV = "VVBENCH_TRACE_BLOCKING"
STALL_ENV = "VVBENCH_INJECT_STALL"
SCHEDSTAT = "/proc/thread-self/schedstat"

log = logging.getLogger("vvbench.load")


def run_delay_s() -> float:
    """The calling thread's total run delay (seconds waiting for a CPU while runnable), NaN when unknown."""
    try:
        with open(SCHEDSTAT, "rb") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return math.nan


class LoopWatch:
    """The event-loop ticker of one worker (see the module docstring)."""

    def __init__(self, worker: str, tick_s: float = TICK_S):
        self.worker = worker
        self.tick_s = tick_s
        self.rows: list[dict] = []
        self.stopped = False
        self.worst_s = 0.0

    def take(self) -> list[dict]:
        """The rows recorded since the last call."""
        rows, self.rows = self.rows, []
        return rows

    def run(self, sleep: Callable[[float], None]) -> None:
        """Tick until `stop()`; call it on the loop being watched (it must be that loop's thread)."""
        delay, cpu = run_delay_s(), time.process_time()
        while not self.stopped:
            due = time.time() + self.tick_s
            sleep(self.tick_s)
            now = time.time()
            delay2, cpu2 = run_delay_s(), time.process_time()
            lag = max(0.0, now - due)
            self.worst_s = max(self.worst_s, lag)
            self.rows.append({"t": now, "worker": self.worker, "lag_s": lag, "tick_s": self.tick_s,
                              "run_delay_s": delay2 - delay, "cpu_s": cpu2 - cpu})
            delay, cpu = delay2, cpu2

    def stop(self) -> None:
        self.stopped = True


def stall_windows(ts, lags, ticks, threshold_s: float) -> list[tuple[float, float, float]]:
    """(start, end, lag_s) of every tick that woke more than `threshold_s` late (module docstring)."""
    out = []
    for t, lag, tick in zip(ts, lags, ticks):
        if lag > threshold_s:
            out.append((t - lag - tick, t, lag))
    return out


def injected_stall(environ=os.environ) -> tuple[float, float] | None:
    """(at_s, duration_s) from the test hook, None when unset; ValueError naming the variable when malformed."""
    raw = environ.get(STALL_ENV)
    if not raw:
        return None
    try:
        at_s, duration_s = (float(x) for x in raw.split(":"))
    except ValueError:
        raise ValueError(f"{STALL_ENV}={raw!r}: expected AT_S:DURATION_S, e.g. 2:0.5") from None
    return at_s, duration_s


def block_loop(duration_s: float) -> None:
    """Run Python code on the calling loop for `duration_s` without yielding (the test hook's stall)."""
    end = time.perf_counter() + duration_s
    log.warning("test hook %s: blocking the event loop for %.3f s", STALL_ENV, duration_s)
    while time.perf_counter() < end:
        pass


def trace_blocking(threshold_s: float, hub, settrace) -> None:
    """Log greenlet runs and garbage collections longer than `threshold_s` (`hub`: the loop; `settrace`: greenlet's)."""
    state = {"since": time.perf_counter(), "gc": 0.0}

    def on_switch(event, args):
        if event not in ("switch", "throw"):
            return
        origin, _target = args
        now = time.perf_counter()
        ran = now - state["since"]
        state["since"] = now
        if ran > threshold_s and origin is not hub:  # the hub's own time includes waiting for events
            run = getattr(origin, "run", None) or getattr(origin, "_run", None)
            name = getattr(run, "__qualname__", None) or repr(origin)
            log.warning("blocking: greenlet %s ran %.1f ms without yielding (until %.3f)", name, ran * 1000, time.time())

    def on_gc(phase, info):
        # a collection stops every thread (it holds the GIL), whichever thread it runs on
        if phase == "start":
            state["gc"] = time.perf_counter()
        elif (took := time.perf_counter() - state["gc"]) > threshold_s:
            with contextlib.suppress(Exception):  # at interpreter exit logging may be gone
                sys.stderr.write(f"vvbench.load: blocking: gc generation {info.get('generation')} took {took * 1000:.1f} ms "
                                 f"({info.get('collected')} collected)\n")

    settrace(on_switch)
    gc.callbacks.append(on_gc)
