"""The memory plan against the preset arithmetic and against what the engine really allocates."""

import time

import pytest

from vvbench.runtime.config import RuntimeConfig
from vvbench.runtime.engine import Engine
from vvbench.runtime.model import build_model, component_params
from vvbench.runtime.plan import memory_plan, stream_kv_bytes
from vvbench.runtime.request import SynthesisRequest


def test_large_preset_plans_in_seconds_and_weights_match_params():
    t0 = time.perf_counter()
    plan = memory_plan(RuntimeConfig(preset="vibevoice-1.5b"), streams=3, max_audio_min=90, cuda_available=False)
    assert time.perf_counter() - t0 < 20
    data = plan.to_json()
    params = component_params(build_model("vibevoice-1.5b", device="meta"))
    total = sum(v for k, v in params.items() if k != "lm_layers")
    assert data["params_total"] == total
    assert data["weights_bytes"] == total * 2  # bf16
    assert data["kv_bytes_per_token"] == 28 * 1024  # DESIGN: 28 KiB per token for 1.5B
    # 90 minutes at 7.5 Hz, twice (CFG), plus the prompt
    assert data["kv_bytes_per_stream"] > 2 * 90 * 60 * 7.5 * 28 * 1024
    assert data["max_streams"] >= 0 and data["max_audio_min_fit"] is not None


@pytest.mark.parametrize("preset, kib", [("vibevoice-7b", 56), ("realtime-0.5b", 12)])
def test_kv_per_token_matches_design(preset, kib):
    plan = memory_plan(RuntimeConfig(preset=preset), streams=1, max_audio_min=1, cuda_available=False)
    assert plan.kv_bytes_per_token == kib * 1024


def test_more_minutes_or_streams_cost_more_kv_and_fit_fewer():
    cfg = RuntimeConfig(preset="vibevoice-1.5b")
    a = memory_plan(cfg, streams=2, max_audio_min=10, budget_bytes=40 * 2**30, cuda_available=False)
    b = memory_plan(cfg, streams=2, max_audio_min=60, budget_bytes=40 * 2**30, cuda_available=False)
    assert b.devices["cpu"].kv_cache > a.devices["cpu"].kv_cache
    assert b.max_streams < a.max_streams
    tight = memory_plan(cfg, streams=8, max_audio_min=90, budget_bytes=8 * 2**30, cuda_available=False)
    assert any("does not fit" in n for n in tight.notes)


def test_offloaded_plan_splits_weights_by_device():
    cfg = RuntimeConfig(preset="vibevoice-1.5b", offload={"lm.layers.0-13": "cuda", "lm.layers.14-27": "cpu"})
    plan = memory_plan(cfg, streams=1, max_audio_min=5, budget_bytes=80 * 2**30, cuda_available=True)
    layer = plan.params["lm_layers"] // 28 * 2
    assert plan.devices["cpu"].weights == 14 * layer
    assert plan.devices["cuda:0"].weights > plan.devices["cpu"].weights
    assert plan.devices["cuda:0"].overhead > 0


def test_engine_allocates_exactly_the_planned_kv_and_conv_bytes():
    cfg = RuntimeConfig(preset="tiny", max_batch=4)
    with Engine(cfg) as e:
        h = e.submit(SynthesisRequest(text="Memory is planned before it is allocated. " * 3, seed=0))
        next(h.chunks(timeout=60))
        stats = e.stats()
        prompt = e.prompts.tokenizer.encode(h.request.text)
        planned = stream_kv_bytes(e.preset, len(prompt) + e.preset.voice_prompt_tokens, h.n_frames, 4)
        assert stats["kv_cache_bytes"] == planned
        h.audio(timeout=60)
    conv = memory_plan(cfg, streams=1, max_audio_min=1).devices["cpu"].conv_cache
    assert stats["conv_cache_bytes"] == conv
    assert stats["weights_bytes"] == sum(p.numel() * 4 for p in build_model("tiny", device="meta").parameters())
