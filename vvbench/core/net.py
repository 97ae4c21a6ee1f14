"""Loopback helpers shared by the targets and the load launcher: a free port, a one-shot probe."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the OS's choice; another process may still take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def probe(url: str, timeout_s: float = 2.0) -> tuple[int | None, str | None]:
    """(HTTP status, None) of a GET, or (None, why) when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return resp.status, None
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except urllib.error.URLError as exc:
        return None, str(getattr(exc.reason, "strerror", None) or exc.reason)
    except (OSError, ValueError) as exc:
        return None, str(exc)
