"""QwenLM and KVCache: cache layout, batch invariance, prefill/step agreement, dtypes."""

from __future__ import annotations

import copy

import pytest
import torch

from vvbench.core.errors import EngineError
from vvbench.runtime.layers import apply_rope
from vvbench.runtime.lm import KVCache, QwenLM
from vvbench.runtime.model import build_model
from vvbench.runtime.presets import PRESETS, LMSpec, Preset

M = 8


@pytest.fixture(scope="module")
def lm() -> QwenLM:
    return build_model("tiny", seed=3).lm


def _cache(lm: QwenLM, capacity: int = 32) -> KVCache:
    return KVCache(lm.spec, capacity, "cpu", torch.float32)


def _filled_cache(lm: QwenLM, length: int, seed: int, capacity: int = 32) -> KVCache:
    cache = _cache(lm, capacity)
    g = torch.Generator().manual_seed(seed)
    lm.prefill(torch.randn(length, lm.spec.hidden, generator=g), cache)
    return cache


def test_kv_cache_shape_and_bytes_follow_the_spec():
    spec = PRESETS["vibevoice-1.5b"].lm
    cache = KVCache(spec, 10, "meta", torch.bfloat16)
    assert cache.k.shape == (28, 2, 10, 128)
    assert cache.length == 0 and cache.capacity == 10
    # DESIGN.md: 28 KiB per token in bf16 for the 1.5B preset.
    assert cache.nbytes == 10 * 28 * 1024 == 10 * spec.kv_bytes_per_token(2)


def test_rope_is_identity_at_zero_and_preserves_norm(lm):
    cos, sin = lm.rope(torch.tensor([0, 7, 4000]))
    assert cos.shape == (3, lm.spec.head_dim)
    assert torch.equal(cos[0], torch.ones(lm.spec.head_dim))
    assert torch.equal(sin[0], torch.zeros(lm.spec.head_dim))
    x = torch.randn(3, lm.spec.heads, lm.spec.head_dim)
    y = apply_rope(x, cos[:, None], sin[:, None])
    torch.testing.assert_close(y.norm(dim=-1), x.norm(dim=-1))
    assert not torch.allclose(y[1:], x[1:])


def test_step_row_is_bit_identical_wherever_it_sits(lm):
    """Same stream in row 0 and in row 5, different neighbours: identical output and cache."""
    g = torch.Generator().manual_seed(11)
    token = torch.randn(lm.spec.hidden, generator=g)

    def run(target_row: int, neighbour_seed: int):
        gen = torch.Generator().manual_seed(neighbour_seed)
        x = torch.randn(M, lm.spec.hidden, generator=gen) * 3
        caches: list[KVCache | None] = []
        for r in range(M):
            if r == target_row:
                caches.append(_filled_cache(lm, 6, seed=1))
            elif r % 3 == 2:
                caches.append(None)  # a padding slot
            else:
                length = int(torch.randint(0, 20, (1,), generator=gen))
                caches.append(_filled_cache(lm, length, seed=100 + r))
        x[target_row] = token
        out = lm.step(x, caches)
        return out[target_row], caches[target_row]

    out_a, cache_a = run(0, neighbour_seed=5)
    out_b, cache_b = run(5, neighbour_seed=6)
    assert torch.equal(out_a, out_b)
    assert cache_a.length == cache_b.length == 7
    # Only written positions mean anything (caches are allocated, not zeroed).
    assert torch.equal(cache_a.k[:, :, :7], cache_b.k[:, :, :7]) and torch.equal(cache_a.v[:, :, :7], cache_b.v[:, :, :7])


def test_padding_rows_are_skipped_and_not_advanced(lm):
    caches = [_cache(lm), None]
    out = lm.step(torch.randn(2, lm.spec.hidden), caches)
    assert caches[0].length == 1
    assert torch.isfinite(out).all()


def test_prefill_then_step_matches_token_by_token(lm):
    g = torch.Generator().manual_seed(2)
    xs = torch.randn(11, lm.spec.hidden, generator=g)
    stepped = _cache(lm)
    outs = [lm.step(xs[i : i + 1], [stepped]) for i in range(11)]
    prefilled = _cache(lm)
    pre = lm.prefill(xs[:10], prefilled, chunk=4)  # chunks 4, 4, 2: crosses chunk borders
    last = lm.step(xs[10:], [prefilled])
    assert prefilled.length == stepped.length == 11
    torch.testing.assert_close(pre, torch.cat(outs[:10]), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(last, outs[10], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(prefilled.k[:, :, :11], stepped.k[:, :, :11], rtol=1e-4, atol=1e-5)


def test_layer_override_is_used(lm):
    x = torch.randn(2, lm.spec.hidden)
    cos, sin = lm.rope(torch.zeros(2, dtype=torch.long))
    base = lm.layer_step(1, x, cos, sin, [_cache(lm), _cache(lm)])
    staged = copy.deepcopy(lm.layers[1])
    same = lm.layer_step(1, x, cos, sin, [_cache(lm), _cache(lm)], layer=staged)
    assert torch.equal(base, same)
    other = lm.layer_step(1, x, cos, sin, [_cache(lm), _cache(lm)], layer=lm.layers[2])
    assert not torch.allclose(base, other)


def test_cache_overflow_raises_engine_error(lm):
    cache = _filled_cache(lm, 4, seed=0, capacity=4)
    with pytest.raises(EngineError, match="capacity"):
        lm.step(torch.randn(1, lm.spec.hidden), [cache])
    with pytest.raises(EngineError):
        lm.prefill(torch.randn(2, lm.spec.hidden), _filled_cache(lm, 3, seed=0, capacity=4))


def test_logits_use_tied_embedding_or_own_head(lm):
    h = torch.randn(3, lm.spec.hidden)
    torch.testing.assert_close(lm.logits(h), h @ lm.embed.weight.T)
    untied = QwenLM(LMSpec(layers=1, hidden=32, heads=2, kv_heads=1, ffn=64, vocab=50, tied=False))
    assert untied.logits(torch.randn(3, 32)).shape == (3, 50)
    assert untied.lm_head is not None and untied.lm_head.weight is not untied.embed.weight


def test_residual_stream_stays_order_one_through_28_layers():
    spec = LMSpec(layers=28, hidden=128, heads=4, kv_heads=2, ffn=384, vocab=256)
    preset = Preset(
        name="deep", description="", family="vibevoice", lm=spec, diffusion=None, decoder=None, semantic=None
    )
    lm = build_model(preset, seed=0).lm
    caches = [_cache(lm, 8)]
    x = lm.embed(torch.tensor([5]))
    cos, sin = lm.rope(torch.tensor([0]))
    for i in range(spec.layers):
        x = lm.layer_step(i, x, cos, sin, caches)
    rms = x.pow(2).mean().sqrt().item()
    assert 0.1 < rms < 10.0, rms
    logits = lm.logits(lm.norm(x))
    assert 0.05 < logits.std().item() < 5.0


def test_bfloat16_step_runs():
    lm = build_model("tiny", dtype=torch.bfloat16, seed=0).lm
    caches = [KVCache(lm.spec, 8, "cpu", torch.bfloat16), None]
    cos, _ = lm.rope(torch.tensor([3]))
    assert cos.dtype == torch.bfloat16
    out = lm.step(lm.embed(torch.tensor([1, 2])), caches)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()
    written = caches[0].k[:, :, : caches[0].length]  # caches are allocated, not zeroed: only written positions mean anything
    assert torch.isfinite(written.float()).all() and written.abs().sum() > 0
