"""One stream's state inside the engine: its slot, caches, generator, synthesiser and audio buffer.

A stream is created when a request is admitted to a slot and lives until its last frame. Its
`torch.Generator` is its own (seeded from the request), so what it draws never depends on the
other streams in the batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from vvbench.runtime.request import AudioChunk, RequestHandle
from vvbench.runtime.synth import StreamSynth
from vvbench.runtime.text import ProsodyPlan


@dataclass
class Stream:
    """Mutable per-stream state; owned by the engine thread only."""

    handle: RequestHandle
    plan: ProsodyPlan
    synth: StreamSynth
    slot: int
    prompt: torch.Tensor  # [T, H] prompt embeddings still to prefill (consumed in chunks)
    kv_pos: object  # KVCache of the conditional branch
    kv_neg: object | None  # KVCache of the CFG (unconditional) branch
    generator: torch.Generator
    steps: int
    cfg_scale: float
    first_chunk_frames: int
    chunk_frames: int
    x: torch.Tensor  # next LM input embedding [H]
    n_frames: int
    start_frame: int = 0
    frame: int = 0
    prefilled: int = 0
    chunk_index: int = 0
    pending: list[np.ndarray] = field(default_factory=list)
    pending_start: int = 0

    @property
    def in_prefill(self) -> bool:
        return self.prefilled < self.prompt.shape[0]

    @property
    def done(self) -> bool:
        return self.frame >= self.n_frames

    def take_frame(self, audio: np.ndarray) -> AudioChunk | None:
        """Add one frame of audio; return a chunk when one is due (first, regular, or final)."""
        index = self.frame
        self.frame += 1
        if index < self.start_frame:  # resumed request: recompute, do not resend
            self.pending_start = self.frame
            return None
        if not self.pending:
            self.pending_start = index
        self.pending.append(audio)
        due = self.first_chunk_frames if self.chunk_index == 0 and self.start_frame == 0 else self.chunk_frames
        if len(self.pending) < due and not self.done:
            return None
        chunk = AudioChunk(
            index=self.chunk_index,
            audio=np.concatenate(self.pending),
            start_frame=self.pending_start,
            frames=len(self.pending),
            final=self.done,
            sample_rate=self.handle.sample_rate,
        )
        self.chunk_index += 1
        self.pending = []
        return chunk
