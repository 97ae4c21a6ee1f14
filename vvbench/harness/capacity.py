"""Run a scenario at several loads — a sweep, or a search that brackets then bisects — on one warm target.

`run_capacity(plan, ...)` sets the scenario's load for each point (`users` of a closed loop, or
the `rate` of a poisson/constant open loop), runs it with `vvbench.harness.run.run` against one
target started once and kept up across the points (the first point's warm-up also warms the
service; each point keeps its own warm-up), judges each run directory with
`vvbench.reports.capacity.judge_point`, and decides with `vvbench.reports.capacity.decide`.
Every point's run directory is kept under `<out>/runs/`. A target that died during a point is
started again before the next one (that point is unmet, with the reason); a Ctrl-C stops the
loop, and the target is always stopped.

Input problems found before anything runs are `InputError` (a sweep key the scenario's arrival
cannot take, a non-integer number of users, a stages scenario).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from vvbench.artifacts.reader import load_run
from vvbench.artifacts.record import RunStatus
from vvbench.artifacts.scenarios import Scenario
from vvbench.core.errors import InputError
from vvbench.core.interrupts import interrupted_by
from vvbench.harness.run import run
from vvbench.harness.targets import Target
from vvbench.reports.capacity import CapacityResult, Point, decide, judge_point
from vvbench.reports.capacity_search import next_load

DEFAULT_SEARCH_MAX = 256.0


@dataclass
class CapacityPlan:
    """What to run: the scenario, the sweep key, and either the swept loads or the search's bounds."""

    scenario: Scenario
    key: str  # users | rate
    loads: list[float] = field(default_factory=list)  # a sweep; empty for a search
    search: bool = False
    start: float = 1.0
    cap: float = DEFAULT_SEARCH_MAX
    resolution: float | None = None  # rate: stop bisecting when the bracket is narrower (default 10% of start)
    confidence: float = 0.95
    target_load: float | None = None
    headroom: float = 0.8
    duration_s: float | None = None


def scenario_at(scenario: Scenario, key: str, load: float) -> Scenario:
    """A copy of `scenario` at `load` (users or rate); InputError when its arrival cannot take that key."""
    data = scenario.model_dump(mode="json")
    arrival = data["arrival"]
    kind = scenario.arrival.kind
    if key == "users":
        if kind != "closed":
            raise InputError(f"--sweep users needs a closed-loop scenario; {scenario.name} arrives by {kind} (sweep rate=...)")
        if load != int(load):
            raise InputError(f"users must be whole numbers, got {load:g}")
        arrival["closed"]["users"] = int(load)
    elif key == "rate":
        if kind not in ("poisson", "constant"):
            raise InputError(f"--sweep rate needs a poisson or constant open-loop scenario; {scenario.name} arrives by {kind}"
                             + (" (sweep users=...)" if kind == "closed" else ""))
        arrival[kind]["rate"] = float(load)
    else:
        raise InputError(f"unknown sweep key {key!r}; use users or rate")
    return Scenario.model_validate(data, context={"recorded": True})


def check_plan(plan: CapacityPlan) -> None:
    """Refuse a plan whose loads the scenario cannot take, before any target starts."""
    for load in plan.loads or [plan.start]:
        scenario_at(plan.scenario, plan.key, load)


def _loads(plan: CapacityPlan, results: dict[float, bool]):
    if not plan.search:
        yield from plan.loads
        return
    resolution = plan.resolution if plan.resolution is not None else 0.1 * plan.start
    while (load := next_load(results, start=plan.start, cap=plan.cap, integer=plan.key == "users", resolution=resolution)) is not None:
        yield load


def run_capacity(plan: CapacityPlan, target: Target, out: Path, *, on_point: Callable[[Point], None] | None = None,
                 on_start: Callable[[float], None] | None = None) -> CapacityResult:
    """Run every point of `plan` against `target` (started here, stopped here); the decided result."""
    check_plan(plan)
    runs_dir = out / "runs"
    t0 = time.monotonic()
    points: list[Point] = []
    results: dict[float, bool] = {}
    notes: list[str] = []
    interrupted = None
    try:
        target.start()
        for load in _loads(plan, results):
            if on_start is not None:
                on_start(load)
            result = run(scenario_at(plan.scenario, plan.key, load), target=target, out=runs_dir, duration_s=plan.duration_s)
            point = judge_point(load_run(result.run_dir), load, plan.confidence)
            points.append(point)
            if not point.aborted:
                results[load] = bool(point.met)
            if on_point is not None:
                on_point(point)
            if result.status is RunStatus.ABORTED:
                interrupted = interrupted_by()
                break
            if not target.alive() and target.kind != "http":
                notes.append(f"the target died at load {load:g}; it was started again for the next point")
                target.stop()
                target.start()
    except KeyboardInterrupt:
        interrupted = interrupted_by()
    finally:
        target.stop()
    if interrupted is not None:
        notes.append(f"interrupted ({interrupted}): the points so far are kept, the search did not finish; "
                     "an interrupted point is no verdict")
    return decide(plan.scenario.name, plan.key, "search" if plan.search else "sweep", points, plan.confidence,
                  time.monotonic() - t0, target_load=plan.target_load, headroom=plan.headroom, notes=notes, interrupted=interrupted)
