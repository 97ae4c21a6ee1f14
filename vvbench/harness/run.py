"""One benchmark run: target + sampler + load processes -> a run directory (DESIGN.md section 10).

`run_benchmark` starts the target, the sampling loop (in this process, on a thread) and the
load processes (never Locust in this process), follows their progress file for the live view,
watches the target, then writes the run directory and judges the SLOs.

Failure handling: an unreachable target, a target that dies mid-run (its process exits, or an
`http` target stops answering for 3 probes in a row), a load generator that fails or overruns
its time bound, and Ctrl-C all end the same way: the load processes are stopped by PID (they
flush their rows), the target is stopped, the run directory is finalized with the rows
recorded so far and `status` saying why, and a `VVBenchError` with one line naming the run
directory is raised (exit 2; Ctrl-C: 130). Statistics exclude warm-up and failed rows.
"""

from __future__ import annotations

import csv
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from vvbench import __version__
from vvbench.artifacts.metrics import RTF_FORMULA, metric_table
from vvbench.artifacts.rundir import SCHEMA_VERSION, RunDir
from vvbench.artifacts.scenarios import Scenario, resolve_scenario
from vvbench.core.errors import TargetError, VVBenchError
from vvbench.harness.facts import git_facts, host_facts
from vvbench.harness.targets import EmbeddedSpec, Target, TargetSpec
from vvbench.load.context import LoadPlan
from vvbench.load.launch import LoadProcesses
from vvbench.load.records import concat_parts, write_atomic
from vvbench.monitor.nvml import NvmlSampler
from vvbench.monitor.sampleloop import SampleLoop
from vvbench.monitor.samplers import ProcessTreeSampler, ServiceStatsSampler, SystemCpuSampler
from vvbench.reports.render import render_html, render_markdown
from vvbench.reports.slo import judge, request_thresholds, verdicts_json
from vvbench.reports.summary import summarize
from vvbench.runtime.config import RuntimeConfig

POLL_S = 0.5
HTTP_PROBE_S = 2.0
OVERRUN_S = 120.0


class Interrupted(VVBenchError):
    """Ctrl-C during a run (the run directory is still written)."""

    exit_code = 130


