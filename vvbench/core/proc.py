"""Child processes, one way: start an argv, read the URL it announces, wait until ready, stop it by PID.

Every process vvbench starts and stops goes through `Child`: the targets, the load processes,
the watchdog's service and its restart command, `vvbench run --worker`, the benchmarks and the
test helpers. The contract:

- **start**: the argv runs without a shell, in a new session, so it leads its own process group
  (group id = its PID) and a Ctrl-C in our terminal reaches only us. `env` adds to our
  environment (a value of None removes that variable). stdin is /dev/null; stdout is a log
  file (appended to), a line sink (a thread reads it line by line and hands each line on: the
  watchdog's pass-through), or inherited; stderr is a log file, `STDOUT` (stdout's file) or
  inherited. Never a pipe nobody reads: a chatty child would fill it and block. A program that
  cannot be executed is a `TargetError`.
- **announce**: `LISTENING` is the one marker. `vvbench serve` prints `vvbench serve: listening
  on URL`, the fake server `fake-tts: listening on URL`, and the watchdog accepts any command
  that prints `listening on http://...`; `announced_url(line)` reads all of them, and `url` is
  the first the child printed since this start.
- **ready**: `wait_url` and `wait_ready` block until the announcement, or until a URL answers
  200; they raise a one-line `TargetError` when the child exits first (with the last lines of
  its stderr) or the time runs out.
- **stop** (`stop(grace_s)`, blocking): SIGTERM to the leader's PID, up to `grace_s` for it to
  exit, SIGKILL to its process group, reap. The loop that must never block (the watchdog's)
  uses the same pieces one at a time: `terminate`, `poll`, `kill`, `reap(timeout_s)`.

SIGTERM goes to the leader only, SIGKILL to the group. The leader owns its drain: a service
with helper processes (model workers, an engine process) tells them when to stop once its
in-flight requests are done, and a SIGTERM to every member at once would stop the helpers under
the leader's in-flight work — the watchdog's drain would fail the requests it waits for. That is
also what `docker stop`, Kubernetes and systemd's `KillMode=mixed` (our unit's) do. A wrapper
shell that does not `exec` its server dies of the SIGTERM without passing it on, so its server
gets no drain (write `exec server ...` in wrappers); it does not leak either: `stop` (and the
watchdog after any exit) SIGKILLs the group once the leader is gone, before reaping it.

The group is signalled only while the leader is not yet reaped: an exited leader stays a zombie
that holds its PID, and with it the group id, so the number cannot have been given to another
process. That is why `poll` never reaps (`waitid` with `WNOWAIT`) and only `reap` does.

**tether**: a child must not outlive us when we die without stopping it (SIGKILL, OOM kill, a
power-cut test): its own session keeps it out of our process group, so nothing else would reach
it, and a `vvbench tune` worker killed mid-trial would leave its service running forever on a
port. So every child gets the read end of a pipe whose only write end we hold (`TETHER_ENV`
names the descriptor), except one started with `tether=False`: a restart command, whose whole
point is a service that outlives it (`nohup serve &` would inherit the read end, and stop once
the command had been reaped). We close it once the child is reaped; when we die, the kernel closes it.
A vvbench program calls `follow_tether()` first thing: a thread blocks on the read end and, at
end of file, sends the program SIGTERM, its ordinary drain. End of file is sticky, so a parent
that dies while the child is still importing is noticed as soon as the thread starts. Programs
that are not vvbench's ignore the variable and the descriptor. A pipe rather than a parent PID,
because a PID is ambiguous through a wrapper shell, and PR_SET_PDEATHSIG fires when the
spawning *thread* exits.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from vvbench.core.errors import TargetError
from vvbench.core.net import probe

LISTENING = "listening on "
_ANNOUNCED = re.compile(re.escape(LISTENING) + r"(https?://\S+)")
STDOUT = "stdout"  # `stderr=STDOUT`: both streams into stdout's log file
POLL_S = 0.05
KILL_WAIT_S = 10.0  # after SIGKILL, how long `stop` waits for the exit status
TAIL_LINES = 3
TETHER_ENV = "VVBENCH_TETHER_FD"  # the read end of the pipe whose write end only the parent holds


def announced_url(line: str) -> str | None:
    """The base URL a `... listening on http://HOST:PORT` line announces (no trailing slash), else None."""
    m = _ANNOUNCED.search(line)
    return m.group(1).rstrip("/") if m else None


def _exit_code(info: os.waitid_result) -> int:
    # the same convention as subprocess: negative = killed by that signal
    return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status


class Child:
    """One child process (see the module docstring for the contract)."""

    def __init__(self, argv: list[str], *, env: dict[str, str | None] | None = None,
                 stdout: str | Path | Callable[[str], None] | None = None, stderr: str | Path | None = None,
                 cwd: str | Path | None = None, name: str | None = None, tether: bool = True):
        if not argv:
            raise TargetError("no command to start")
        self.argv = [str(a) for a in argv]
        self.env = env
        self.sink = stdout if callable(stdout) else None
        self.stdout_path = None if stdout is None or callable(stdout) else Path(stdout)
        self._merge = stderr == STDOUT
        self.stderr_path = self.stdout_path if self._merge else (None if stderr is None else Path(stderr))
        self.cwd = cwd
        self.name = name or Path(self.argv[0]).name
        self.returncode: int | None = None  # set once reaped
        self._proc: subprocess.Popen | None = None
        self._url: str | None = None
        self._offsets = {"stdout": 0, "stderr": 0}  # where this start's output begins in each (appended) log
        self._pending = b""
        self.tethered = tether  # False: what it starts is meant to outlive it (a restart command)
        self._tether: int | None = None  # the write end (see "tether" in the module docstring)

    # -- starting --------------------------------------------------------------------------------------
    def start(self) -> Child:
        """Start the argv (see the module docstring); TargetError if it cannot be executed. Returns self."""
        if self._proc is not None:
            raise TargetError(f"{self.name} was started already (a Child is one run of its argv)")
        for which, path in (("stdout", self.stdout_path), ("stderr", self.stderr_path)):
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._offsets[which] = path.stat().st_size if path.exists() else 0
        with contextlib.ExitStack() as files:  # closed once the child has its own copies
            out = files.enter_context(open(self.stdout_path, "ab")) if self.stdout_path else (subprocess.PIPE if self.sink else None)
            if self._merge:
                err = subprocess.STDOUT
            else:
                err = files.enter_context(open(self.stderr_path, "ab")) if self.stderr_path else None
            tether_r, self._tether = os.pipe() if self.tethered else (None, None)  # non-inheritable: the child gets the read end alone
            try:
                self._proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=self.cwd,
                                              env=self._environ(tether_r), start_new_session=True,
                                              pass_fds=() if tether_r is None else (tether_r,),
                                              text=self.sink is not None, errors="replace" if self.sink else None,
                                              bufsize=1 if self.sink else -1)
            except OSError as exc:
                self._untether()
                raise TargetError(f"cannot start {self.argv[0]!r}: {exc.strerror or exc}") from None
            finally:
                if tether_r is not None:
                    os.close(tether_r)
        if self.sink is not None:
            threading.Thread(target=self._read, args=(self._proc.stdout,), name=f"{self.name}-stdout", daemon=True).start()
        return self

    def _environ(self, tether_fd: int | None) -> dict[str, str]:
        # untethered: ours without the variable, so the child does not follow a tether of ours it was not given
        merged = {**os.environ, **(self.env or {}), TETHER_ENV: None if tether_fd is None else str(tether_fd)}
        return {k: v for k, v in merged.items() if v is not None}

    def _untether(self) -> None:
        if self._tether is not None:
            os.close(self._tether)
            self._tether = None

    def _read(self, stream) -> None:
        for line in stream:  # ends when the child (and every holder of the pipe) closes it
            self._url = self._url or announced_url(line)
            self.sink(line)
        stream.close()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    # -- what it says ----------------------------------------------------------------------------------
    @property
    def url(self) -> str | None:
        """The first URL the child announced since `start` (None before; stdout inherited: never known)."""
        if self._url is None and self.stdout_path is not None and self._proc is not None:
            with open(self.stdout_path, "rb") as f:
                f.seek(self._offsets["stdout"])
                data = f.read()
            self._offsets["stdout"] += len(data)
            *lines, self._pending = (self._pending + data).split(b"\n")
            self._url = next((u for u in (announced_url(x.decode(errors="replace")) for x in lines) if u), None)
        return self._url

    def stderr_tail(self, lines: int = TAIL_LINES) -> str:
        """The last non-empty lines of this start's stderr log, joined into one line ('' when not logged)."""
        if self.stderr_path is None or not self.stderr_path.exists():
            return ""
        with open(self.stderr_path, "rb") as f:
            f.seek(max(self._offsets["stderr"], f.seek(0, os.SEEK_END) - 65536))
            text = f.read().decode(errors="replace")
        return " | ".join([x.strip() for x in text.splitlines() if x.strip()][-lines:])

    # -- waiting ---------------------------------------------------------------------------------------
    def _until(self, done: Callable[[], bool], timeout_s: float, when: str, late: Callable[[], str]) -> None:
        deadline = time.monotonic() + timeout_s
        while not done():
            code = self.poll()
            if code is not None:
                tail = self.stderr_tail()
                raise TargetError(f"{self.name} exited with code {code} {when}" + (f": {tail}" if tail else ""))
            if time.monotonic() > deadline:
                raise TargetError(late())
            time.sleep(POLL_S)

    def wait_url(self, timeout_s: float) -> str:
        """Block until the child announces its URL and return it (TargetError if it exits or the time runs out)."""
        self._until(lambda: self.url is not None, timeout_s, "before announcing its URL",
                    lambda: f"{self.name} did not announce its URL ('{LISTENING}http://...') within {timeout_s:g} s")
        return self.url

    def wait_ready(self, ready_url: str, timeout_s: float) -> None:
        """Poll `ready_url` until it answers 200 (TargetError if the child exits or the time runs out)."""
        last: list[int | None] = [None]

        def ready() -> bool:
            last[0] = probe(ready_url, 1.0)[0]
            return last[0] == 200
        self._until(ready, timeout_s, "before it was ready",
                    lambda: f"{self.name} not ready at {ready_url} within {timeout_s:g} s (last answer: {last[0]})")

    # -- stopping: the non-blocking pieces, then stop() ----------------------------------------------------------
    def poll(self) -> int | None:
        """The exit code once the leader has exited (negative: killed by that signal), else None; never reaps."""
        if self._proc is None or self.returncode is not None:
            return self.returncode
        try:
            info = os.waitid(os.P_PID, self._proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:  # reaped behind our back (by subprocess itself): only Popen knows the status
            self.returncode = self._proc.poll()
            if self.returncode is not None:
                self._untether()
            return self.returncode
        return None if info is None else _exit_code(info)

    @property
    def running(self) -> bool:
        return self._proc is not None and self.poll() is None

    def terminate(self) -> None:
        """SIGTERM to the leader's PID: the start of its graceful drain (nothing if it has exited)."""
        if self.running:
            try:
                os.kill(self._proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        """SIGKILL to the leader's process group — the leader if it still runs, and whatever is left of it —
        only while the leader is unreaped; the leader alone if its group cannot be signalled."""
        if self._proc is None or self.returncode is not None:
            return
        try:
            os.killpg(self._proc.pid, signal.SIGKILL)
        except OSError:  # it left its group (setsid), or no member of it may be signalled by us
            try:
                os.kill(self._proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def reap(self, timeout_s: float | None = 0.0) -> int | None:
        """Wait up to `timeout_s` (None: no bound) for the leader's exit and collect it; its code, or None if still running."""
        if self._proc is None or self.returncode is not None:
            return self.returncode
        try:
            self.returncode = self._proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None
        self._untether()
        return self.returncode

    def stop(self, grace_s: float = 30.0) -> int | None:
        """SIGTERM, up to `grace_s` for the exit, SIGKILL to the group, reap; the exit code (None: not started or unkillable)."""
        if self._proc is None or self.returncode is not None:
            return self.returncode
        self.terminate()
        deadline = time.monotonic() + grace_s
        while self.poll() is None and time.monotonic() < deadline:
            time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))
        self.kill()  # the leader if it outlived the grace period; in any case what it left in its group
        return self.reap(KILL_WAIT_S)

    def __enter__(self) -> Child:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def take_tether() -> int | None:
    """The tether a vvbench parent gave us (`TETHER_ENV`), or None. The variable is taken out of our environment,
    so our own children do not inherit it; a variable without its descriptor (a stale one) is no tether."""
    value = os.environ.pop(TETHER_ENV, None)
    try:
        fd = int(value) if value is not None else -1
        if fd < 0 or not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return None
    except (ValueError, OSError):
        return None
    os.set_inheritable(fd, False)
    return fd


def tether_gone(parent: int) -> None:
    """What a tethered program does when its parent is gone: say so, and SIGTERM itself (its own drain)."""
    logging.getLogger("vvbench.proc").warning("the vvbench process that started this one (PID %d) is gone: stopping", parent)
    os.kill(os.getpid(), signal.SIGTERM)


def follow_tether() -> bool:
    """If a vvbench parent tethered us, stop when it is gone: a daemon thread waits for end of file on the tether,
    then `tether_gone`. True when tethered. (The load process, all greenlets, waits in a greenlet instead.)"""
    fd = take_tether()
    if fd is None:
        return False
    parent = os.getppid()

    def wait() -> None:
        try:
            while os.read(fd, 64):  # the parent never writes: this returns at end of file, when it is gone
                pass
        except OSError:
            return
        tether_gone(parent)
    threading.Thread(target=wait, name="tether", daemon=True).start()
    return True
