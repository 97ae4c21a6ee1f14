"""One benchmark run: target + sampler + load processes -> a run directory and a status.

`run(scenario, ...)` is the API the CLI and the tuner drive. The scenario is a `Scenario` object,
a shipped name or a YAML path; the target is a spec (`TargetSpec`: embedded, http, command) that
the run builds, starts and stops, or a `Target` the caller owns — started already or not, it is
left running afterwards, so one warm embedded service can serve many runs (the tuner's hot-knob
trials). The run starts the sampling loop (in this process, on a thread) and the load processes
(never Locust in this process), follows their progress file for the live view, watches the
target, then writes the run directory (`vvbench.artifacts`) and judges the SLOs.

It returns a `RunResult` whatever happened to the target: `status` is one of
`vvbench.artifacts.record.RunStatus` (`ok`, `slo_failed`, `target_failed` with the reason,
`load_failed`, `aborted` on Ctrl-C) and the run directory is always finalized with the rows
recorded so far. Only input errors found before anything ran (an unknown scenario, an invalid
target template) raise `VVBenchError`. Statistics exclude warm-up and failed rows.

Every finished run registers itself in the history index (`vvbench.reports.history`:
`history_db`, else `$VVBENCH_HISTORY_DB`, else `<out>/index.sqlite`). The index is a convenience
of the run, not part of it: a failure to register is logged as a warning and an `index_failed`
event, and the run's status and exit code stay what the run decided.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from vvbench.artifacts.record import RunRecord, RunStatus
from vvbench.artifacts.rundir import RunDir
from vvbench.artifacts.scenarios import Scenario, resolve_scenario
from vvbench.core.errors import VVBenchError
from vvbench.core.interrupts import interrupted_by
from vvbench.harness.recording import build_record
from vvbench.harness.targets import EmbeddedSpec, Target, TargetSpec
from vvbench.load.context import LoadPlan
from vvbench.load.launch import LoadProcesses
from vvbench.monitor.nvml import NvmlSampler
from vvbench.monitor.sampleloop import SampleLoop
from vvbench.monitor.samplers import HostOtherCpuSampler, ProcessTreeSampler, ServiceStatsSampler, SystemCpuSampler
from vvbench.reports.history import default_db, register_run
from vvbench.runtime.config import RuntimeConfig

POLL_S = 0.1  # how soon the end of the load is noticed (each poll reads a small file; an http target is probed every HTTP_PROBE_S)
HTTP_PROBE_S = 2.0
OVERRUN_S = 120.0
log = logging.getLogger(__name__)
EXIT_CODES = {RunStatus.OK: 0, RunStatus.SLO_FAILED: 1, RunStatus.TARGET_FAILED: 2, RunStatus.LOAD_FAILED: 2,
              RunStatus.ABORTED: 130}


class RunOptions(BaseModel):
    """What a run asks for (the CLI's flags, the tuner's trial)."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    scenario: Scenario | str = Field(description="a Scenario, a shipped scenario name or a YAML path")
    target: TargetSpec = Field(default_factory=EmbeddedSpec, description="how to reach the service (unless a Target is given)")
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig, description="embedded/command: the runtime config")
    out: Path = Field(Path("runs"), description="where run directories go")
    duration_s: float | None = Field(None, gt=0, description="override the scenario's measured duration")
    workers: int = Field(1, ge=1, le=256, description="load processes (1: one local process)")
    master: bool = Field(False, description="run a Locust master and wait for `workers` remote workers")
    master_bind_host: str = Field("127.0.0.1", description="address the master binds")
    master_port: int | None = Field(None, ge=1, le=65535, description="master port (default: a free one)")
    sample_hz: float = Field(5.0, gt=0, le=100, description="sampling rate")
    clock: Literal["auto", "read"] = Field("auto", description="auto: kernel arrival stamps where available; read: read times")
    stall_threshold_ms: float = Field(50.0, gt=0, description="a load worker's loop lag over this makes the run untrusted")
    history_db: Path | None = Field(None, description="history index to register the run in (default: $VVBENCH_HISTORY_DB, else <out>/index.sqlite)")


class RunView(Protocol):
    """What the live display receives (the CLI's rich view implements it)."""

    def update(self, snapshot: dict) -> None: ...


@dataclass(frozen=True)
class RunResult:
    """How a run ended: its status, why when it did not complete, and where its directory is."""

    run_dir: Path
    record: RunRecord

    @property
    def status(self) -> RunStatus:
        return self.record.status

    @property
    def reason(self) -> str | None:
        return self.record.error

    @property
    def exit_code(self) -> int:
        """0 every SLO met, 1 an SLO failed, 2 the target or the load failed, 130 interrupted."""
        return EXIT_CODES[self.status]


def run(scenario: Scenario | str | Path, *, target: Target | None = None, view: RunView | None = None, **options) -> RunResult:
    """Run `scenario`; `options` are `RunOptions` fields. See the module docstring."""
    opts = RunOptions.model_validate({"scenario": scenario if isinstance(scenario, Scenario) else str(scenario), **options})
    return run_with(opts, target=target, view=view)


