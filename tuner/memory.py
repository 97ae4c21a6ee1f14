"""Pruning by the memory plan: a config predicted over the budget is never started.

`planned_bytes` asks the runtime's memory plan (`vvbench plan`'s arithmetic) what a config needs
on the device the budget applies to: the GPU when any part of the config runs on CUDA (the
largest GPU's total), else the CPU process. The plan is priced for `max_batch` concurrent
streams of the longest audio the tuning scenario can ask for.

Choices where the issue is silent: the longest audio is the scenario's longest text at
`CHARS_PER_AUDIO_S` characters per second of speech (a slow speaking rate, so the estimate errs
high), at least `MIN_AUDIO_MIN`; the budget is one number for the budgeted device, like
`--memory-budget 24GiB` for a 24 GiB card.
"""

from __future__ import annotations

from dataclasses import dataclass

from vvbench.artifacts.scenarios import Scenario
from vvbench.runtime.config import RuntimeConfig

CHARS_PER_AUDIO_S = 12.0
MIN_AUDIO_MIN = 0.1


@dataclass(frozen=True)
class Priced:
    """What the plan says a config needs on the budgeted device."""

    device: str
    bytes: int
    budget_bytes: int | None

    @property
    def over(self) -> bool:
        return self.budget_bytes is not None and self.bytes > self.budget_bytes

    def reason(self) -> str:
        return (f"memory plan: {self.bytes / 2**20:.0f} MiB on {self.device} over the budget of "
                f"{(self.budget_bytes or 0) / 2**20:.0f} MiB (pruned without starting a server)")


def longest_audio_min(scenario: Scenario) -> float:
    """Minutes of audio the scenario's longest text may take (see the module docstring)."""
    chars = max(c.length.max_chars for c in scenario.classes)
    return max(MIN_AUDIO_MIN, chars / CHARS_PER_AUDIO_S / 60.0)


def planned_bytes(config: RuntimeConfig, scenario: Scenario, budget_bytes: int | None, *,
                  cuda_available: bool | None = None) -> Priced:
    """Plan `config` for the scenario and price it on the budgeted device (module docstring)."""
    from vvbench.runtime.plan import memory_plan

    plan = memory_plan(config, streams=config.max_batch, max_audio_min=longest_audio_min(scenario),
                       budget_bytes=budget_bytes, cuda_available=cuda_available)
    gpus = {d: p.total for d, p in plan.devices.items() if d.startswith("cuda")}
    if gpus:
        device = max(gpus, key=gpus.get)
        return Priced(device, gpus[device], budget_bytes)
    return Priced("cpu", plan.devices["cpu"].total, budget_bytes)
