"""The supervised process: one the watchdog spawned (its own process group), or one it attached to.

Spawned (`vvbench watch -- COMMAND...`):
- the command runs without a shell in a new session, so its process group is its own: a Ctrl-C
  in the watchdog's terminal reaches only the watchdog, which then drains the service in order;
- its stdout is read line by line (forwarded to the sink the CLI gives, the watchdog's stdout)
  so that a `... listening on http://HOST:PORT` line (what `vvbench serve --port 0` prints)
  tells the watchdog the service's URL when none was configured; stderr is inherited;
- stopping is by PID: SIGTERM to the service's PID (a graceful drain), and after the grace
  period SIGKILL to its process group, so helpers it started die with it. The group is only
  signalled while its leader is not yet reaped, so a recycled PID can never be hit.

Attached (`--pid N`): the watchdog reads the process but never signals it. Its exit code is
unknown (it is not our child); `exited` says it ended.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable

import psutil

LISTENING = re.compile(r"listening on (https?://\S+)")


class SpawnedService:
    """A child started by the watchdog (see the module docstring)."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None,
                 stdout_sink: Callable[[str], None] | None = None):
        self.argv = list(argv)
        self.env = env
        self.stdout_sink = stdout_sink
        self.proc: subprocess.Popen | None = None
        self.announced_url: str | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> int:
        """Start the command; returns its PID (OSError if it cannot be executed)."""
        self.announced_url = None  # each start announces its own URL (with --port 0, another port each time)
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=None,
                                     env=self.env, start_new_session=True, text=True, errors="replace", bufsize=1)
        self._reader = threading.Thread(target=self._read, args=(self.proc,), name="vvbench-child-stdout", daemon=True)
        self._reader.start()
        return self.proc.pid

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:  # ends when the child (and every holder of the pipe) closes it
            if self.announced_url is None and proc is self.proc:  # not a previous incarnation's late line
                m = LISTENING.search(line)
                if m:
                    self.announced_url = m.group(1).rstrip("/")
            if self.stdout_sink is not None:
                self.stdout_sink(line)
        proc.stdout.close()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def poll(self) -> tuple[bool, int | None]:
        """(exited, exit code; negative = killed by that signal)."""
        if self.proc is None:
            return True, None
        rc = self.proc.poll()
        return rc is not None, rc

    def terminate(self) -> None:
        """SIGTERM to the service's PID: start its graceful drain."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        """SIGKILL to the service's process group (its leader still unreaped, so the group is still ours)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def reap(self, timeout_s: float = 5.0) -> int | None:
        """Wait (bounded) for the exit status; None if it is still running."""
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None


class AttachedService:
    """A process the watchdog did not start: read, never signalled."""

    announced_url = None

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
        self.proc: subprocess.Popen | None = None
        self.deadline = 0.0

    def start(self, now: float) -> str | None:
        """Start it; returns why it could not start, or None."""
        try:
            # stderr to a file, not a pipe: a chatty command, or a child of it that keeps the pipe, never blocks the loop
            self._stderr = tempfile.TemporaryFile()
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._stderr)
        except OSError as exc:
            self.proc = None
            self._stderr.close()
            return f"cannot run {self.argv[0]}: {exc.strerror or exc}"
        self.deadline = now + self.timeout_s
        return None

    def poll(self, now: float) -> tuple[bool, str | None]:
        """(finished, why it failed or None); past the deadline it is killed and counts as failed."""
        if self.proc is None:
            return True, None
        rc = self.proc.poll()
        if rc is None and now < self.deadline:
            return False, None
        why = None
        if rc is None:
            self.kill()
            why = f"restart command still running after {self.timeout_s:g} s: killed"
        elif rc != 0:
            self._stderr.seek(0)
            tail = " ".join(self._stderr.read().decode(errors="replace").split())[-200:]
            why = f"restart command exited with code {rc}: {tail}"
        self._stderr.close()
        self.proc = None
        return True, why

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
