"""Chunked prefill: how a prompt is cut into chunks, and how much prefill one engine iteration runs.

A long-form prompt (a 90-minute script is ~23k text tokens) cannot be prefilled in one go next to
interactive streams, and a chunk of a fixed token count does not bound the work either: a chunk's
attention costs `tokens x (position + tokens)` cells per head and layer, so the same 256 tokens
that take 60 ms at the start of a `tiny` prompt take over a second 10k tokens in. Two rules bound
an iteration instead:

- **Geometry** (`chunk_tokens`): the next chunk of a stream is the largest whose work (its
  tokens' projections and MLP, and their attention over the prefix) stays within `CHUNK_MACS`
  multiply-accumulates for its model, capped at
  `MAX_CHUNK_TOKENS` and at least one token. It depends only on the stream's own position and
  the model's shapes, never on the other streams or on timing, so a prompt is always cut at the
  same places and a seed gives bit-identical audio alone or in any batch. The bound also caps a
  chunk's transient memory (its attention scores) whatever the prompt's length
  (`chunk_activation_bytes`, which the memory plan charges).
- **Time** (`PrefillBudget`): an iteration runs whole chunks, highest-priority stream first,
  until it has spent `PREFILL_SHARE` (30%) of the recent frame-step time (at least one chunk, so
  prefill always progresses); with no stream ready to step, it may spend `IDLE_PREFILL_S`. So the
  streams already producing audio are slowed by about a third of a step per frame while a
  long prompt is read, and a step never waits on a whole prompt.
"""

from __future__ import annotations

import math

from vvbench.runtime.presets import LMSpec

MAX_CHUNK_TOKENS = 256
# Multiply-accumulates one chunk may cost (projections and MLP per token, attention per query-key
# cell, every layer). On the CPU 2^28 is ~25 ms on one core here, a fifth of a `tiny` frame step
# at 8 slots and a sixteenth of a `small` one; a GPU does ~100x more in the same time, and its
# chunks are cut coarser (its audio differs from the CPU's anyway: its weights are drawn by a
# CUDA generator).
CHUNK_MACS = {"cpu": 1 << 28, "cuda": 1 << 38}
PREFILL_SHARE = 0.3
IDLE_PREFILL_S = 0.1
MIN_PREFILL_S = 0.005
_STEP_EMA = 0.2


def _costs(spec: LMSpec) -> tuple[int, int]:
    """(attention MACs per query-key cell, projection and MLP MACs per token), every layer."""
    h, kv = spec.hidden, spec.kv_heads * spec.head_dim
    per_layer = 2 * h * h + 2 * h * kv + 3 * h * spec.ffn
    return 2 * spec.layers * spec.heads * spec.head_dim, spec.layers * per_layer


def _budget_macs(device_type: str) -> int:
    return CHUNK_MACS.get(device_type, CHUNK_MACS["cpu"])


def chunk_tokens(spec: LMSpec, position: int, device_type: str = "cpu") -> int:
    """Tokens of the prefill chunk that starts at `position` of a stream's prompt (see the module docstring)."""
    attn, linear = _costs(spec)
    budget = _budget_macs(device_type)
    # Largest t with attn * t * (position + t) + linear * t <= budget.
    b = attn * position + linear
    t = int((math.sqrt(b * b + 4 * attn * budget) - b) / (2 * attn))
    while t > 1 and attn * t * (position + t) + linear * t > budget:  # float rounding
        t -= 1
    return max(1, min(MAX_CHUNK_TOKENS, t))


def chunk_bounds(spec: LMSpec, start: int, total: int, device_type: str = "cpu") -> tuple[int, int]:
    """(start, end) of the chunk that begins at `start` of a `total`-token prompt."""
    return start, min(total, start + chunk_tokens(spec, start, device_type))


def chunk_activation_bytes(spec: LMSpec, dtype_bytes: int, device_type: str = "cpu") -> int:
    """Largest transient of one prefill chunk: its attention scores (float32) and probabilities
    (model dtype) for one layer, plus the projections and MLP of its tokens."""
    attn, _ = _costs(spec)
    cells = _budget_macs(device_type) // attn
    scores = cells * spec.heads * (4 + dtype_bytes)
    rows = MAX_CHUNK_TOKENS * (3 * spec.hidden + 2 * spec.ffn) * dtype_bytes
    return scores + rows


class PrefillBudget:
    """Seconds of prefill one engine iteration may spend, from the recent frame-step time."""

    def __init__(self) -> None:
        self.step_s: float | None = None

    def observe_step(self, seconds: float) -> None:
        """Record how long a frame step took (an exponential average smooths one slow step)."""
        self.step_s = seconds if self.step_s is None else (1 - _STEP_EMA) * self.step_s + _STEP_EMA * seconds

    def seconds(self, streams_ready: bool) -> float:
        """The prefill time this iteration may take (whole chunks are run until it is spent)."""
        if not streams_ready or self.step_s is None:
            return IDLE_PREFILL_S
        return max(MIN_PREFILL_S, PREFILL_SHARE * self.step_s)