def _samplers(target: Target, url: str | None, api_key: str | None) -> list:
    # other work on the host is only known when the service's processes are (an http target's may be on this host)
    host = [HostOtherCpuSampler([target.pid])] if target.pid else []
    return [ProcessTreeSampler(target.pid), SystemCpuSampler(), *host, NvmlSampler(target.pid), ServiceStatsSampler(url, api_key)]


def _watch(load: LoadProcesses, target: Target, scenario: Scenario, view: RunView | None, t0: float) -> tuple[RunStatus | None, str | None]:
    """Follow the run until the load ends: (None, None) when it ended normally, else (status, why)."""
    bound = t0 + 60 + scenario.window_s + (scenario.drain or 0) + OVERRUN_S
    http_fail, last_probe = 0, 0.0
    while True:
        time.sleep(POLL_S)
        prog = load.progress()
        if view is not None:
            view.update(_snapshot(prog, scenario))
        if load.finished():
            rc = load.returncode()
            return (None, None) if rc == 0 else (RunStatus.LOAD_FAILED, f"load generator exited with code {rc}: {load.log_tail()}")
        if target.kind == "http":
            if time.monotonic() - last_probe >= HTTP_PROBE_S:
                last_probe = time.monotonic()
                http_fail = 0 if target.alive() else http_fail + 1
            if http_fail >= 3:
                return RunStatus.TARGET_FAILED, f"target {target.url} stopped answering"
        elif not target.alive():
            code = getattr(target, "exit_code", lambda: None)()
            return RunStatus.TARGET_FAILED, f"target process {target.pid} exited with code {code}"
        if time.time() > bound:
            return RunStatus.LOAD_FAILED, f"load generator still running {OVERRUN_S:g} s after its time bound"


def _snapshot(prog: dict | None, scenario: Scenario) -> dict:
    prog = prog or {}
    start = prog.get("start_at")
    elapsed = max(0.0, time.time() - start) if start else 0.0
    phase = "starting" if not start else ("warm-up" if elapsed < scenario.warmup else
                                          "measuring" if elapsed < scenario.window_s else "draining")
    return {**prog, "elapsed_s": elapsed, "window_s": scenario.window_s, "phase": phase}


def run_with(opts: RunOptions, *, target: Target | None = None, view: RunView | None = None) -> RunResult:
    """Run validated options against `opts.target`, or against `target` (kept running afterwards)."""
    scenario = opts.scenario if isinstance(opts.scenario, Scenario) else resolve_scenario(opts.scenario)
    if opts.duration_s:
        scenario = scenario.with_duration(opts.duration_s)
    rd = RunDir(opts.out, scenario.name)
    owned = target is None
    if owned:
        try:
            target = opts.target.build(opts.runtime, rd.path / "target")
        except VVBenchError:
            rd.discard()  # an invalid target template is an input error: nothing ran, nothing to keep
            raise
    api_key = target.api_key  # an embedded target's own key when the spec gave none
    loop: SampleLoop | None = None
    load: LoadProcesses | None = None
    status, error, started_at = None, None, time.time()
    try:
        rd.event("target_starting" if target.url is None else "target_reused", **target.describe())
        url = target.url or target.start()
        rd.event("target_ready", url=url, pid=target.pid, after_s=time.time() - started_at)
        loop = SampleLoop(_samplers(target, url, api_key), hz=opts.sample_hz).start()
        plan = LoadPlan(scenario=scenario, base_url=url, api_key=api_key, workers=opts.workers, clock=opts.clock)
        load = LoadProcesses(plan, rd.work, rd.path / "locust", workers=opts.workers, master=opts.master,
                             master_bind_host=opts.master_bind_host, master_port=opts.master_port).start()
        rd.event("load_started", mode=load.mode, port=load.port)
        status, error = _watch(load, target, scenario, view, time.time())
        rd.event("done" if status is None else status.value, detail=error)
    except KeyboardInterrupt:
        status, error = RunStatus.ABORTED, f"interrupted ({interrupted_by()})"
        rd.event("interrupted")
    except VVBenchError as exc:
        status, error = RunStatus.TARGET_FAILED, str(exc)
        rd.event("error", message=error)
    finally:
        if load is not None:
            load.stop()
            load.wait(30)
        if loop is not None:
            loop.stop()
        runtime_config = target.runtime_config() if target.alive() or target.kind != "http" else None
        if owned:
            target.stop()
            rd.event("target_stopped")
    record = build_record(rd, opts, scenario, target, runtime_config, loop, load, status, error, started_at)
    _register(rd, record, opts)
    return RunResult(rd.finalize(), record)


def _register(rd: RunDir, record: RunRecord, opts: RunOptions) -> None:
    """Add the run (at its final path) to the history index; never fails the run (see the module docstring)."""
    db = opts.history_db or default_db(opts.out)
    try:
        register_run(db, rd.final, record)
        rd.event("indexed", db=str(db))
    except Exception as exc:  # noqa: BLE001 - any failure of the index (disk, lock, not an index) must leave the run as it is
        log.warning("run %s not registered in the history index %s: %s", record.run_id, db, exc)
        rd.event("index_failed", db=str(db), error=str(exc))
