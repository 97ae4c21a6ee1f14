"""A `vvbench watch` process for the watchdog benchmarks: start it, read its JSONL events, stop it by PID."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vvbench.core.proc import STDOUT, Child  # noqa: E402


def start(args: list[str], events: Path, log: Path, command: list[str]) -> Child:
    """`vvbench watch --events EVENTS ARGS -- COMMAND` as a `Child`, its output to `log`."""
    argv = [sys.executable, "-m", "vvbench.cli", "watch", "--events", str(events), *args, "--", *command]
    return Child(argv, stdout=log, stderr=STDOUT, cwd=ROOT, name="vvbench watch").start()


def read_events(path: Path) -> list[dict]:
    """The complete records so far (a line still being written is skipped)."""
    return [json.loads(x) for x in path.read_text().splitlines() if x.endswith("}")] if path.exists() else []


def wait_event(path: Path, kind: str, timeout_s: float, proc: Child, count: int = 1) -> dict:
    """The `count`-th event of `kind`; exits the benchmark if the watchdog exits or time runs out first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = [e for e in read_events(path) if e["kind"] == kind]
        if len(found) >= count:
            return found[count - 1]
        if proc.poll() is not None:
            raise SystemExit(f"watchdog exited with {proc.poll()} before {count} {kind} event(s)")
        time.sleep(0.05)
    raise SystemExit(f"no {count} {kind} event(s) within {timeout_s} s")


def stop(proc: Child, grace_s: float) -> None:
    """SIGTERM (the watchdog drains its service), then SIGKILL after `grace_s`."""
    proc.stop(grace_s)
