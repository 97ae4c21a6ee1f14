"""Admission by the memory plan: what a request needs, and whether it fits the budget now.

The engine allocates a stream's KV caches whole when it admits it: the prompt plus every planned
frame on the conditional branch, and every frame again on the CFG branch
(`vvbench.runtime.plan.stream_kv_bytes`, the arithmetic `vvbench plan` uses). A request's need
is therefore known exactly before it starts, and nothing it holds grows afterwards; the one
transient that grows with a prompt, a prefill chunk's attention scores, is bounded by the chunk
geometry (`vvbench.runtime.prefill`) and charged once in the fixed part. A request's need is its
KV caches plus its prompt embeddings (`request_need_bytes`).

- **Budget**: the bytes the process may hold on its exec device (`memory_budget_bytes`; the
  service passes `--memory-budget`, else its memory guard, else 90% of the device's memory).
  The fixed part is what the engine holds with no stream: on the CPU the resident set measured
  once the model is loaded (weights, conv caches, interpreter, libraries) plus the plan's step
  and prefill activations; on a GPU the plan's device figure without KV. What is left is the KV
  budget; a budget below the fixed part is refused when the engine starts.
- **Never fits**: a request whose need is over the KV budget is refused at submission
  (`InputError` naming `input`), so it never starts and never waits for ever.
- **Waits**: a request that fits the budget but not what the admitted streams leave waits in
  the queue, in the queue's order: one that does not fit holds back those behind it (the queue
  is ordered by priority, so interactive requests are never behind a job, and a long job is not
  starved by shorter ones that arrived after it).
- **Reserve**: background requests (priority above 0: the service's jobs) leave room for
  `max(1, max_batch // 2)` interactive requests of `max_input_chars` — the slots the service
  keeps for streaming by default, at most half of what the budget leaves for streams — so jobs
  cannot take the memory interactive traffic needs.
"""

from __future__ import annotations

import functools
import math

import psutil

from vvbench.core.audio import SAMPLE_RATE
from vvbench.core.errors import ConfigError, InputError
from vvbench.runtime.offload import resolve_placement
from vvbench.runtime.plan import REFERENCE_TEXT, memory_plan, stream_kv_bytes
from vvbench.runtime.text import Tokenizer, plan_prosody

DEFAULT_BUDGET_SHARE = 0.9
_MIB = 2**20


def device_memory_bytes(device) -> int:
    """Total memory of an exec device: the GPU's, or the machine's RAM for the CPU."""
    if str(device).startswith("cuda"):
        import torch

        return torch.cuda.get_device_properties(device).total_memory
    return psutil.virtual_memory().total


class MemoryBudget:
    """Bytes admitted streams hold against what the budget leaves for streams (see the module docstring)."""

    def __init__(self, budget_bytes: int, fixed_bytes: int, reserve_bytes: int):
        if budget_bytes <= fixed_bytes:
            raise ConfigError(f"memory budget {budget_bytes / _MIB:.0f} MiB is below what the engine holds with no "
                              f"stream ({fixed_bytes / _MIB:.0f} MiB: weights, caches, activations, runtime)")
        self.budget_bytes = budget_bytes
        self.fixed_bytes = fixed_bytes
        self.reserve_bytes = reserve_bytes
        self.reserved_bytes = 0

    @property
    def stream_budget_bytes(self) -> int:
        """What the budget leaves for streams (their KV caches and prompts)."""
        return self.budget_bytes - self.fixed_bytes

    def limit(self, background: bool) -> int:
        """Bytes all admitted streams may hold once a request of this kind is in."""
        # The reserve never takes more than half: a huge max_input_chars must not shut jobs out.
        reserve = min(self.reserve_bytes, self.stream_budget_bytes // 2) if background else 0
        return self.stream_budget_bytes - reserve

    def check(self, need_bytes: int, background: bool) -> None:
        """Refuse a request that could never fit (InputError naming `input`)."""
        limit = self.limit(background)
        if need_bytes > limit:
            raise InputError(
                f"input needs {need_bytes / _MIB:.0f} MiB (KV caches and prompt) and the memory budget leaves "
                f"{max(0, limit) / _MIB:.0f} MiB for {'a job' if background else 'a request'} "
                f"(budget {self.budget_bytes / _MIB:.0f} MiB); shorten the input", param="input")

    def fits(self, need_bytes: int, background: bool) -> bool:
        """Whether the request fits next to the streams admitted now."""
        return self.reserved_bytes + need_bytes <= self.limit(background)

    def take(self, need_bytes: int) -> None:
        self.reserved_bytes += need_bytes

    def give(self, need_bytes: int) -> None:
        self.reserved_bytes = max(0, self.reserved_bytes - need_bytes)

    def stats(self) -> dict:
        """The budget's figures for the engine's stats."""
        return {"memory_budget_bytes": self.budget_bytes, "stream_budget_bytes": self.stream_budget_bytes,
                "stream_reserved_bytes": self.reserved_bytes}


def request_need_bytes(loaded, prompt_tokens: int, n_frames: int) -> int:
    """Bytes one stream of this prompt and length holds: its KV caches (exactly what the engine
    allocates, the plan's `stream_kv_bytes`) and its prompt embeddings (kept for the stream's life)."""
    dtype_bytes = loaded.dtype.itemsize
    prompt = prompt_tokens * loaded.preset.lm.hidden * dtype_bytes
    return stream_kv_bytes(loaded.preset, prompt_tokens, n_frames, dtype_bytes) + prompt


@functools.lru_cache(maxsize=16)
def _reference_rates(vocab: int, samples_per_frame: int) -> tuple[float, float]:
    """(text tokens, frames) per character of the reference prose, with the runtime's own front end."""
    tokens = len(Tokenizer(vocab).encode(REFERENCE_TEXT, add_special=False))
    frames = plan_prosody(REFERENCE_TEXT, sample_rate=SAMPLE_RATE).n_frames(samples_per_frame)
    return tokens / len(REFERENCE_TEXT), frames / len(REFERENCE_TEXT)


def interactive_need_bytes(loaded, chars: int) -> int:
    """Bytes one interactive request of `chars` characters of ordinary prose holds (estimate)."""
    preset = loaded.preset
    tokens_per_char, frames_per_char = _reference_rates(preset.lm.vocab, preset.samples_per_frame)
    tokens = preset.voice_prompt_tokens + math.ceil(chars * tokens_per_char) + 2
    return request_need_bytes(loaded, tokens, math.ceil(chars * frames_per_char) + 1)


def reserve_bytes(loaded, config) -> int:
    """What background requests leave free: max(1, max_batch // 2) interactive requests of max_input_chars."""
    return max(1, config.max_batch // 2) * interactive_need_bytes(loaded, config.max_input_chars)


def build_budget(loaded, config, budget_bytes: int | None) -> MemoryBudget:
    """The engine's MemoryBudget: fixed part measured (CPU) or planned (GPU), reserve from the knobs."""
    device = loaded.device
    if budget_bytes is None:
        budget_bytes = int(DEFAULT_BUDGET_SHARE * device_memory_bytes(device))
    plan = memory_plan(config, streams=0, max_audio_min=0.0, budget_bytes=budget_bytes)
    main = plan.devices[resolve_placement(config).device]
    if str(device).startswith("cuda"):
        fixed = main.total - main.kv_cache
    else:
        fixed = psutil.Process().memory_info().rss + main.activations
    return MemoryBudget(budget_bytes, fixed, reserve_bytes(loaded, config))
