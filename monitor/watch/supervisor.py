"""The watchdog's work loop: sample, read probes and canaries, apply the rules, act — one tick at a time.

The loop runs on the calling thread at `sample_hz` (ticks on a fixed grid, as `SampleLoop` does;
a tick that overruns skips the grid points it missed). Each tick it samples the service through
the shared samplers (`vvbench.monitor.watch.sampling`: process tree, system CPU, NVML, `/v1/stats`), takes the
results the probe and canary threads left in its inbox, evaluates the rules on the current
incarnation's recent observations, and advances the service's phase:

    STARTING --ready--> RUNNING --rule--> DRAINING --exit--> BACKOFF --delay--> STARTING ...
        \\--exit/timeout-----------/    SIGTERM; SIGKILL to the group after `grace`

Nothing in the loop blocks for long (signals are sent, exits are polled), so the systemd
watchdog ping (`WATCHDOG=1`) goes out from this loop and stops if the loop ever stalls.

Restarts follow `vvbench.monitor.watch.restarts` (exponential backoff; the crash-loop guard: when a
restart is needed and `crash_loop.restarts` restarts already happened within `crash_loop.window`,
the watchdog stops the service, says why, and exits 1).

Attach mode (`--pid`): the watchdog never signals a process it did not start. When a rule calls
for a restart it emits `restart_needed` (a warning, once per reason until the condition clears);
with `restart.command` (`--restart-cmd`, e.g. `systemctl restart tts`) it runs that command
instead — with the same backoff and crash-loop guard — then waits for readiness and follows the
service to the PID now listening on the URL's port (memory rules pause if it cannot be found).
When an attached process ends and there is no restart command, the watchdog alerts and exits 1.
"""

from __future__ import annotations

import shlex
import threading
import time
from collections import deque
from collections.abc import Callable

from vvbench.monitor.samplers import tree_pids
from vvbench.monitor.watch.config import WatchConfig
from vvbench.monitor.watch.events import EventLog
from vvbench.monitor.watch.lifecycle import KILL_WAIT_S, ServiceLifecycle
from vvbench.monitor.watch.probes import CanaryRunner, Prober, Target
from vvbench.monitor.watch.process import AttachedService, RestartCommand
from vvbench.monitor.watch.restarts import RestartPolicy
from vvbench.monitor.watch.rules import Action, ActionKind, Phase, Recent, evaluate
from vvbench.monitor.watch.sampling import ServiceSampling
from vvbench.monitor.watch.state import WatchState
from vvbench.monitor.watch.systemd import SystemdNotifier


