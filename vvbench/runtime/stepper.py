"""One frame for every active stream: the batched per-frame computation over slots.

Batch invariance (DESIGN.md section 2): with `batch_invariant` on, every batched module runs at
a fixed row count — `max_batch` slots (twice that for the CFG branch of the LM and the diffusion
head) — and each stream keeps its slot for its lifetime; attention runs per stream over its own
cache. A row's result then does not depend on how many streams run or what they hold, so a seed
gives bit-identical audio alone or in any batch. With it off, only the active rows run (streams
are compacted into the first slots), which is cheaper at low load but not bit-stable.

Per frame (VibeVoice family): LM step on the conditional and unconditional caches, the full LM
head on the conditional rows (as the real model computes it every step; the end of speech comes
from the text plan, since random weights cannot predict it), the DPM-Solver over the diffusion
head, the streaming acoustic decoder, the per-stream synthesiser, and for the 1.5B/7B shapes the
semantic encoder over the frame's audio fed back into the next LM input. ChatTTS family: LM step,
four codebook heads sampled with each stream's generator, conv decoder to mel and vocoder.
"""

from __future__ import annotations

import time
from collections import defaultdict

import numpy as np
import torch

from vvbench.runtime.diffusion import DPMSolver
from vvbench.runtime.prefill import chunk_bounds
from vvbench.runtime.stream import Stream
from vvbench.runtime.synth import FrameControls

STAGES = ("prefill", "lm", "diffusion", "decode", "semantic", "synth")


