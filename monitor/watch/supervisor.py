"""The watchdog's work loop: sample, read probes and canaries, apply the rules, act — one tick at a time.

The loop runs on the calling thread at `sample_hz` (ticks on a fixed grid, as `SampleLoop` does;
a tick that overruns skips the grid points it missed). Each tick it samples the service through
the shared samplers (`SampleLoop.tick()`: process tree, system CPU, NVML, `/v1/stats`), takes the
results the probe and canary threads left in its inbox, evaluates the rules on the current
incarnation's recent observations, and advances the service's phase:

    STARTING --ready--> RUNNING --rule--> DRAINING --exit--> BACKOFF --delay--> STARTING ...
        \\--exit/timeout-----------/    SIGTERM; SIGKILL to the group after `grace`

Nothing in the loop blocks for long (signals are sent, exits are polled), so the systemd
watchdog ping (`WATCHDOG=1`) goes out from this loop and stops if the loop ever stalls.

Restarts: the delay before the n-th restart in a row is `backoff × factor^(n-1)`, at most
`backoff_max`; the count starts over once the service has stayed ready for `stable` seconds.
Crash-loop guard: when a restart is needed and `crash_loop.restarts` restarts already happened
within `crash_loop.window`, the watchdog stops the service, says why, and exits 1.

Attach mode (`--pid`): the watchdog never signals a process it did not start. When a rule calls
for a restart it emits `restart_needed` (a warning, once per reason until the condition clears);
with `restart.command` (`--restart-cmd`, e.g. `systemctl restart tts`) it runs that command
instead — with the same backoff and crash-loop guard — then waits for readiness and follows the
service to the PID now listening on the URL's port (memory rules pause if it cannot be found).
When an attached process ends and there is no restart command, the watchdog alerts and exits 1.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from urllib.parse import urlsplit

import psutil

from monitor.nvml import NvmlSampler
from monitor.sampleloop import SampleLoop
from monitor.samplers import ProcessTreeSampler, ServiceStatsSampler, SystemCpuSampler
from monitor.watch.config import WatchConfig
from monitor.watch.events import EventLog
from monitor.watch.probes import CanaryRunner, Prober, Target
from monitor.watch.process import AttachedService, SpawnedService, listener_pid
from monitor.watch.rules import (Action, ActionKind, CanaryFailures, HealthProbeFailures, MemoryOverThreshold,
                                 MemoryTrend, Phase, ProcessExited, Recent, Rule, StartTimeout, evaluate, memory_value)
from monitor.watch.state import WatchState
from monitor.watch.systemd import SystemdNotifier

KILL_WAIT_S = 10.0  # after SIGKILL, how long to wait for the exit status before giving up on it


def build_rules(cfg: WatchConfig) -> list[Rule]:
    """The configured rules, in the order their restarts take precedence."""
    rules: list[Rule] = [ProcessExited(), StartTimeout(cfg.health.start_timeout)]
    for source in ("rss", "gpu"):
        rule = getattr(cfg.memory, source)
        if rule.max is not None:
            rules.append(MemoryOverThreshold(source, rule.max, rule.consecutive))
    for source in ("rss", "gpu"):
        rule = getattr(cfg.memory, source)
        if rule.max is not None and cfg.memory.trend.horizon > 0:
            t = cfg.memory.trend
            rules.append(MemoryTrend(source, rule.max, t.window, t.horizon, t.min_samples))
    rules.append(HealthProbeFailures(cfg.health.failures))
    if cfg.canary.restart_after:
        rules.append(CanaryFailures(cfg.canary.restart_after))
    return rules


class Supervisor:
    """Supervises one service (see the module docstring). `run()` returns the exit code."""

    def __init__(self, cfg: WatchConfig, events: EventLog, *, notifier: SystemdNotifier | None = None,
                 stdout_sink: Callable[[str], None] | None = None, env: dict[str, str] | None = None):
        self.cfg = cfg
        self.events = events
        self.notifier = notifier or SystemdNotifier({})
        self.rules = build_rules(cfg)
        self.state = WatchState()
        self.service = SpawnedService(cfg.command, env=env, stdout_sink=stdout_sink) if cfg.spawns else AttachedService(cfg.pid)
        self.phase = Phase.STARTING
        self.incarnation = 0
        self.url = cfg.url.rstrip("/") if cfg.url else None
        self.ram_total_bytes = psutil.virtual_memory().total
        hz = cfg.sample_hz
        keep = int(cfg.memory.trend.window * hz) + max(cfg.memory.rss.consecutive, cfg.memory.gpu.consecutive) + 10
        self.window: deque[dict] = deque(maxlen=keep)
        self.probes: deque = deque(maxlen=max(cfg.health.failures, 10))
        self.canary_ok: deque[bool] = deque(maxlen=max(cfg.canary.restart_after or 1, 10))
        self.latest_row: dict | None = None
        self.loop: SampleLoop | None = None
        self.inbox: deque = deque()
        self.restart_times: deque[float] = deque(maxlen=cfg.restart.crash_loop.restarts + 1)
        self.in_a_row = 0
        self.started_t: float | None = None
        self.ready_t: float | None = None
        self.trigger: dict | None = None
        self.deadline: float | None = None
        self.killed = False
        self.backoff_until: float | None = None
        self.restart_proc: subprocess.Popen | None = None
        self.final_phase = Phase.STOPPED
        self.exit_code = 0
        self.ready_seen = False
        self.ever_ready = False
        self.alerted: set[str] = set()
        self.at_ready: dict[str, float] = {}
        self.stop_reason: str | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._target = Target(0, self.url, self.phase)
        self.observers = [Prober(self.target, cfg.health, self._probe_sink)]
        if cfg.canary.every > 0:
            self.observers.append(CanaryRunner(self.target, cfg.canary, cfg.api_key, self._canary_sink))

    # -- what other threads call ----------------------------------------------------------
    def target(self) -> Target:
        return self._target

    def _probe_sink(self, incarnation: int, kind: str, probe) -> None:
        self.inbox.append(("probe", incarnation, kind, probe))

    def _canary_sink(self, incarnation: int, result) -> None:
        self.inbox.append(("canary", incarnation, None, result))

    def request_stop(self, reason: str = "stop requested") -> None:
        """Ask the loop to drain the service and return (safe from a signal handler or another thread)."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self._stop.set()
        self._wake.set()

    def pids(self) -> set[int]:
        """The service's process tree now (for per-process GPU memory)."""
        pid = self.service.pid
        if pid is None:
            return set()
        try:
            root = psutil.Process(pid)
            return {pid, *(c.pid for c in root.children(recursive=True))}
        except psutil.Error:
            return set()

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> int:
        mode = f"supervising {' '.join(self.cfg.command)}" if self.cfg.spawns else f"attached to PID {self.cfg.pid}"
        self.events.emit("watch_start", "info", f"{mode}; sampling at {self.cfg.sample_hz:g} Hz",
                         rules=[r.name for r in self.rules], url=self.url)
        for o in self.observers:
            o.start()
        if self.cfg.spawns:
            self._start(time.time())
        else:
            self._attach(time.time())
        period = 1.0 / self.cfg.sample_hz
        t0 = time.monotonic()
        end = t0 + self.cfg.run_for if self.cfg.run_for else None
        k = 0
        try:
            while self.phase not in (Phase.STOPPED, Phase.GAVE_UP):
                if end is not None and time.monotonic() >= end:
                    self.request_stop(f"--run-for {self.cfg.run_for:g} s elapsed")
                self.tick(time.time())
                self.notifier.ping()
                k = max(k + 1, int((time.monotonic() - t0) / period) + 1)
                self._wake.wait(max(0.0, t0 + k * period - time.monotonic()))
                self._wake.clear()
        finally:
            self._close()
        return self.exit_code

    def tick(self, now: float) -> None:
        """One step of the loop (see the module docstring)."""
        if self._stop.is_set() and self.phase not in (Phase.STOPPING, Phase.STOPPED, Phase.GAVE_UP):
            self._begin_stop(now, self.stop_reason or "stop requested", Phase.STOPPED, 0)
        has_process = self.phase in (Phase.STARTING, Phase.RUNNING, Phase.DRAINING, Phase.STOPPING)
        exited, code = self.service.poll() if has_process else (False, None)
        if has_process and self.loop is not None:
            self.latest_row = self.loop.tick()
            if self.phase is Phase.RUNNING:
                self.window.append(self.latest_row)
                self._note_memory(self.latest_row)
        self._read_inbox()
        self._learn_url()
        if self.phase in (Phase.STARTING, Phase.RUNNING):
            self._judge(now, exited, code)
        elif self.phase in (Phase.DRAINING, Phase.STOPPING):
            self._drain_step(now, exited, code)
        elif self.phase is Phase.BACKOFF and now >= (self.backoff_until or 0):
            if self.cfg.spawns:
                self._start(now)
            else:
                self._run_restart_command(now)
        elif self.phase is Phase.RESTARTING:
            self._restart_command_step(now)
        self._publish()

    # -- judging -------------------------------------------------------------------------------
    def _judge(self, now: float, exited: bool, code: int | None) -> None:
        recent = Recent(now=now, phase=self.phase, samples=tuple(self.window), probes=tuple(self.probes),
                        canary_ok=tuple(self.canary_ok), exited=exited, exit_code=code, started_t=self.started_t,
                        ready_t=self.ready_t, ram_total_bytes=self.ram_total_bytes, at_ready=dict(self.at_ready))
        actions = evaluate(self.rules, recent)
        restart = next((a for a in actions if a.kind is ActionKind.RESTART), None)
        if restart is not None:
            self._restart_needed(restart, now, exited, code)
            return
        self.alerted.clear()
        if self.phase is Phase.STARTING and self.ready_seen:
            self._ready(now)
        elif self.phase is Phase.RUNNING and self.in_a_row and now - (self.ready_t or now) >= self.cfg.restart.stable:
            self.in_a_row = 0

    def _restart_needed(self, action: Action, now: float, exited: bool, code: int | None) -> None:
        pid = self.service.pid
        fields = {"reason": action.reason, "pid": pid, "values": action.values}
        if exited:
            self.events.emit("exit", "error", f"PID {pid}: {action.message}", pid=pid, exit_code=code, expected=False)
        can_restart = self.cfg.spawns or self.cfg.restart.command
        if not can_restart:
            if exited:
                self.events.emit("gave_up", "critical", f"the watched process {pid} is gone and the watchdog cannot restart "
                                 "a process it did not start (give --restart-cmd); exiting", **fields)
                self._finish(Phase.GAVE_UP, 1)
            elif action.reason not in self.alerted:
                self.alerted.add(action.reason)
                self.events.emit("restart_needed", "warning", f"{action.message}; not restarting a process it did not "
                                 "start (give --restart-cmd)", **fields)
            return
        window = self.cfg.restart.crash_loop.window
        recent = [t for t in self.restart_times if now - t <= window]
        if len(recent) >= self.cfg.restart.crash_loop.restarts:
            self.events.emit("crash_loop", "critical", f"{len(recent)} restarts within {window:g} s and the service needs "
                             f"another ({action.reason}: {action.message}); not restarting, exiting with code 1", **fields)
            self._begin_stop(now, "crash loop", Phase.GAVE_UP, 1, alive=not exited)
            return
        self.restart_times.append(now)
        self.in_a_row += 1
        r = self.cfg.restart
        backoff = min(r.backoff_max, r.backoff * r.backoff_factor ** (self.in_a_row - 1))
        self.state.count("restarts", action.reason)
        self.trigger = {"reason": action.reason, "t": now, "backoff_s": backoff}
        self.events.emit("restart", "warning", f"restarting ({action.reason}): {action.message}; restart {self.in_a_row} "
                         f"in a row, backoff {backoff:g} s", attempt=self.in_a_row, backoff_s=backoff, **fields)
        if self.cfg.spawns and not exited:
            self._signal_drain(now, Phase.DRAINING)
        else:
            self._set_phase(Phase.BACKOFF)
            self.backoff_until = now + backoff

    # -- stopping and draining -----------------------------------------------------------------------
    def _signal_drain(self, now: float, phase: Phase) -> None:
        self.service.terminate()
        self.deadline, self.killed = now + self.cfg.restart.grace, False
        self._set_phase(phase)
        self.events.emit("drain", "info", f"SIGTERM to PID {self.service.pid}; SIGKILL to its group after "
                         f"{self.cfg.restart.grace:g} s", pid=self.service.pid, grace_s=self.cfg.restart.grace)

    def _begin_stop(self, now: float, why: str, final: Phase, code: int, alive: bool = True) -> None:
        self.final_phase, self.exit_code = final, code
        if final is Phase.STOPPED:
            self.events.emit("stop", "info", f"stopping: {why}", pid=self.service.pid)
            self.notifier.stopping()
        if self.cfg.spawns and alive and self.phase in (Phase.STARTING, Phase.RUNNING, Phase.DRAINING):
            if self.phase is Phase.DRAINING:
                self._set_phase(Phase.STOPPING)  # already signalled: keep its deadline
            else:
                self._signal_drain(now, Phase.STOPPING)
            return
        if self.restart_proc is not None and self.restart_proc.poll() is None:
            self.restart_proc.kill()
            self.restart_proc.wait(5)
        self._finish(final, code)

    def _drain_step(self, now: float, exited: bool, code: int | None) -> None:
        pid = self.service.pid
        if exited:
            how = "killed after the grace period" if self.killed else "drained"
            self.events.emit("exit", "info", f"PID {pid} {how}, exit code {code}", pid=pid, exit_code=code, expected=True,
                             drain_s=round(now - (self.deadline - self.cfg.restart.grace), 3))
            if self.phase is Phase.STOPPING:
                self._finish(self.final_phase, self.exit_code)
            else:
                self._set_phase(Phase.BACKOFF)
                self.backoff_until = now + (self.trigger or {}).get("backoff_s", 0.0)
            return
        if not self.killed and now >= self.deadline:
            self.service.kill()
            self.killed = True
            self.events.emit("kill", "warning", f"PID {pid} still running {self.cfg.restart.grace:g} s after SIGTERM: "
                             "SIGKILL to its process group", pid=pid)
        elif self.killed and now >= self.deadline + KILL_WAIT_S:
            self.events.emit("kill_failed", "critical", f"PID {pid} survived SIGKILL for {KILL_WAIT_S:g} s", pid=pid)
            self._finish(Phase.GAVE_UP, 1)

    def _finish(self, phase: Phase, code: int) -> None:
        self.exit_code = code
        self._set_phase(phase)

    # -- starting ---------------------------------------------------------------------------------
    def _new_incarnation(self, now: float, pid: int | None) -> None:
        self.incarnation += 1
        self.started_t, self.ready_t, self.ready_seen = now, None, False
        self.window.clear()
        self.probes.clear()
        self.canary_ok.clear()
        self.at_ready.clear()
        self._make_loop(pid)
        self._set_phase(Phase.STARTING)

    def _make_loop(self, pid: int | None) -> None:
        if self.loop is not None:
            for s in self.loop.samplers:
                s.close()
        samplers = [ProcessTreeSampler(pid), SystemCpuSampler(), NvmlSampler([pid] if pid else [])]
        if self.cfg.sample_stats:
            samplers.append(ServiceStatsSampler(self.url, self.cfg.api_key, timeout_s=min(1.0, 0.5 / self.cfg.sample_hz + 0.25)))
        self.loop = SampleLoop(samplers, hz=self.cfg.sample_hz)

    def _start(self, now: float) -> None:
        if self.cfg.url is None:
            self.url = None  # learn it again: a `--port 0` service moves at every start
        try:
            pid = self.service.start()
        except OSError as exc:
            self.service.proc = None
            self._new_incarnation(now, None)
            self.events.emit("start_failed", "error", f"cannot execute {self.cfg.command[0]}: {exc.strerror or exc}")
            return
        self._new_incarnation(now, pid)
        self.events.emit("start", "info", f"started PID {pid} (start {self.incarnation})", pid=pid,
                         incarnation=self.incarnation, argv=self.cfg.command)

    def _attach(self, now: float) -> None:
        self._new_incarnation(now, self.service.pid)
        self.events.emit("attach", "info", f"watching PID {self.service.pid} at {self.url or 'no URL (no probes, no canary)'}",
                         pid=self.service.pid, url=self.url)

    def _learn_url(self) -> None:
        if self.url is None and self.service.announced_url:
            self.url = self.service.announced_url
            self._make_loop(self.service.pid)
            self.events.emit("url", "info", f"service announced {self.url}", url=self.url, pid=self.service.pid)

    def _ready(self, now: float) -> None:
        self.ready_t = now
        self._set_phase(Phase.RUNNING)
        if not self.cfg.spawns and self.incarnation > 1:
            self._follow_listener()
        fields = {"pid": self.service.pid, "url": self.url, "ready_s": round(now - self.started_t, 3)}
        if self.trigger is not None:
            fields.update(reason=self.trigger["reason"], recovery_s=round(now - self.trigger["t"], 3))
        after = f" ({fields['recovery_s']:.1f} s after the {fields['reason']} trigger)" if self.trigger else ""
        self.events.emit("ready", "info", f"PID {self.service.pid} ready at {self.url} in {fields['ready_s']:.1f} s{after}", **fields)
        self.trigger = None
        if not self.ever_ready:
            self.ever_ready = True
            self.notifier.ready(f"service ready at {self.url}")
        else:
            self.notifier.status(f"service ready at {self.url} (restart {self.incarnation - 1})")

    # -- attach mode's restart command --------------------------------------------------------------
    def _run_restart_command(self, now: float) -> None:
        argv = self.cfg.restart.command
        try:
            self.restart_proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        except OSError as exc:
            self.events.emit("restart_command_failed", "error", f"cannot run {argv[0]}: {exc.strerror or exc}")
            self.restart_proc = None
            self._after_restart_command(now)
            return
        self.deadline = now + self.cfg.restart.command_timeout
        self._set_phase(Phase.RESTARTING)
        self.events.emit("restart_command", "info", f"running {' '.join(argv)}", argv=argv, pid=self.restart_proc.pid)

    def _restart_command_step(self, now: float) -> None:
        rc = self.restart_proc.poll()
        if rc is None and now < self.deadline:
            return
        if rc is None:
            self.restart_proc.kill()
            self.restart_proc.wait(5)
            self.events.emit("restart_command_failed", "error", f"restart command still running after "
                             f"{self.cfg.restart.command_timeout:g} s: killed")
        elif rc != 0:
            tail = " ".join(self.restart_proc.stderr.read().decode(errors="replace").split())[-200:]
            self.events.emit("restart_command_failed", "error", f"restart command exited with code {rc}: {tail}", exit_code=rc)
        self.restart_proc.stderr.close()
        self.restart_proc = None
        self._after_restart_command(now)

    def _after_restart_command(self, now: float) -> None:
        self.service.retarget(None)  # unknown until the service is ready: then whoever listens on its port
        self._new_incarnation(now, None)

    def _follow_listener(self) -> None:
        port = urlsplit(self.url).port if self.url else None
        pid = listener_pid(port) if port else None
        self.service.retarget(pid)
        self._make_loop(pid)
        if pid is None:
            self.events.emit("pid_unknown", "warning", f"no process found listening on port {port}: memory rules pause "
                             "until the watchdog is restarted with the new --pid")

    def _note_memory(self, row: dict) -> None:
        """Keep each source's memory at the first sample after ready; publish the limits it resolves."""
        limits = {}
        for source in ("rss", "gpu"):
            limit = getattr(self.cfg.memory, source).max
            used, total = memory_value(row, source, self.ram_total_bytes)
            if source not in self.at_ready and used is not None:
                self.at_ready[source] = float(used)
            if limit is not None:
                limits[source] = limit.resolve(total, self.at_ready.get(source))
        self.state.update(limits_bytes={k: v for k, v in limits.items() if v is not None})

    # -- inbox and publishing -------------------------------------------------------------------------
    def _read_inbox(self) -> None:
        while self.inbox:
            what, incarnation, kind, payload = self.inbox.popleft()
            if incarnation != self.incarnation:
                continue
            if what == "probe":
                if kind == "ready" and self.phase is Phase.STARTING and payload.ok:
                    self.ready_seen = True
                elif kind == "health" and self.phase is Phase.RUNNING:
                    self.probes.append(payload)
                    self.state.count("health_probes", "ok" if payload.ok else "failed")
            elif what == "canary" and self.phase is Phase.RUNNING:
                self._canary(payload)

    def _canary(self, result) -> None:
        previous_ok = self.canary_ok[-1] if self.canary_ok else True
        self.canary_ok.append(result.ok)
        self.state.record_canary(result)
        data = {"canary_t": result.t, "snr_db": result.snr_db, "baseline_snr_db": result.baseline_snr_db, "md5": result.md5,
                "duration_s": result.duration_s, "latency_s": result.latency_s, "status": result.status}
        if result.became_baseline:
            self.events.emit("canary_baseline", "info", f"first clean canary: SNR {result.snr_db:.1f} dB, "
                             f"{result.duration_s:.2f} s, md5 {result.md5}", **data)
        if not result.ok:
            self.events.emit("canary_failed", "warning", "; ".join(result.reasons), failed=result.failed,
                             reasons=result.reasons, pid=self.service.pid, **data)
        elif not previous_ok:
            self.events.emit("canary_recovered", "info", f"canary passes again (SNR {result.snr_db} dB)", **data)

    def _set_phase(self, phase: Phase) -> None:
        self.phase = phase
        self._target = Target(self.incarnation, self.url, phase)

    def _publish(self) -> None:
        self._target = Target(self.incarnation, self.url, self.phase)
        last_probe = self.probes[-1] if self.probes else None
        up = self.phase is Phase.RUNNING and (last_probe is None or last_probe.ok)
        self.state.update(phase=self.phase, pid=self.service.pid, url=self.url, incarnation=self.incarnation,
                          service_up=up, started_t=self.started_t, ready_t=self.ready_t)

    def _close(self) -> None:
        for o in self.observers:
            o.stop()
        if self.loop is not None:
            for s in self.loop.samplers:
                s.close()
        self.events.emit("watch_stop", "info" if self.exit_code == 0 else "error",
                         f"watchdog exits with code {self.exit_code}", exit_code=self.exit_code)
