"""build_model: parameter counts per preset, meta builds, deterministic init, offload units."""

from __future__ import annotations

import pytest
import torch

from vvbench.runtime.diffusion import DPMSolver
from vvbench.runtime.lm import KVCache
from vvbench.runtime.model import build_model, component_modules, component_params
from vvbench.runtime.presets import PRESETS

psutil = pytest.importorskip("psutil")


@pytest.mark.parametrize("name", [n for n, p in PRESETS.items() if p.reference_params])
def test_parameter_counts_match_reference(name):
    preset = PRESETS[name]
    counts = component_params(build_model(preset, device="meta"))
    for component, reference in preset.reference_params.items():
        assert counts[component] == pytest.approx(reference, rel=0.05), component


@pytest.mark.parametrize("name", list(PRESETS))
def test_component_modules_cover_every_parameter_once(name):
    model = build_model(name, device="meta")
    modules = component_modules(model)
    seen = [id(p) for m in modules.values() for p in m.parameters()]
    assert len(seen) == len(set(seen))
    assert set(seen) == {id(p) for p in model.parameters()}
    counts = component_params(model)
    assert counts["lm_layers"] == sum(c for k, c in _by_module(modules).items() if k.startswith("lm.layers."))


def _by_module(modules):
    return {k: sum(p.numel() for p in m.parameters()) for k, m in modules.items()}


def test_component_names_per_family():
    names = set(component_modules(build_model("vibevoice-7b", device="meta")))
    assert {"lm.embed", "lm.layers.0", "lm.layers.27", "lm.norm", "lm.head"} <= names
    assert {"diffusion", "decoder", "semantic", "connectors"} <= names
    tiny = build_model("tiny", device="meta")
    assert "lm.head" not in component_modules(tiny) and tiny.semantic is None
    assert set(component_params(tiny)) == {"lm", "lm_layers", "diffusion", "decoder", "connectors"}
    assert tiny.semantic_connector is None and tiny.acoustic_connector is not None
    chat = build_model("chattts", device="meta")
    assert set(component_params(chat)) == {"lm", "lm_layers", "codec"}
    assert chat.diffusion is None and chat.decoder is None and chat.acoustic_connector is None


def test_meta_build_of_7b_allocates_nothing():
    rss = psutil.Process().memory_info().rss
    model = build_model("vibevoice-7b", device="meta", dtype=torch.bfloat16)
    grown = psutil.Process().memory_info().rss - rss
    assert all(p.is_meta for p in model.parameters())
    assert grown < 200 * 2**20
    assert model.dtype == torch.bfloat16
    assert sum(p.numel() for p in model.parameters()) > 8e9


def test_init_is_deterministic_per_seed():
    a = build_model("tiny", seed=7).state_dict()
    b = build_model("tiny", seed=7).state_dict()
    c = build_model("tiny", seed=8).state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    weights = [k for k in a if k.endswith("weight") and a[k].dim() > 1]
    assert all(not torch.equal(a[k], c[k]) for k in weights)


def test_bfloat16_weights_are_the_rounded_float32_ones():
    f32 = build_model("tiny", seed=1).state_dict()
    bf16 = build_model("tiny", seed=1, dtype=torch.bfloat16).state_dict()
    assert all(torch.equal(bf16[k], f32[k].to(torch.bfloat16)) for k in f32)


def test_init_scales_embeddings_norms_and_biases():
    model = build_model("tiny", seed=0)
    assert model.lm.embed.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert torch.equal(model.lm.norm.weight, torch.ones_like(model.lm.norm.weight))
    assert model.lm.layers[0].self_attn.q_proj.bias.abs().sum() == 0
    w = model.lm.layers[0].self_attn.q_proj.weight
    assert w.std().item() == pytest.approx(256**-0.5, rel=0.05)


def test_one_frame_through_every_component_stays_finite_and_order_one():
    model = build_model("tiny", seed=0)
    lm, spec = model.lm, model.preset.lm
    caches = [KVCache(spec, 16, "cpu", torch.float32) for _ in range(2)]
    h = lm.step(lm.embed(torch.tensor([3, 9])), caches)
    latent = DPMSolver(10).sample(model.diffusion, torch.randn(2, 64), h, torch.zeros_like(h), 1.3)
    audio = model.decoder(latent, model.decoder.init_state(2, "cpu", torch.float32))
    fed_back = model.acoustic_connector(latent)
    for name, t in (("latent", latent), ("audio", audio), ("connector", fed_back)):
        assert torch.isfinite(t).all(), name
        assert 0.05 < t.pow(2).mean().sqrt().item() < 20.0, name
