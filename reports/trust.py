"""Judging whether a run's own timing held: the load workers' loop stalls, and the requests they overlapped.

`judge_trust(requests, loop, threshold_s)` reads the rows and `loop.parquet` (one row per
event-loop tick of each load worker, `vvbench.load.selfwatch`). A tick that woke `lag_s` late
means the worker's loop did not run for about that long, ending at the wake: the stall window
is `[t - lag_s - tick_s, t]` (it began at the latest `lag_s` before the wake, at the earliest
when the ticker went to sleep). Every tick over `threshold_s` is a stall; the requests named
with it are that worker's requests in flight at any moment of the window (warm-up and failed
ones included: a reader of the rows needs to know them all).

A stall makes the run untrusted (`Trust.trusted` false) and adds one warning line per stall,
whatever clock the rows used: rows on the `kernel` clock carry the kernel's arrival stamps and
are read on threads off the loop, so a loop stall alone does not move them, but a stall of
the whole process (the CPU taken, the GIL held in C code) delays their reads too, and the
ticker cannot tell the two apart. The run's status and exit code do not change.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from vvbench.artifacts.record import Stall, Trust

DEFAULT_THRESHOLD_S = 0.05
NAMED_MAX = 20  # requests named per stall in a warning line (run.json keeps them all)


def stall_windows(loop: pd.DataFrame, threshold_s: float) -> list[tuple[str, float, float, float]]:
    """(worker, start, end, lag_s) of every tick that woke more than `threshold_s` late."""
    late = loop[loop["lag_s"] > threshold_s] if len(loop) else loop
    return [(str(r.worker), float(r.t - r.lag_s - r.tick_s), float(r.t), float(r.lag_s)) for r in late.itertuples()]


def _overlapping(requests: pd.DataFrame, worker: str, start: float, end: float) -> list[str]:
    if not len(requests):
        return []
    rows = requests[requests["worker"] == worker]
    t0 = rows["t_start"].to_numpy(dtype=float)
    t1 = t0 + rows["e2e_s"].fillna(0.0).to_numpy(dtype=float)
    hit = (t0 <= end) & (t1 >= start)
    return [str(x) for x in rows["request_id"][hit]]


def _q(values: np.ndarray, q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def judge_trust(requests: pd.DataFrame, loop: pd.DataFrame, threshold_s: float = DEFAULT_THRESHOLD_S) -> Trust:
    """The run's `Trust` (see the module docstring)."""
    clocks = requests["clock"].fillna("unknown").value_counts().to_dict() if len(requests) else {}
    lags = loop["lag_s"].dropna().to_numpy(dtype=float) if len(loop) else np.zeros(0)
    stalls = [Stall(worker=w, start=a, end=b, lag_s=lag, requests=_overlapping(requests, w, a, b))
              for w, a, b, lag in stall_windows(loop, threshold_s)]
    share = None
    if len(loop) and loop["run_delay_s"].notna().any():
        elapsed = float((loop["tick_s"] + loop["lag_s"]).sum())  # each tick lasted its sleep plus its lag
        share = float(loop["run_delay_s"].sum()) / elapsed if elapsed > 0 else None
    warnings = []
    if not len(loop):
        warnings.append("the load workers did not report their event loop: stalls of the load generator cannot be ruled out")
    for s in stalls:
        named = ", ".join(s.requests[:NAMED_MAX]) + (f" and {len(s.requests) - NAMED_MAX} more" if len(s.requests) > NAMED_MAX else "")
        warnings.append(f"load worker {s.worker} stalled {s.lag_s * 1000:.0f} ms (over {threshold_s * 1000:g} ms) ending at "
                        f"epoch {s.end:.3f}; requests in flight: {named or 'none'}")
    if clocks.get("read"):
        warnings.append(f"{clocks['read']} rows are timed when read, not by kernel arrival stamps")
    return Trust(threshold_s=threshold_s, clocks={str(k): int(v) for k, v in clocks.items()},
                 loop_lag_p50_s=_q(lags, 50), loop_lag_p99_s=_q(lags, 99),
                 loop_lag_max_s=float(lags.max()) if len(lags) else None,
                 run_delay_share=None if share is None or math.isnan(share) else share,
                 stalls=stalls, trusted=not stalls and bool(len(loop)), warnings=warnings)
