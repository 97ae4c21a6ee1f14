"""The supervised process, when the watchdog attached to it; and attach mode's restart command.

A spawned service (`vvbench watch -- COMMAND...`) is a `vvbench.core.proc.Child`, one per start
(see `vvbench.monitor.watch.lifecycle`): no shell, its own session, stdout passed line by line to
the CLI's sink (which also yields its `listening on URL` line), stopped by PID.

Attached (`--pid N`): the watchdog reads the process but never signals it. Its exit code is
unknown (it is not our child); `exited` says it ended. Its restart command (`--restart-cmd`) is a
`Child` too, bounded in time: when it finishes it is reaped and what it started (the new service)
keeps running; when it overruns, it is SIGKILLed with its process group.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import psutil

from vvbench.core.errors import TargetError
from vvbench.core.proc import Child

KILL_WAIT_S = 5.0


class AttachedService:
    """A process the watchdog did not start: read, never signalled."""

    url = None  # never announced to us: attach mode is given --url

    def __init__(self, pid: int):
        self.pid: int | None = pid
        self._proc: psutil.Process | None = psutil.Process(pid)

    def poll(self) -> tuple[bool, int | None]:
        """(exited, None); a PID not known yet (after a restart command) counts as running."""
        if self._proc is None:
            return self.pid is not None, None
        try:
            alive = self._proc.is_running() and self._proc.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            alive = False
        return (not alive), None

    def retarget(self, pid: int | None) -> None:
        """Follow the service to a new PID after a restart command (None: PID unknown)."""
        self.pid = pid
        try:
            self._proc = psutil.Process(pid) if pid else None
        except psutil.NoSuchProcess:
            self._proc = None


def listener_pid(port: int) -> int | None:
    """The PID of the process listening on TCP `port` on this host, if this user can see it."""
    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, OSError):
        return None
    for c in conns:
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid:
            return c.pid
    return None


class RestartCommand:
    """Attach mode's restart: the user's command (no shell, e.g. `systemctl restart tts`), bounded in time."""

    def __init__(self, argv: list[str], timeout_s: float):
        self.argv = list(argv)
        self.timeout_s = timeout_s
        self.child: Child | None = None
        self.deadline = 0.0
        self._log: Path | None = None

    @property
    def pid(self) -> int | None:
        return self.child.pid if self.child is not None else None

    def start(self, now: float) -> str | None:
        """Start it; returns why it could not start, or None."""
        fd, log = tempfile.mkstemp(prefix="vvbench-restart-", suffix=".log")
        os.close(fd)
        self._log = Path(log)
        # stderr to a file, not a pipe: a chatty command, or a child of it that keeps the pipe, never blocks the loop
        try:
            self.child = Child(self.argv, stdout=os.devnull, stderr=self._log, name="restart command",
                               tether=False).start()  # what it starts must outlive it
        except TargetError as exc:
            self._done()
            return str(exc)
        self.deadline = now + self.timeout_s
        return None

    def poll(self, now: float) -> tuple[bool, str | None]:
        """(finished, why it failed or None); past the deadline it is killed and counts as failed."""
        if self.child is None:
            return True, None
        rc = self.child.poll()
        if rc is None and now < self.deadline:
            return False, None
        why = None
        if rc is None:
            self.kill()
            why = f"restart command still running after {self.timeout_s:g} s: killed"
        elif rc != 0:
            why = f"restart command exited with code {rc}: {self.child.stderr_tail()[-200:]}"
        self.child.reap(KILL_WAIT_S)  # reaped only: the service it started may share its group and must live on
        self._done()
        return True, why

    def kill(self) -> None:
        if self.child is not None:
            self.child.kill()
            self.child.reap(KILL_WAIT_S)

    def _done(self) -> None:
        self.child = None
        if self._log is not None:
            self._log.unlink(missing_ok=True)
            self._log = None
