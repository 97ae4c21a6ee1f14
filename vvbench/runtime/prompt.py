"""Prompts and caches for a new stream: voice prompt + text tokens, and its KV caches.

VibeVoice conditions the LM on a voice prompt (acoustic latents of a reference clip run through
the connector) followed by the script's tokens, then generates speech frames after a
speech-start token. Here the voice prompt is `voice_prompt_tokens` embeddings drawn from the
voice's seed at the scale of the LM's embeddings. The unconditional (CFG) branch starts empty and
sees the same speech inputs, as in VibeVoice's negative prompt. Caches are sized for the whole
request when it is admitted (prompt + planned frames), so a stream's memory is known up front.
"""

from __future__ import annotations

import threading
from dataclasses import replace

import torch

from vvbench.runtime.lm import KVCache
from vvbench.runtime.text import Tokenizer
from vvbench.runtime.voices import Voice

SPEECH_START_ID = 4


class PromptBuilder:
    """Builds prompt embeddings and per-stream KV caches for one loaded model."""

    def __init__(self, loaded):
        self.loaded = loaded
        self.model = model = loaded.model
        self.preset = loaded.preset
        self.device = loaded.device
        self.dtype = loaded.dtype
        self.tokenizer = Tokenizer(self.preset.lm.vocab)
        self._voice_cache: dict[str, torch.Tensor] = {}
        self._lock = threading.Lock()
        with torch.no_grad():
            self._embed_std = float(model.lm.embed.weight.float().std())

    def voice_prompt(self, voice: Voice) -> torch.Tensor:
        """[voice_prompt_tokens, H] embeddings of a voice (cached per voice)."""
        with self._lock:
            cached = self._voice_cache.get(voice.name)
            if cached is None:
                gen = torch.Generator().manual_seed(voice.embed_seed)
                n, h = self.preset.voice_prompt_tokens, self.preset.lm.hidden
                cached = (torch.randn(n, h, generator=gen) * self._embed_std).to(self.device, self.dtype)
                self._voice_cache[voice.name] = cached
            return cached

    @torch.inference_mode()
    def build(self, text: str, voice: Voice) -> tuple[torch.Tensor, torch.Tensor]:
        """(prompt embeddings [T, H] to prefill, the first speech-step input [H])."""
        embed = self.model.lm.embed
        where = embed.weight.device
        ids = torch.tensor(self.tokenizer.encode(text), device=where)
        prompt = torch.cat([self.voice_prompt(voice), embed(ids).to(self.device, self.dtype)], dim=0)
        start = embed(torch.tensor([SPEECH_START_ID], device=where))[0].to(self.device, self.dtype)
        return prompt, start

    def caches(self, prompt_tokens: int, n_frames: int) -> tuple[list[KVCache], list[KVCache] | None]:
        """The conditional caches (prompt + frames) and, with CFG, the unconditional ones (frames).

        One cache per LM layer group (layers computing on one device), on that device.
        """
        def make(capacity: int) -> list[KVCache]:
            return [KVCache(replace(self.preset.lm, layers=len(g.layers)), capacity, g.device, self.dtype)
                    for g in self.loaded.groups]

        pos = make(prompt_tokens + n_frames + 1)
        neg = make(n_frames + 1) if self.preset.uses_cfg else None
        return pos, neg