class FrameStepper:
    """Runs prefill chunks and frame steps for a model on one exec device, over `slots` slots."""

    def __init__(self, loaded, *, slots: int, batch_invariant: bool):
        self.loaded = loaded
        self.model = loaded.model
        self.preset = preset = loaded.preset
        self.device = loaded.device
        self.dtype = loaded.dtype
        self.slots = slots
        self.batch_invariant = batch_invariant
        self.layer_provider = loaded.layer_provider
        self._sync = loaded.sync
        self._device_type = torch.device(self.device).type
        # layer i -> (group index, index within the group's KV cache)
        self._layer_loc = {i: (g, j) for g, grp in enumerate(loaded.groups) for j, i in enumerate(grp.layers)}
        self._simple = len(loaded.groups) == 1 and self.layer_provider is None and loaded.groups[0].device == self.device
        self._solvers: dict[int, DPMSolver] = {}
        self.dec_state = self._init_state("decoder")
        self.sem_state = self._init_state("semantic")
        self.codec_state = self._init_state("codec")
        gen = torch.Generator().manual_seed(7919)
        width = preset.diffusion.latent_dim if preset.diffusion else preset.codec.n_fft // 2 + 1
        # Fixed projection from the model's per-frame output to the synthesiser's controls.
        self._control_proj = torch.randn(width, 3, generator=gen, dtype=torch.float64).numpy()

    def _init_state(self, name: str) -> list[torch.Tensor]:
        mod = getattr(self.model, name, None)
        if mod is None:
            return []
        mod = getattr(mod, "module", mod)  # ComputeOffload keeps the real module inside
        device = self.loaded.exec_devices.get(name, self.device)
        return mod.init_state(self.slots, device, self.dtype)

    # -- slots ----------------------------------------------------------------------------
    def reset_slot(self, slot: int) -> None:
        """Zero the streaming conv caches of a slot before a new stream takes it."""
        for s in (*self.dec_state, *self.sem_state, *self.codec_state):
            s[slot].zero_()

    def move_slot(self, src: int, dst: int) -> None:
        """Copy a slot's conv caches (compaction when batch invariance is off)."""
        for s in (*self.dec_state, *self.sem_state, *self.codec_state):
            s[dst].copy_(s[src])

    def state_bytes(self) -> int:
        return sum(s.numel() * s.element_size() for s in (*self.dec_state, *self.sem_state, *self.codec_state))

    def rows_for(self, streams: list[Stream]) -> int:
        if self.batch_invariant:
            return self.slots
        return max(s.slot for s in streams) + 1

    # -- prefill --------------------------------------------------------------------------
    @torch.inference_mode()
    def prefill_chunk(self, stream: Stream) -> int:
        """Prefill the next chunk of one stream's prompt; returns the tokens it consumed.

        Where chunks start and end depends only on the stream's own prompt and the model
        (`vvbench.runtime.prefill.chunk_bounds`), so a prompt is cut the same way alone or in
        any batch and whatever the engine's timing.
        """
        total = stream.prompt.shape[0]
        start, end = chunk_bounds(self.preset.lm, stream.prefilled, total, self._device_type)
        if end <= start:
            return 0
        xc = stream.prompt[start:end]
        lm = self.model.lm
        if self._simple:
            lm.prefill(xc, stream.kv_pos[0], chunk=end - start)
        else:
            first = stream.kv_pos[0]
            positions = torch.arange(first.length, first.length + xc.shape[0], device=self.device)
            cos, sin = lm.rope(positions)
            for i in range(len(lm.layers)):
                g, j = self._layer_loc[i]
                dev = self.loaded.groups[g].device
                xc = lm.prefill_layer(j, xc.to(dev), cos.to(dev), sin.to(dev), stream.kv_pos[g], layer=self._layer(i))
            for cache in stream.kv_pos:
                cache.length += end - start
        stream.prefilled = end
        return end - start

    def _layer(self, i: int) -> torch.nn.Module:
        return self.layer_provider(i) if self.layer_provider is not None else self.model.lm.layers[i]

    # -- one frame ------------------------------------------------------------------------
    @torch.inference_mode()
    def step(self, streams: list[Stream]) -> tuple[list[np.ndarray], dict[str, float]]:
        """Advance every stream by one frame; return each stream's audio frame and stage seconds."""
        rows = self.rows_for(streams)
        if self.preset.family == "codec":
            return self._step_codec(streams, rows)
        return self._step_vibevoice(streams, rows)

    def _lm(self, x: torch.Tensor, caches: list) -> torch.Tensor:
        """One LM step over rows whose caches are per-group lists (None for padding rows)."""
        lm = self.model.lm
        if self._simple:
            return lm.step(x, [c[0] if c is not None else None for c in caches])
        positions = torch.tensor([c[0].length if c is not None else 0 for c in caches], device=self.device)
        cos, sin = lm.rope(positions)
        per_group = [[c[g] if c is not None else None for c in caches] for g in range(len(self.loaded.groups))]
        for i in range(len(lm.layers)):
            g, j = self._layer_loc[i]
            dev = self.loaded.groups[g].device
            x = lm.layer_step(j, x.to(dev), cos.to(dev), sin.to(dev), per_group[g], layer=self._layer(i))
        for group_caches in per_group:
            lm.advance(group_caches, 1)
        return lm.norm(x.to(self.device))

    def _timer(self):
        times: dict[str, float] = defaultdict(float)
        last = [time.perf_counter()]

        def mark(stage: str) -> None:
            self._sync()
            now = time.perf_counter()
            times[stage] += now - last[0]
            last[0] = now

        return times, mark

    def _step_vibevoice(self, streams: list[Stream], rows: int):
        m = self.model
        times, mark = self._timer()
        hidden = self.preset.lm.hidden
        latent_dim = self.preset.diffusion.latent_dim
        x = torch.zeros(2 * rows, hidden, device=self.device, dtype=self.dtype)
        caches: list = [None] * (2 * rows)
        for s in streams:
            x[s.slot] = s.x
            x[rows + s.slot] = s.x
            caches[s.slot] = s.kv_pos
            caches[rows + s.slot] = s.kv_neg
        h = self._lm(x, caches)
        h_pos, h_neg = h[:rows], h[rows:]
        head = m.lm.embed.weight if m.lm.lm_head is None else m.lm.lm_head.weight
        m.lm.logits(h_pos.to(head.device))
        mark("lm")

        noise = torch.zeros(rows, latent_dim, device=self.device, dtype=self.dtype)
        cfg = torch.ones(rows, 1, device=self.device, dtype=self.dtype)
        for s in streams:
            noise[s.slot] = torch.randn(latent_dim, generator=s.generator, dtype=torch.float32).to(self.device, self.dtype)
            cfg[s.slot] = s.cfg_scale
        latent = torch.zeros_like(noise)
        by_steps: dict[int, list[int]] = defaultdict(list)
        for s in streams:
            by_steps[s.steps].append(s.slot)
        for steps, slots in sorted(by_steps.items()):
            solver = self._solvers.get(steps)
            if solver is None:
                solver = self._solvers[steps] = DPMSolver(steps, self.preset.diffusion.train_timesteps)
            out = solver.sample(m.diffusion, noise, h_pos, h_neg, cfg)
            idx = torch.tensor(slots, device=self.device)
            latent[idx] = out[idx]
        mark("diffusion")

        dec = m.decoder(latent, [s[:rows] for s in self.dec_state])
        mark("decode")

        lat_np = latent.float().cpu().numpy()
        dec_np = dec.float().cpu().numpy()
        frames = []
        for s in streams:
            frames.append(s.synth.render(s.frame, self._controls(lat_np[s.slot], dec_np[s.slot, 0])))
        mark("synth")

        x_next = m.acoustic_connector(latent)
        if m.semantic is not None:
            audio = torch.zeros(rows, 1, self.preset.samples_per_frame, device=self.device, dtype=self.dtype)
            for s, a in zip(streams, frames):
                audio[s.slot, 0] = torch.from_numpy(a).to(self.device, self.dtype)
            sem = m.semantic(audio, [s[:rows] for s in self.sem_state])
            x_next = x_next + m.semantic_connector(sem)
            mark("semantic")
        for s in streams:
            s.x = x_next[s.slot].clone()
        return frames, dict(times)

    def _step_codec(self, streams: list[Stream], rows: int):
        m = self.model
        codec = m.codec
        times, mark = self._timer()
        x = torch.zeros(rows, self.preset.lm.hidden, device=self.device, dtype=self.dtype)
        caches: list = [None] * rows
        for s in streams:
            x[s.slot] = s.x
            caches[s.slot] = s.kv_pos
        h = self._lm(x, caches)
        logits = codec.code_logits(h).float()
        codes = torch.zeros(rows, self.preset.codec.codebooks, dtype=torch.long, device=self.device)
        for s in streams:
            probs = torch.softmax(logits[s.slot] / 0.7, dim=-1).cpu()
            codes[s.slot] = torch.multinomial(probs, 1, generator=s.generator).squeeze(-1).to(self.device)
        mark("lm")
        mags = codec(codes, [s[:rows] for s in self.codec_state])
        mark("decode")
        mags_np = mags.float().cpu().numpy()
        frames = []
        spf = self.preset.samples_per_frame
        for s in streams:
            mag = mags_np[s.slot]  # [mel_per_step, bins]
            per = spf // mag.shape[0]
            excitation = np.concatenate([np.fft.irfft(row)[:per] for row in mag])
            frames.append(s.synth.render(s.frame, self._controls(mag.mean(axis=0), excitation)))
        mark("synth")
        x_next = codec.embed_codes(codes)
        for s in streams:
            s.x = x_next[s.slot].clone()
        return frames, dict(times)

    def _controls(self, vec: np.ndarray, excitation: np.ndarray) -> FrameControls:
        v = vec.astype(np.float64)
        v = (v - v.mean()) / (v.std() + 1e-9)
        pitch, loud, tilt = np.tanh(v @ self._control_proj / np.sqrt(len(v)) * 1.5)
        return FrameControls(pitch=float(pitch), loudness=float(loud), tilt=float(tilt), excitation=excitation.astype(np.float32))
