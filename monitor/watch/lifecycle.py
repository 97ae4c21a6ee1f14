"""The supervised service's life: start (or attach), readiness, drain, kill, and attach mode's restart command.

The phase transitions the `Supervisor` (`vvbench.monitor.watch.supervisor`) drives, kept apart from its
judging: this class owns no state of its own — it is the part of the supervisor that acts on the
process, and it reads and sets the supervisor's fields (`phase`, `incarnation`, `url`,
`started_t`, `ready_t`, `deadline`, `killed`, `backoff_until`, ...), all defined in
`Supervisor.__init__`. Every transition is one event; nothing here blocks (signals are sent,
exits are polled on the next tick).

A spawned service is a `vvbench.core.proc.Child`, a new one at every start (so a late stdout
line of the previous one can never announce a URL for this one). Draining: SIGTERM to the
service's PID, `restart.grace` seconds, then SIGKILL to its process group; `KILL_WAIT_S` after
that, a process that still has not exited is given up on (critical). Whenever its leader exits
— drained, killed or crashed — what is left of its group (helpers, or the server under a wrapper
shell) is SIGKILLed before the leader is reaped, so nothing of an old incarnation holds the port
or memory the next one needs.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from vvbench.core.errors import TargetError
from vvbench.core.proc import Child
from vvbench.monitor.watch.probes import Target
from vvbench.monitor.watch.process import listener_pid
from vvbench.monitor.watch.rules import Phase

KILL_WAIT_S = 10.0  # after SIGKILL, how long to wait for the exit status before giving up on it


class ServiceLifecycle:
    """Phase transitions of the supervised service (a base of `Supervisor`; see the module docstring)."""

    def _set_phase(self, phase: Phase) -> None:
        self.phase = phase
        self._target = Target(self.incarnation, self.url, phase)

    def _finish(self, phase: Phase, code: int) -> None:
        self.exit_code = code
        self._set_phase(phase)

    # -- stopping and draining -----------------------------------------------------------------------
    def _signal_drain(self, now: float, phase: Phase) -> None:
        self.service.terminate()
        self.deadline, self.killed = now + self.cfg.restart.grace, False
        self._set_phase(phase)
        self.events.emit("drain", "info", f"SIGTERM to PID {self.service.pid}; SIGKILL to its group after "
                         f"{self.cfg.restart.grace:g} s", pid=self.service.pid, grace_s=self.cfg.restart.grace)

    def _drain_step(self, now: float, exited: bool, code: int | None) -> None:
        pid = self.service.pid
        if exited:
            how = "killed after the grace period" if self.killed else "drained"
            exit_t = self.events.emit("exit", "info", f"PID {pid} {how}, exit code {code}", pid=pid, exit_code=code, expected=True,
                                      drain_s=round(now - (self.deadline - self.cfg.restart.grace), 3))["t"]
            if self.phase is Phase.STOPPING:
                self._finish(self.final_phase, self.exit_code)
            else:
                self._set_phase(Phase.BACKOFF)
                self.backoff_until = max(now, exit_t) + (self.trigger or {}).get("backoff_s", 0.0)  # from the exit as recorded
            return
        if not self.killed and now >= self.deadline:
            self.service.kill()
            self.killed = True
            self.events.emit("kill", "warning", f"PID {pid} still running {self.cfg.restart.grace:g} s after SIGTERM: "
                             "SIGKILL to its process group", pid=pid)
        elif self.killed and now >= self.deadline + KILL_WAIT_S:
            self.events.emit("kill_failed", "critical", f"PID {pid} survived SIGKILL for {KILL_WAIT_S:g} s", pid=pid)
            self._finish(Phase.GAVE_UP, 1)

    # -- the spawned child -------------------------------------------------------------------------------------
    def _child(self) -> Child:
        return Child(self.cfg.command, env=self.env, stdout=self.stdout_sink, name=self.cfg.command[0])

    def _poll_service(self) -> tuple[bool, int | None]:
        """(exited, exit code); a spawned service that exited is swept (its group SIGKILLed) and reaped here."""
        if not self.cfg.spawns:
            return self.service.poll()
        if self.service.pid is None:  # it could not be started
            return True, None
        code = self.service.poll()
        if code is not None:
            self.service.kill()
            self.service.reap(KILL_WAIT_S)
        return code is not None, code

    # -- starting and readiness ---------------------------------------------------------------------------------
    def _new_incarnation(self, now: float, pid: int | None) -> None:
        self.incarnation += 1
        self.started_t, self.ready_t, self.ready_seen = now, None, False
        self.probes.clear()
        self.canary_ok.clear()
        self.sampling.retarget(pid, self.url, new_incarnation=True)
        self._set_phase(Phase.STARTING)

    def _start(self, now: float) -> None:
        if self.cfg.url is None:
            self.url = None  # learn it again: a `--port 0` service moves at every start
        self.service = self._child()
        try:
            pid = self.service.start().pid
        except TargetError as exc:
            self._new_incarnation(now, None)
            self.events.emit("start_failed", "error", str(exc))
            return
        self._new_incarnation(now, pid)
        self.events.emit("start", "info", f"started PID {pid} (start {self.incarnation})", pid=pid,
                         incarnation=self.incarnation, argv=self.cfg.command)

    def _attach(self, now: float) -> None:
        self._new_incarnation(now, self.service.pid)
        self.ready_seen = self.url is None  # already running, and no readiness to probe: judge it from now on
        self.events.emit("attach", "info", f"watching PID {self.service.pid} at {self.url or 'no URL (no probes, no canary)'}",
                         pid=self.service.pid, url=self.url)

    def _learn_url(self) -> None:
        if self.url is None and self.service.url:
            self.url = self.service.url
            self.sampling.retarget(self.service.pid, self.url, new_incarnation=False)
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
        where = self.url or "(no URL to probe)"
        self.events.emit("ready", "info", f"PID {self.service.pid} ready at {where} in {fields['ready_s']:.1f} s{after}", **fields)
        self.trigger = None
        if not self.ever_ready:
            self.ever_ready = True
            self.notifier.ready(f"service ready at {self.url}")
        else:
            self.notifier.status(f"service ready at {self.url} (restart {self.incarnation - 1})")

    # -- attach mode's restart command --------------------------------------------------------------
    def _run_restart_command(self, now: float) -> None:
        why = self.restart_command.start(now)
        if why is not None:
            self.events.emit("restart_command_failed", "error", why)
            self._after_restart_command(now)
            return
        self._set_phase(Phase.RESTARTING)
        self.events.emit("restart_command", "info", f"running {' '.join(self.restart_command.argv)}",
                         argv=self.restart_command.argv, pid=self.restart_command.pid)

    def _restart_command_step(self, now: float) -> None:
        finished, why = self.restart_command.poll(now)
        if not finished:
            return
        if why is not None:
            self.events.emit("restart_command_failed", "error", why)
        self._after_restart_command(now)

    def _after_restart_command(self, now: float) -> None:
        self.service.retarget(None)  # unknown until the service is ready: then whoever listens on its port
        self._new_incarnation(now, None)

    def _follow_listener(self) -> None:
        port = urlsplit(self.url).port if self.url else None
        pid = listener_pid(port) if port else None
        self.service.retarget(pid)
        self.sampling.retarget(pid, self.url, new_incarnation=False)
        if pid is None:
            self.events.emit("pid_unknown", "warning", f"no process found listening on port {port}: memory rules pause "
                             "until the watchdog is restarted with the new --pid")