class RunOptions(BaseModel):
    """What `vvbench run` (and `demo`, and later the tuner) asks for."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    scenario: str = Field(description="a shipped scenario name or a YAML path")
    target: TargetSpec = Field(default_factory=EmbeddedSpec, description="how to reach the service")
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig, description="embedded/command: the runtime config")
    out: Path = Field(Path("runs"), description="where run directories go")
    duration_s: float | None = Field(None, gt=0, description="override the scenario's measured duration")
    workers: int = Field(1, ge=1, le=256, description="load processes (1: one local process)")
    master: bool = Field(False, description="run a Locust master and wait for `workers` remote workers")
    master_bind_host: str = Field("127.0.0.1", description="address the master binds")
    master_port: int | None = Field(None, ge=1, le=65535, description="master port (default: a free one)")
    sample_hz: float = Field(5.0, gt=0, le=100, description="sampling rate")


class RunView(Protocol):
    """What the live display receives (the CLI's rich view implements it)."""

    def update(self, snapshot: dict) -> None: ...


@dataclass
class RunResult:
    run_dir: Path
    run: dict

    @property
    def exit_code(self) -> int:
        return 0 if self.run.get("passed", True) else 1


def _samplers(target: Target, url: str | None, api_key: str | None) -> list:
    return [ProcessTreeSampler(target.pid), SystemCpuSampler(), NvmlSampler(target.pid), ServiceStatsSampler(url, api_key)]


def _locust_counts(path: Path) -> dict[str, int]:
    """Locust's own request count per request type (SPEECH, JOB, TTFA), summed over names."""
    out: dict[str, int] = {}
    try:
        with open(path / "locust_stats.csv", newline="") as f:
            for row in csv.DictReader(f):
                if row["Type"]:
                    out[row["Type"]] = out.get(row["Type"], 0) + int(row["Request Count"])
    except (OSError, KeyError, ValueError):
        return {}
    return out


def _watch(load: LoadProcesses, target: Target, scenario: Scenario, view: RunView | None, t0: float) -> tuple[str, str | None]:
    """Follow the run until the load ends; ('done'|'target_died'|'load_failed'|'overrun', detail)."""
    bound = t0 + 60 + scenario.window_s + (scenario.drain or 0) + OVERRUN_S
    http_fail, last_probe = 0, 0.0
    while True:
        time.sleep(POLL_S)
        prog = load.progress()
        if view is not None:
            view.update(_snapshot(prog, scenario))
        if load.finished():
            rc = load.returncode()
            return ("done", None) if rc == 0 else ("load_failed", f"load generator exited with code {rc}: {load.log_tail()}")
        if target.kind == "http":
            if time.monotonic() - last_probe >= HTTP_PROBE_S:
                last_probe = time.monotonic()
                http_fail = 0 if target.alive() else http_fail + 1
            if http_fail >= 3:
                return "target_died", f"target {target.url} stopped answering"
        elif not target.alive():
            code = getattr(target, "exit_code", lambda: None)()
            return "target_died", f"target process {target.pid} exited with code {code}"
        if time.time() > bound:
            return "overrun", f"load generator still running {OVERRUN_S:g} s after its time bound"


def _snapshot(prog: dict | None, scenario: Scenario) -> dict:
    prog = prog or {}
    start = prog.get("start_at")
    elapsed = max(0.0, time.time() - start) if start else 0.0
    phase = "starting" if not start else ("warm-up" if elapsed < scenario.warmup else
                                          "measuring" if elapsed < scenario.window_s else "draining")
    return {**prog, "elapsed_s": elapsed, "window_s": scenario.window_s, "phase": phase}


def run_benchmark(opts: RunOptions, view: RunView | None = None) -> RunResult:
    """Run one scenario against one target and write its run directory (see the module docstring)."""
    scenario = resolve_scenario(opts.scenario)
    if opts.duration_s:
        scenario = scenario.with_duration(opts.duration_s)
    rd = RunDir(opts.out, scenario.name)
    try:
        target = opts.target.build(opts.runtime, rd.path / "target")
    except VVBenchError:
        rd.discard()  # an invalid target template is an input error: nothing ran, nothing to keep
        raise
    api_key = getattr(opts.target, "api_key", None)
    loop: SampleLoop | None = None
    load: LoadProcesses | None = None
    status, error, started_at = "ok", None, time.time()
    try:
        rd.event("target_starting", **target.describe())
        url = target.start()
        rd.event("target_ready", url=url, pid=target.pid, after_s=time.time() - started_at)
        loop = SampleLoop(_samplers(target, url, api_key), hz=opts.sample_hz).start()
        plan = LoadPlan(scenario=scenario, base_url=url, api_key=api_key, workers=opts.workers)
        load = LoadProcesses(plan, rd.work, rd.path / "locust", workers=opts.workers, master=opts.master,
                             master_bind_host=opts.master_bind_host, master_port=opts.master_port).start()
        rd.event("load_started", mode=load.mode, port=load.port)
        outcome, detail = _watch(load, target, scenario, view, time.time())
        rd.event(outcome, detail=detail)
        if outcome != "done":
            status, error = outcome, detail
    except KeyboardInterrupt:
        status, error = "interrupted", "interrupted (Ctrl-C)"
        rd.event("interrupted")
    except VVBenchError as exc:
        status, error = "error", str(exc)
        rd.event("error", message=error)
    finally:
        if load is not None:
            load.stop()
            load.wait(30)
        if loop is not None:
            loop.stop()
        runtime_config = target.runtime_config() if target.alive() else _known_config(target)
        target.stop()
        rd.event("target_stopped")
    run = _write(rd, opts, scenario, target, runtime_config, loop, load, status, error, started_at)
    final = rd.finalize()
    if status == "interrupted":
        raise Interrupted(f"run interrupted; rows so far kept in {final}")
    if status != "ok":
        raise TargetError(f"{error}; {run['summary_counts']['rows']} rows kept in {final}")
    return RunResult(final, run)


def _known_config(target: Target) -> dict | None:
    return target.runtime_config() if target.kind != "http" else None


def _write(rd: RunDir, opts: RunOptions, scenario: Scenario, target: Target, runtime_config, loop, load,
           status: str, error: str | None, started_at: float) -> dict:
    table = concat_parts(rd.work / "rows")
    write_atomic(table, rd.path / "requests.parquet")
    rows = table.to_pandas()
    samples = loop.frame() if loop is not None else None
    if loop is not None:
        loop.write(rd.path / "samples.parquet")
    else:
        SampleLoop([], hz=1).write(rd.path / "samples.parquet")
    rd.adopt(rd.work / "locust", "locust")
    prog = (load.progress() if load is not None else None) or {}
    summary = summarize(rows, samples, window_s=scenario.duration or 0.0, request_slos=request_thresholds(scenario.slos))
    verdicts = judge(scenario.slos, summary)
    locust = _locust_counts(rd.path / "locust")
    run = {
        "schema_version": SCHEMA_VERSION, "tool": {"name": "vvbench", "version": __version__}, "git": git_facts(),
        "run_id": rd.name, "status": status, "error": error,
        "created_at": started_at, "finished_at": time.time(), "host": host_facts(),
        "target": target.describe(), "runtime_config": runtime_config,
        "scenario": scenario.model_dump(mode="json"),
        "load": {"mode": load.mode if load else None, "workers": opts.workers, "locust_requests": locust,
                 "sample_hz": opts.sample_hz},
        "window": {"start_at": prog.get("start_at"), "warmup_end": (prog.get("start_at") or math.nan) + scenario.warmup
                   if prog.get("start_at") else None, "window_end": prog.get("window_end")},
        "metrics": metric_table(), "summary": summary, "slos": verdicts_json(verdicts),
        "passed": all(v.passed for v in verdicts) if status == "ok" else False,
        "summary_counts": {"rows": len(rows), "warmup_rows": int(rows["warmup"].sum()) if len(rows) else 0,
                           "failed_rows": int((rows["status"] != "ok").sum()) if len(rows) else 0,
                           "rows_match_locust": len(rows) == locust.get("SPEECH", 0) + locust.get("JOB", 0)},
        "notes": (loop.notes if loop is not None else []), "formulas": {"rtf": RTF_FORMULA},
        "files": ["run.json", "requests.parquet", "samples.parquet", "events.jsonl", "locust/", "summary.md", "report.html"],
    }
    rd.write_json("run.json", run)
    rd.write_text("summary.md", render_markdown(run))
    rd.write_text("report.html", render_html(run))
    return run
