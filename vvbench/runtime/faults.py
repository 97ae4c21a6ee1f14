"""Injected failures (`RuntimeConfig.faults`): real leaks, crashes and hangs for the watchdog to catch.

- `leak_mb_per_request`: each finished request leaves a filled tensor of that size on the
  model's device, so process RSS (or GPU memory) really grows.
- `crash_after_requests`: once that many requests have finished, the next admission ends the
  process with exit code 70 (`os._exit`, no cleanup, as a segfault or CUDA fault would).
- `hang_after_requests`: once that many requests have finished, the engine loop stops making
  progress; `Engine.stats()["stalled_s"]` grows while work waits, which health checks read.
- `fail_step_after_requests`: once that many requests have finished, every engine step raises
  `InjectedFault` before it computes, as a device gone bad would: the streams of the step fail
  with an error, and after `MAX_FAILED_STEPS` failed steps in a row the engine loop stops
  (`Engine.alive` False, `/healthz` 503) for a watchdog to restart the process.
- `noise_db` is applied by the synthesiser.
"""

from __future__ import annotations

import logging
import os

import torch

log = logging.getLogger("vvbench.faults")

CRASH_EXIT_CODE = 70


class InjectedFault(RuntimeError):
    """The failure `fail_step_after_requests` raises inside an engine step."""


class FaultInjector:
    """Holds leaked memory and decides when to crash or hang."""

    def __init__(self, device: torch.device):
        self.device = device
        self._leaked: list[torch.Tensor] = []
        self.hung = False

    @property
    def leaked_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self._leaked)

    def after_request(self, faults, done: int, empty_cache_every: int) -> None:
        """Called once per finished request, on the engine thread."""
        if faults.leak_mb_per_request > 0:
            n = int(faults.leak_mb_per_request * 1024 * 1024)
            # Filled, not just allocated: untouched pages would not show in RSS.
            self._leaked.append(torch.full((n,), 1, dtype=torch.uint8, device=self.device))
        if empty_cache_every and done % empty_cache_every == 0 and torch.cuda.is_available():
            torch.cuda.empty_cache()

    def maybe_crash(self, done: int, faults) -> None:
        if faults.crash_after_requests is not None and done >= faults.crash_after_requests:
            log.critical("fault crash_after_requests=%d reached: exiting with code %d", faults.crash_after_requests, CRASH_EXIT_CODE)
            logging.shutdown()
            os._exit(CRASH_EXIT_CODE)

    def maybe_fail_step(self, done: int, faults) -> None:
        """Raise `InjectedFault` inside a step once `fail_step_after_requests` requests have finished."""
        if faults.fail_step_after_requests is not None and done >= faults.fail_step_after_requests:
            raise InjectedFault(f"injected fault: fail_step_after_requests={faults.fail_step_after_requests} reached")

    def should_hang(self, done: int, faults) -> bool:
        if faults.hang_after_requests is not None and done >= faults.hang_after_requests:
            if not self.hung:
                log.error("fault hang_after_requests=%d reached: engine loop stops", faults.hang_after_requests)
            self.hung = True
        return self.hung
