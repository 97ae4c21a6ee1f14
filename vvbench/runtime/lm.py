"""The language-model backbone: a Qwen2-style decoder and its per-stream KV cache.

Structure follows Qwen2 exactly (names included, so that real weights would load): token
embedding, `layers` decoder layers of [RMSNorm -> grouped-query attention with RoPE (q, k, v with
bias, o without) -> residual, RMSNorm -> SwiGLU -> residual], a final RMSNorm and an output head
tied to the embedding unless `LMSpec.tied` is false.

Decoding is batch invariant (DESIGN.md section 2): the engine steps M rows at once, one new token
per row, each row belonging to its own stream with its own `KVCache`. The projections run on all M
rows together (a fixed M keeps their per-row result independent of the other rows), while attention
runs per row over that row's own cache slice, so neither another stream's cache length nor its
contents can change a row's result. Rows whose cache is None are padding: their attention output is
zero and they are never written anywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vvbench.core.errors import EngineError
from vvbench.runtime.layers import Embedding, RMSNorm, SwiGLU, apply_rope, rope_cos_sin
from vvbench.runtime.presets import LMSpec


class KVCache:
    """One stream's keys and values for every layer of one LM.

    `k` and `v` are [layers, kv_heads, capacity, head_dim], allocated up front so that a stream's
    memory is fixed when it is admitted, but not zeroed: only positions already written are ever
    read, and writing zeros to a 90-minute job's cache (hundreds of MB) would stall every stream
    for the time it takes, while untouched pages cost nothing until they are filled. `length` counts the tokens already stored;
    `QwenLM.layer_step` writes position `length` and `QwenLM.advance` moves it on.
    """

    def __init__(self, spec: LMSpec, capacity: int, device, dtype: torch.dtype):
        shape = (spec.layers, spec.kv_heads, capacity, spec.head_dim)
        self.k = torch.empty(shape, device=device, dtype=dtype)
        self.v = torch.empty(shape, device=device, dtype=dtype)
        self.capacity = capacity
        self.length = 0

    @property
    def nbytes(self) -> int:
        """Bytes held by keys and values together."""
        return self.k.numel() * self.k.element_size() * 2

    def reset(self) -> None:
        """Forget the stored tokens (the memory is kept for the next stream in this slot)."""
        self.length = 0

    def _check_room(self, n: int) -> None:
        if self.length + n > self.capacity:
            raise EngineError(f"KV cache full: {self.length} + {n} tokens exceed its capacity of {self.capacity}")


class Qwen2Attention(nn.Module):
    """The projections of grouped-query attention; the attention itself is in `QwenLM`."""

    def __init__(self, spec: LMSpec):
        super().__init__()
        hd = spec.head_dim
        self.q_proj = nn.Linear(spec.hidden, spec.heads * hd, bias=True)
        self.k_proj = nn.Linear(spec.hidden, spec.kv_heads * hd, bias=True)
        self.v_proj = nn.Linear(spec.hidden, spec.kv_heads * hd, bias=True)
        self.o_proj = nn.Linear(spec.heads * hd, spec.hidden, bias=False)


class Qwen2DecoderLayer(nn.Module):
    """One pre-norm decoder layer: attention projections, SwiGLU MLP and their two norms."""

    def __init__(self, spec: LMSpec):
        super().__init__()
        self.input_layernorm = RMSNorm(spec.hidden, spec.norm_eps)
        self.self_attn = Qwen2Attention(spec)
        self.post_attention_layernorm = RMSNorm(spec.hidden, spec.norm_eps)
        self.mlp = SwiGLU(spec.hidden, spec.ffn)


class QwenLM(nn.Module):
    """A Qwen2 decoder stepped token by token over per-stream KV caches (see module docstring)."""

    def __init__(self, spec: LMSpec):
        super().__init__()
        self.spec = spec
        self.embed = Embedding(spec.vocab, spec.hidden)
        self.layers = nn.ModuleList(Qwen2DecoderLayer(spec) for _ in range(spec.layers))
        self.norm = RMSNorm(spec.hidden, spec.norm_eps)
        self.lm_head = None if spec.tied else nn.Linear(spec.hidden, spec.vocab, bias=False)

    # -- positions -----------------------------------------------------------------------------
    def rope(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotary tables cos, sin [len(positions), head_dim] in the model's compute dtype."""
        return rope_cos_sin(positions, self.spec.head_dim, self.spec.rope_theta, self.embed.weight.dtype)

    def _qkv(self, layer: Qwen2DecoderLayer, h: torch.Tensor, cos, sin):
        """Projected and rotated q [N, heads, hd], k [N, kv, hd] and v [N, kv, hd] for N rows."""
        spec, n = self.spec, h.shape[0]
        attn = layer.self_attn
        q = attn.q_proj(h).view(n, spec.heads, spec.head_dim)
        k = attn.k_proj(h).view(n, spec.kv_heads, spec.head_dim)
        v = attn.v_proj(h).view(n, spec.kv_heads, spec.head_dim)
        cos, sin = cos[:, None, :], sin[:, None, :]
        return apply_rope(q, cos, sin), apply_rope(k, cos, sin), v

    @staticmethod
    def _mlp_residual(layer: Qwen2DecoderLayer, x: torch.Tensor, attn_out: torch.Tensor):
        x = x + layer.self_attn.o_proj(attn_out)
        return x + layer.mlp(layer.post_attention_layernorm(x))

    # -- decoding: M rows, one new token each ----------------------------------------------------
    def layer_step(
        self,
        layer_idx: int,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        caches: Sequence[KVCache | None],
        layer: nn.Module | None = None,
    ) -> torch.Tensor:
        """Run decoder layer `layer_idx` on M rows [M, H], one new token per row.

        Row r is its stream's token at position `caches[r].length`; its key and value are
        written there (the length is not advanced: `advance` does that once every layer has
        run). `layer` replaces `self.layers[layer_idx]` (the offload streamer passes a copy
        staged on the compute device).
        """
        layer = self.layers[layer_idx] if layer is None else layer
        q, k, v = self._qkv(layer, layer.input_layernorm(x), cos, sin)
        out = torch.zeros_like(q)
        for r, cache in enumerate(caches):
            if cache is None:
                continue
            pos = cache.length
            cache._check_room(1)
            cache.k[layer_idx, :, pos] = k[r]
            cache.v[layer_idx, :, pos] = v[r]
            # Per-row attention over this stream's own prefix: nothing of another stream (its
            # length, its padding) can reach this row's arithmetic.
            out[r] = self._decode_attention(q[r], cache.k[layer_idx, :, : pos + 1], cache.v[layer_idx, :, : pos + 1])
        return self._mlp_residual(layer, x, out.reshape(x.shape[0], -1))

    def _decode_attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """One query token [heads, hd] over one stream's keys/values [kv_heads, L, hd].

        Written out as two batched matmuls over the kv heads (queries grouped per kv head) rather
        than `scaled_dot_product_attention`, whose GQA path on the CPU copies K and V per call
        (measured: ~5x slower for one query); softmax in float32 whatever the model dtype.
        """
        spec = self.spec
        group = spec.heads // spec.kv_heads
        qg = q.view(spec.kv_heads, group, spec.head_dim)
        scores = torch.matmul(qg, k.transpose(1, 2)).float() * (spec.head_dim ** -0.5)
        probs = torch.softmax(scores, dim=-1).to(v.dtype)
        return torch.matmul(probs, v).reshape(spec.heads, spec.head_dim)

    @staticmethod
    def advance(caches: Sequence[KVCache | None], n: int = 1) -> None:
        """Move every real cache's length on by `n` tokens (padding rows are skipped)."""
        for cache in caches:
            if cache is not None:
                cache.length += n

    def step(self, x: torch.Tensor, caches: Sequence[KVCache | None]) -> torch.Tensor:
        """All layers and the final norm for M rows at their caches' positions; advances by 1."""
        positions = torch.tensor([c.length if c is not None else 0 for c in caches], device=x.device)
        cos, sin = self.rope(positions)
        for i in range(len(self.layers)):
            x = self.layer_step(i, x, cos, sin, caches)
        self.advance(caches, 1)
        return self.norm(x)

    # -- prefill: one stream, T tokens -----------------------------------------------------------
    def prefill_layer(
        self,
        layer_idx: int,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        cache: KVCache,
        layer: nn.Module | None = None,
    ) -> torch.Tensor:
        """Decoder layer `layer_idx` on T consecutive tokens [T, H] of one stream.

        The tokens sit at positions `cache.length ..` and attend causally to the cached prefix
        and to each other; their keys and values are written, the length is not advanced.
        """
        layer = self.layers[layer_idx] if layer is None else layer
        t, start = x.shape[0], cache.length
        cache._check_room(t)
        q, k, v = self._qkv(layer, layer.input_layernorm(x), cos, sin)
        cache.k[layer_idx, :, start : start + t] = k.transpose(0, 1)
        cache.v[layer_idx, :, start : start + t] = v.transpose(0, 1)
        out = self._chunk_attention(q, cache.k[layer_idx, :, : start + t], cache.v[layer_idx, :, : start + t], start)
        return self._mlp_residual(layer, x, out.reshape(t, -1))

    def _chunk_attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, start: int) -> torch.Tensor:
        """T query tokens [T, heads, hd] at positions start.. over one stream's keys/values [kv_heads, start + T, hd].

        Causal: token i sees keys 0 .. start + i. The same two batched matmuls as
        `_decode_attention`, with the T queries of each kv head's group stacked as rows; measured
        here 2-7x faster than `scaled_dot_product_attention` with a mask for short chunks over a
        long prefix (its GQA path copies K and V per call), which is what a bounded chunk is.
        """
        spec, t, length = self.spec, q.shape[0], k.shape[1]
        group = spec.heads // spec.kv_heads
        qg = q.view(t, spec.kv_heads, group, spec.head_dim).permute(1, 2, 0, 3).reshape(spec.kv_heads, group * t, spec.head_dim)
        scores = torch.matmul(qg, k.transpose(1, 2)).float() * (spec.head_dim ** -0.5)
        scores = scores.view(spec.kv_heads, group, t, length)
        if t > 1:
            ahead = torch.ones(t, t, dtype=torch.bool, device=q.device).triu(1)
            scores[..., start:].masked_fill_(ahead, float("-inf"))
        probs = torch.softmax(scores, dim=-1).to(v.dtype).view(spec.kv_heads, group * t, length)
        out = torch.matmul(probs, v).view(spec.kv_heads, group, t, spec.head_dim)
        return out.permute(2, 0, 1, 3).reshape(t, spec.heads, spec.head_dim)

    def prefill(self, x: torch.Tensor, cache: KVCache, chunk: int = 256) -> torch.Tensor:
        """Run T tokens [T, H] of one stream through every layer, `chunk` tokens at a time.

        Returns the final-normed hidden states [T, H] and advances the cache by T. A stream's
        result depends on `chunk` (it sets the matmul shapes) but never on other streams.
        """
        if chunk < 1:
            raise ValueError(f"prefill chunk must be >= 1, got {chunk}")
        outs = []
        for begin in range(0, x.shape[0], chunk):
            xc = x[begin : begin + chunk]
            positions = torch.arange(cache.length, cache.length + xc.shape[0], device=x.device)
            cos, sin = self.rope(positions)
            for i in range(len(self.layers)):
                xc = self.prefill_layer(i, xc, cos, sin, cache)
            cache.length += xc.shape[0]
            outs.append(self.norm(xc))
        return torch.cat(outs, dim=0) if outs else x.new_zeros(0, self.spec.hidden)

    # -- output ----------------------------------------------------------------------------------
    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """Vocabulary logits [M, vocab] of final-normed hidden states [M, H]."""
        weight = self.embed.weight if self.lm_head is None else self.lm_head.weight
        return F.linear(h, weight)
