"""systemd's notify protocol: `READY=1`, `WATCHDOG=1`, `STATUS=...`, `STOPPING=1` as raw datagrams.

A few lines instead of a dependency (the `sdnotify` package swallows errors). The socket is
`$NOTIFY_SOCKET` (a path, or `@name` for the abstract namespace). Watchdog pings go out at half
of `$WATCHDOG_USEC`, and only when `$WATCHDOG_PID` is unset or is this process — under
`NotifyAccess=main` systemd ignores anyone else. `ping()` is called from the watchdog's own work
loop, never from a timer thread, so a stuck loop stops the pings and systemd notices (it sends
SIGABRT after `WatchdogSec`).

Without `$NOTIFY_SOCKET` (not started by systemd) every call does nothing; `active` says so.
A failed send — including a full socket buffer, since a send never blocks the work loop — is
logged once and never raises.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger("vvbench.watch")


class SystemdNotifier:
    """Sends notify messages to `$NOTIFY_SOCKET` (see the module docstring)."""

    def __init__(self, environ: dict[str, str] | None = None):
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET") or None
        self.address = ("\0" + raw[1:]) if raw and raw.startswith("@") else raw
        self.interval_s: float | None = None
        usec, pid = env.get("WATCHDOG_USEC"), env.get("WATCHDOG_PID")
        try:
            if usec and int(usec) > 0 and (not pid or int(pid) == os.getpid()):
                self.interval_s = int(usec) / 2e6
        except ValueError:
            log.warning("ignoring malformed WATCHDOG_USEC=%r / WATCHDOG_PID=%r", usec, pid)
        self._last_ping = 0.0
        self._failed = False

    @property
    def active(self) -> bool:
        return self.address is not None

    def notify(self, *fields: str) -> bool:
        """Send `fields` as one newline-separated datagram; False when it could not be sent."""
        if self.address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                # never block the work loop on a receiver that does not read: drop instead
                sock.sendto("\n".join(fields).encode(), socket.MSG_DONTWAIT, self.address)
        except OSError as exc:
            if not self._failed:
                log.warning("systemd notify to %s failed: %s", os.environ.get("NOTIFY_SOCKET"), exc)
                self._failed = True
            return False
        return True

    def ready(self, status: str | None = None) -> None:
        self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> None:
        self.notify(f"STATUS={text}")

    def stopping(self) -> None:
        self.notify("STOPPING=1")

    def ping(self, now: float | None = None) -> bool:
        """`WATCHDOG=1` when half the watchdog interval has passed since the last one; True if sent."""
        if self.interval_s is None:
            return False
        now = time.monotonic() if now is None else now
        if now - self._last_ping < self.interval_s:
            return False
        self._last_ping = now
        return self.notify("WATCHDOG=1")
