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
- `slow_factor`: every engine step (prefill and frame) takes that many times as long. After a
  step's real work, measured to the device's completion, the engine keeps computing — matrix
  products on the model's device, with the same intra-op threads — for `(factor - 1)` times that
  work before the step's chunks are delivered. So time to first audio, end-to-end time and the
  service's CPU (or GPU) use all grow as they would with a slower model; a sleep would leave the
  processor idle and let the other work of the process run in the gap.
- `noise_db` is applied by the synthesiser.
"""

from __future__ import annotations

import logging
import os
import time

import torch

log = logging.getLogger("vvbench.faults")

CRASH_EXIT_CODE = 70
# The stretching work: products of a small square matrix, so the deadline is overshot by a
# fraction of a millisecond at most.
_BURN_N = 128


class InjectedFault(RuntimeError):
    """The failure `fail_step_after_requests` raises inside an engine step."""


class FaultInjector:
    """Holds leaked memory and decides when to crash or hang."""

    def __init__(self, device: torch.device):
        self.device = device
        self._leaked: list[torch.Tensor] = []
        self._burn: tuple[torch.Tensor, torch.Tensor] | None = None
        self.hung = False
        self.stretched_s = 0.0

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

    def stretch(self, work_s: float, faults) -> float:
        """Compute on the model's device for `(slow_factor - 1) * work_s` seconds; returns the seconds added."""
        extra = (faults.slow_factor - 1.0) * work_s
        if extra <= 0.0:
            return 0.0
        if self._burn is None:
            gen = torch.Generator().manual_seed(0)
            a = torch.rand(_BURN_N, _BURN_N, generator=gen).to(self.device) / _BURN_N
            self._burn = (a, torch.empty_like(a))
        a, out = self._burn
        t0 = time.perf_counter()
        deadline = t0 + extra
        with torch.inference_mode():
            while time.perf_counter() < deadline:
                torch.mm(a, a, out=out)
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)  # wait for the work, or the loop only queues kernels
        added = time.perf_counter() - t0
        self.stretched_s += added
        return added
