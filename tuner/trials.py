"""One trial: apply its config to the warm service, probe quality, run the tuning scenario.

`Server` keeps one started target for the whole study and applies each trial's config through
`Target.reconfigure`: hot knobs on the warm service, a restart only when a restart-only knob
changed (the target decides, from the knob table). A dead service (a crash in the previous
trial) is started afresh with the next config. With `restart_each` every trial gets a freshly
started service, as tuners that restart the server per trial do (`vvbench tune
--restart-each-trial`: what the hot batching saves is measured against it).

`run_trial` prices the config with the memory plan first (over the budget: pruned, nothing
started), then applies it, sends the quality probes (which also warm the service after a
restart or a hot change), and runs the scenario through `vvbench.harness.run.run` with the
target left running. How it ends:

- `complete`: the scenario ran to its end and requests succeeded; the figures are the summary's;
- `fail` with a reason: the service died (a crash or an OOM kill: its exit code is in the
  reason), or no measured request succeeded (timeouts, a hang), or an objective was not measured.
  Never a score;
- a transient failure (the load generator failed, or the service was unreachable while its
  process still ran, or it failed to start) is retried once, then fails the trial;
- Ctrl-C during the run raises KeyboardInterrupt for the study loop to record.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vvbench.artifacts.metrics import METRIC_BY_NAME
from vvbench.artifacts.reader import load_run
from vvbench.artifacts.record import RunStatus
from vvbench.artifacts.scenarios import Scenario
from vvbench.core.errors import TargetError
from vvbench.harness.run import run
from vvbench.harness.targets import Target
from vvbench.runtime.config import RuntimeConfig
from vvbench.tuner.memory import planned_bytes
from vvbench.tuner.quality import Probe, Reference, synthesise

TRIAL_METRICS = ("ttfa_p95_s", "goodput_rps", "audio_s_per_s", "c100", "success", "peak_rss_bytes", "peak_gpu_bytes")


class Server:
    """The tuner's service: one target, reconfigured per trial (see the module docstring)."""

    def __init__(self, spec: Any, log_dir: Path, restart_each: bool = False, restore: RuntimeConfig | None = None):
        self.spec = spec
        self.log_dir = Path(log_dir)
        self.restart_each = restart_each
        self.restore = restore  # a service this server did not start gets this config back on close
        self.restore_failed: str | None = None
        self.target: Target | None = None
        self.starts = 0

    def apply(self, config: RuntimeConfig) -> tuple[str, float]:
        """Bring the service to `config`; (how: start | restart | hot | unchanged, seconds)."""
        t0 = time.monotonic()
        knobs = config.model_dump(mode="json")
        restarted = self.restart_each and self.target is not None and self.target.alive()
        if self.target is not None and self.target.alive() and not self.restart_each:
            done = self.target.reconfigure(knobs)
            if done.how == "restart":
                self.starts += 1
            return done.how, time.monotonic() - t0
        if self.target is not None:
            self.target.stop()
        self.starts += 1
        folder = self.log_dir / f"server-{self.starts}"
        folder.mkdir(parents=True, exist_ok=True)
        self.target = self.spec.build(config, folder)
        self.target.start()
        return ("restart" if restarted else "start"), time.monotonic() - t0

    def alive(self) -> bool:
        return self.target is not None and self.target.alive()

    def close(self) -> None:
        """Stop what this server started; give a service it did not start its `restore` config back.

        That never raises: when the service refuses it or has gone, `restore_failed` says why."""
        target, self.target = self.target, None
        if target is None:
            return
        if self.restore is not None:
            try:
                target.reconfigure(self.restore.model_dump(mode="json"))
            except TargetError as exc:
                self.restore_failed = str(exc)
        target.stop()


@dataclass
class TrialOutcome:
    """How one trial ended and what it measured."""

    state: str  # complete | fail | pruned
    reason: str | None = None
    metrics: dict[str, float | None] = field(default_factory=dict)
    quality_db: float | None = None
    waveform_db: float | None = None
    audio_failed: list[str] = field(default_factory=list)
    slos: list[dict] = field(default_factory=list)
    run_dir: str | None = None
    how: str | None = None
    apply_s: float = 0.0
    attempts: int = 0
    planned_bytes: int | None = None


@dataclass
class TrialContext:
    """What every trial of a study shares."""

    scenario: Scenario
    server: Server
    reference: Reference
    probes: list[Probe]
    runs_dir: Path
    budget_bytes: int | None
    cuda: bool


class _Transient(Exception):
    """A failure worth one retry."""


def _failure_reason(run_dir: Path, failed_rows: int) -> str:
    rows = load_run(run_dir).requests
    errors = Counter(str(e) for s, e in zip(rows["status"], rows["error"]) if s != "ok")
    top = "; ".join(f"{n}x {e}" for e, n in errors.most_common(2))
    return f"no measured request succeeded ({failed_rows} failed: {top or 'no rows'})"


def _attempt(ctx: TrialContext, config: RuntimeConfig, out: TrialOutcome) -> TrialOutcome:
    server = ctx.server
    try:
        out.how, out.apply_s = server.apply(config)
    except TargetError as exc:
        raise _Transient(f"service did not start: {exc}") from None
    try:
        audio = synthesise(server.target.url, ctx.probes, server.target.api_key, together=config.batch_invariant)
    except TargetError as exc:
        if not server.alive():
            return _died(out, server, f"service died during the quality probes ({exc})")
        raise _Transient(str(exc)) from None
    verdict = ctx.reference.judge(audio)
    result = run(ctx.scenario, target=server.target, out=ctx.runs_dir)
    out.run_dir = str(result.run_dir)
    if result.status is RunStatus.ABORTED:
        raise KeyboardInterrupt
    if result.status is RunStatus.TARGET_FAILED and not server.alive():
        return _died(out, server, result.reason or "target failed")
    if not result.status.completed:
        raise _Transient(result.reason or result.status.value)
    record = result.record
    out.metrics = {name: record.summary.get(name) for name in (*TRIAL_METRICS, *(n for n in METRIC_BY_NAME if n not in TRIAL_METRICS))
                   if isinstance(record.summary.get(name), (int, float)) or name in TRIAL_METRICS}
    out.quality_db, out.waveform_db, out.audio_failed = verdict.snr_db, verdict.waveform_db, verdict.failed_checks
    out.slos = [v.model_dump() for v in record.slos]
    if not record.summary.get("ok"):
        out.state, out.reason = "fail", _failure_reason(result.run_dir, record.summary_counts.failed_rows)
        return out
    out.state = "complete"
    return out


def _died(out: TrialOutcome, server: Server, why: str) -> TrialOutcome:
    code = server.target.exit_code() if server.target is not None and hasattr(server.target, "exit_code") else None
    out.state = "fail"
    out.reason = f"{why}" + (f" (exit code {code})" if code is not None and str(code) not in why else "")
    return out


def run_trial(ctx: TrialContext, config: RuntimeConfig) -> TrialOutcome:
    """Run one trial of `config` (see the module docstring)."""
    priced = planned_bytes(config, ctx.scenario, ctx.budget_bytes, cuda_available=ctx.cuda)
    out = TrialOutcome(state="fail", planned_bytes=priced.bytes)
    if priced.over:
        out.state, out.reason = "pruned", priced.reason()
        return out
    last = None
    for attempt in (1, 2):
        out.attempts = attempt
        try:
            return _attempt(ctx, config, out)
        except _Transient as exc:
            last = str(exc)
    out.state, out.reason = "fail", f"failed twice (transient failures): {last}"
    return out