class Supervisor(ServiceLifecycle):
    """Supervises one service (see the module docstring). `run()` returns the exit code."""

    def __init__(self, cfg: WatchConfig, events: EventLog, *, notifier: SystemdNotifier | None = None,
                 stdout_sink: Callable[[str], None] | None = None, env: dict[str, str] | None = None):
        self.cfg = cfg
        self.events = events
        self.notifier = notifier or SystemdNotifier({})
        self.rules = cfg.rules()
        self.state = WatchState()
        self.env = env
        self.stdout_sink = stdout_sink or (lambda line: None)  # read even when not shown: it carries the URL
        self.service = self._child() if cfg.spawns else AttachedService(cfg.pid)
        self.restart_command = RestartCommand(cfg.restart.command, cfg.restart.command_timeout) if cfg.restart.command else None
        self.policy = RestartPolicy(cfg.restart)
        self.sampling = ServiceSampling(cfg)
        self.phase = Phase.STARTING
        self.incarnation = 0
        self.url = cfg.url.rstrip("/") if cfg.url else None
        self.probes: deque = deque(maxlen=max(cfg.health.failures, 10))
        self.canary_ok: deque[bool] = deque(maxlen=max(cfg.canary.restart_after or 1, 10))
        self.inbox: deque = deque()
        self.started_t: float | None = None
        self.ready_t: float | None = None
        self.trigger: dict | None = None
        self.deadline = 0.0
        self.killed = False
        self.backoff_until = 0.0
        self.final_phase = Phase.STOPPED
        self.exit_code = 0
        self.ready_seen = False
        self.ever_ready = False
        self.alerted: set[str] = set()
        self.stop_reason: str | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._target = Target(0, self.url, self.phase)
        self.observers = [Prober(self.target, cfg.health, self._probe_sink)]
        if cfg.canary.every > 0:
            self.observers.append(CanaryRunner(self.target, cfg.canary, cfg.api_key, self._canary_sink))

    # -- what other threads call ----------------------------------------------------------
    @property
    def latest_row(self) -> dict | None:
        return self.sampling.latest

    @property
    def ram_total_bytes(self) -> int:
        return self.sampling.ram_total_bytes

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
        return set() if pid is None else tree_pids(pid)

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> int:
        mode = f"supervising {shlex.join(self.cfg.command)}" if self.cfg.spawns else f"attached to PID {self.cfg.pid}"
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
        exited, code = self._poll_service() if has_process else (False, None)
        if has_process:
            self.sampling.tick(running=self.phase is Phase.RUNNING, ready_t=self.ready_t)
        self._read_inbox()
        self._learn_url()
        if self.phase in (Phase.STARTING, Phase.RUNNING):
            self._judge(now, exited, code)
        elif self.phase in (Phase.DRAINING, Phase.STOPPING):
            self._drain_step(now, exited, code)
        elif self.phase is Phase.BACKOFF and now >= self.backoff_until:
            if self.cfg.spawns:
                self._start(now)
            else:
                self._run_restart_command(now)
        elif self.phase is Phase.RESTARTING:
            self._restart_command_step(now)
        self._publish()

    # -- judging -------------------------------------------------------------------------------
    def _judge(self, now: float, exited: bool, code: int | None) -> None:
        recent = Recent(now=now, phase=self.phase, samples=tuple(self.sampling.window), probes=tuple(self.probes),
                        canary_ok=tuple(self.canary_ok), exited=exited, exit_code=code, started_t=self.started_t,
                        ready_t=self.ready_t, ram_total_bytes=self.ram_total_bytes, baseline=dict(self.sampling.baseline.bytes))
        actions = evaluate(self.rules, recent)
        restart = next((a for a in actions if a.kind is ActionKind.RESTART), None)
        if restart is not None:
            self._restart_needed(restart, now, exited, code)
            return
        self.alerted.clear()
        if self.phase is Phase.STARTING and self.ready_seen:
            self._ready(now)
        elif self.phase is Phase.RUNNING:
            self.policy.running(now, self.ready_t)

    def _restart_needed(self, action: Action, now: float, exited: bool, code: int | None) -> None:
        pid = self.service.pid
        fields = {"reason": action.reason, "pid": pid, "values": action.values}
        if action.reason == "start_timeout" and self.url is None:
            action = Action(action.kind, action.reason, action.message + "; no URL to probe: give --url (the service "
                            "printed no 'listening on URL' line)", action.values)
        exit_t = None
        if exited:
            exit_t = self.events.emit("exit", "error", f"PID {pid}: {action.message}", pid=pid, exit_code=code, expected=False)["t"]
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
        decision = self.policy.decide(now)
        if not decision.allowed:
            self.events.emit("crash_loop", "critical", f"{decision.recent_restarts} restarts within {decision.window_s:g} s "
                             f"and the service needs another ({action.reason}: {action.message}); not restarting, "
                             "exiting with code 1", **fields)
            self._begin_stop(now, "crash loop", Phase.GAVE_UP, 1, alive=not exited)
            return
        backoff = decision.backoff_s
        self.state.count("restarts", action.reason)
        self.trigger = {"reason": action.reason, "t": now, "backoff_s": backoff}
        self.events.emit("restart", "warning", f"restarting ({action.reason}): {action.message}; restart {decision.attempt} "
                         f"in a row, backoff {backoff:g} s", attempt=decision.attempt, backoff_s=backoff, **fields)
        if self.cfg.spawns and not exited:
            self._signal_drain(now, Phase.DRAINING)
        else:
            self._set_phase(Phase.BACKOFF)
            self.backoff_until = max(now, exit_t or now) + backoff  # waited from the exit as recorded, not the tick's start

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
        if self.restart_command is not None:
            self.restart_command.kill()
        self._finish(final, code)

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

    def _publish(self) -> None:
        self._target = Target(self.incarnation, self.url, self.phase)
        last_probe = self.probes[-1] if self.probes else None
        up = self.phase is Phase.RUNNING and (last_probe is None or last_probe.ok)
        self.state.update(phase=self.phase, service_up=up, started_t=self.started_t, limits_bytes=self.sampling.limits_bytes)

    def _close(self) -> None:
        if self.cfg.spawns and self.phase not in (Phase.STOPPED, Phase.GAVE_UP):  # the loop died: take the service down with it
            self.service.kill()
            self.service.reap(KILL_WAIT_S)
        for o in self.observers:
            o.stop()
        self.sampling.close()
        self.events.emit("watch_stop", "info" if self.exit_code == 0 else "error",
                         f"watchdog exits with code {self.exit_code}", exit_code=self.exit_code)
