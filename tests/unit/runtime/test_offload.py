"""Offload map parsing, placement resolution, memory accounting, layer streaming."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from vvbench.core.errors import ConfigError
from vvbench.runtime.config import RuntimeConfig, validate_config
from vvbench.runtime.offload import resolve_placement
from vvbench.runtime.offload_map import component_names, parse_offload_map
from vvbench.runtime.presets import get_preset
from vvbench.runtime.streamer import ComputeOffload, LayerStreamer

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _parse_error(mapping: dict, preset: str = "tiny") -> str:
    with pytest.raises(ConfigError) as info:
        parse_offload_map(mapping, get_preset(preset))
    msg = str(info.value)
    assert msg.startswith("offload: ")
    return msg


# -- parse_offload_map ------------------------------------------------------------------------


def test_half_offloaded_map_parses_into_entries():
    entries = parse_offload_map(
        {"lm.layers.0-15": "cuda", "lm.layers.16-27": "cpu", "diffusion": "cuda:0", "semantic": "auto"},
        get_preset("vibevoice-1.5b"),
    )
    assert [e.key for e in entries] == ["lm.layers.0-15", "lm.layers.16-27", "diffusion", "semantic"]
    assert entries[0].layers == (0, 15) and len(entries[0].components) == 16
    assert entries[1].components[-1] == "lm.layers.27"
    assert entries[2].device == "cuda:0" and entries[2].components == ("diffusion",)


def test_single_layer_keys_cover_the_lm():
    entries = parse_offload_map({f"lm.layers.{i}": "cpu" for i in range(4)}, get_preset("tiny"))
    assert [e.layers for e in entries] == [(0, 0), (1, 1), (2, 2), (3, 3)]


def test_lm_key_covers_embed_layers_norm_and_untied_head_only():
    tied = parse_offload_map({"lm": "cpu"}, get_preset("tiny"))[0].components
    assert tied == ("lm.embed", "lm.layers.0", "lm.layers.1", "lm.layers.2", "lm.layers.3", "lm.norm")
    untied = parse_offload_map({"lm": "cpu"}, get_preset("vibevoice-7b"))[0].components
    assert untied[-1] == "lm.head" and len(untied) == 28 + 3


def test_component_names_follow_the_preset():
    assert component_names(get_preset("tiny"))[-3:] == ["diffusion", "decoder", "connectors"]
    assert "semantic" in component_names(get_preset("vibevoice-1.5b"))
    assert "lm.head" in component_names(get_preset("vibevoice-7b"))
    chattts = component_names(get_preset("chattts"))
    assert chattts[-1] == "codec" and "diffusion" not in chattts and "connectors" not in chattts


def test_unknown_key_lists_the_presets_keys():
    msg = _parse_error({"attention": "cpu"})
    assert "'attention'" in msg and "allowed keys for preset tiny" in msg
    assert "diffusion" in msg and "lm.layers.A-B (layers 0-3)" in msg
    assert "semantic" not in msg  # tiny has no semantic encoder, so it is not offered


@pytest.mark.parametrize("key", ["lm.layers.x", "lm.layers.1-", "lm.layers.-1", "lm.layers.1-2-3", "lm.layers", "lm.layers.1 - 2"])
def test_malformed_range(key):
    msg = _parse_error({key: "cpu"})
    assert repr(key) in msg and "malformed layer range" in msg and "0 <= A <= B <= 3" in msg


def test_range_past_the_layer_count_names_the_valid_range():
    msg = _parse_error({"lm.layers.0-13": "cuda", "lm.layers.14-28": "cpu"}, "vibevoice-1.5b")
    assert "'lm.layers.14-28'" in msg and "layer 28 is out of range" in msg and "layers 0-27" in msg
    assert "layers 0-3" in _parse_error({"lm.layers.4": "cpu"})


def test_reversed_range_suggests_the_ordered_one():
    msg = _parse_error({"lm.layers.3-1": "cpu", "lm.layers.0": "cuda"})
    assert "'lm.layers.3-1'" in msg and "reversed" in msg and "lm.layers.1-3" in msg


def test_overlapping_ranges_name_both_keys_and_the_shared_layers():
    msg = _parse_error({"lm.layers.0-15": "cuda", "lm.layers.12-27": "cpu"}, "vibevoice-1.5b")
    assert "'lm.layers.0-15'" in msg and "'lm.layers.12-27'" in msg and "layers 12-15" in msg
    # A range nested inside another, listed first.
    msg = _parse_error({"lm.layers.1": "cpu", "lm.layers.0-3": "cuda"})
    assert "'lm.layers.0-3'" in msg and "'lm.layers.1'" in msg and "overlap" in msg


def test_incomplete_ranges_name_the_missing_layers():
    msg = _parse_error({"lm.layers.0-9": "cuda", "lm.layers.16-25": "cpu"}, "vibevoice-1.5b")
    assert "cover layers 0-27" in msg and "missing 10-15, 26-27" in msg
    assert "missing 2-3" in _parse_error({"lm.layers.0-1": "cpu", "diffusion": "cuda"})


@pytest.mark.parametrize(
    ("preset", "key", "words"),
    [
        ("tiny", "semantic", "has no semantic encoder"),
        ("chattts", "diffusion", "has no diffusion head"),
        ("chattts", "decoder", "has no acoustic decoder"),
        ("chattts", "connectors", "has no connectors"),
        ("tiny", "codec", "has no codec"),
        ("vibevoice-1.5b", "lm.head", "tied to lm.embed"),
    ],
)
def test_component_the_preset_lacks(preset, key, words):
    msg = _parse_error({key: "cpu"}, preset)
    assert repr(key) in msg and f"preset {preset}" in msg and words in msg and "allowed keys" in msg


def test_lm_cannot_be_combined_with_its_parts():
    msg = _parse_error({"lm": "cpu", "lm.layers.0-3": "cuda"})
    assert "'lm'" in msg and "'lm.layers.0-3'" in msg
    assert "'lm.embed'" in _parse_error({"lm.embed": "cuda", "lm": "cpu"})


@pytest.mark.parametrize("value", ["gpu", "CPU", "cuda:", "cuda:x", "", 1, None])
def test_unknown_device_value(value):
    msg = _parse_error({"decoder": value})
    assert "'decoder'" in msg and f"unknown device {value!r}" in msg and "cpu, cuda, cuda:N, auto" in msg


def test_runtime_config_rejects_a_bad_map_naming_the_knob():
    with pytest.raises(ConfigError, match=r"^offload: 'semantic': preset tiny has no semantic encoder"):
        validate_config({"preset": "tiny", "offload": {"semantic": "cpu"}})


# -- resolve_placement --------------------------------------------------------------------------


HALF = {"lm.layers.0-13": "cuda", "lm.layers.14-27": "cpu", "semantic": "cpu"}


def _config(**kw) -> RuntimeConfig:
    return RuntimeConfig(**{"preset": "vibevoice-1.5b", **kw})


def test_stream_mode_keeps_offloaded_weights_on_cpu_and_computes_on_the_gpu():
    p = resolve_placement(_config(offload=HALF), cuda_available=True, cuda_count=1)
    assert p.device == "cuda:0" and p.notes == ()
    assert (p["lm.layers.0"].home, p["lm.layers.0"].exec) == ("cuda:0", "cuda:0")
    assert (p["lm.layers.14"].home, p["lm.layers.14"].exec) == ("cpu", "cuda:0")
    assert p["lm.layers.14"].source == "lm.layers.14-27" and p["diffusion"].source is None
    assert p.streamed == [f"lm.layers.{i}" for i in range(14, 28)] + ["semantic"]
    assert p.remote == []
    assert (p["diffusion"].home, p["diffusion"].exec) == ("cuda:0", "cuda:0")


def test_compute_mode_runs_offloaded_parts_on_the_cpu():
    p = resolve_placement(_config(offload=HALF, offload_mode="compute"), cuda_available=True, cuda_count=1)
    assert (p["lm.layers.27"].home, p["lm.layers.27"].exec) == ("cpu", "cpu")
    assert p.streamed == []
    assert p.remote == [f"lm.layers.{i}" for i in range(14, 28)] + ["semantic"]


def test_gpu_index_beyond_the_device_count_is_an_error():
    config = _config(offload={"decoder": "cuda:1"})
    with pytest.raises(ConfigError) as info:
        resolve_placement(config, cuda_available=True, cuda_count=1)
    msg = str(info.value)
    assert msg.startswith("offload: 'decoder'") and "'cuda:1'" in msg and "allowed: cpu, cuda:0" in msg
    p = resolve_placement(config, cuda_available=True, cuda_count=2)
    assert (p["decoder"].home, p["decoder"].exec) == ("cuda:1", "cuda:1") and p.remote == ["decoder"]
    with pytest.raises(ConfigError, match=r"^device: 'cuda:2'"):
        resolve_placement(_config(device="cuda:2"), cuda_available=True, cuda_count=2)


def test_gpu_entry_on_a_cpu_default_and_auto_entries():
    p = resolve_placement(_config(device="cpu", offload={"decoder": "cuda", "diffusion": "auto"}), cuda_available=True, cuda_count=1)
    assert p.device == "cpu"
    assert (p["decoder"].home, p["decoder"].exec) == ("cuda:0", "cuda:0")
    assert (p["diffusion"].home, p["diffusion"].exec) == ("cpu", "cpu")
    assert p.streamed == [] and p.remote == ["decoder"]


def test_without_cuda_every_map_resolves_to_cpu_with_a_note():
    p = resolve_placement(_config(offload=HALF), cuda_available=False)
    assert p.device == "cpu" and p.streamed == [] and p.remote == []
    assert {(c.home, c.exec) for c in p.components.values()} == {("cpu", "cpu")}
    assert list(p.components) == component_names(get_preset("vibevoice-1.5b"))
    assert p.notes == ("no CUDA device: offload map resolves to CPU (3 entries ignored)",)
    assert resolve_placement(_config(), cuda_available=False).notes == ()


def test_explicit_cuda_without_cuda_is_an_error():
    with pytest.raises(ConfigError, match=r"^device: 'cuda' but no CUDA device is available; use 'auto' or 'cpu'"):
        resolve_placement(_config(device="cuda"), cuda_available=False)


def test_defaults_to_torchs_answer():
    p = resolve_placement(_config(device="auto"))
    assert p.device == ("cuda:0" if torch.cuda.is_available() else "cpu")
    assert p.cuda_available == torch.cuda.is_available()


# -- Placement.by_device_bytes and describe ------------------------------------------------------


def _tiny_bytes() -> dict[str, int]:
    sizes = {"lm.embed": 1000, "lm.norm": 1, "diffusion": 500, "decoder": 70, "connectors": 5}
    sizes.update({f"lm.layers.{i}": 100 * (i + 1) for i in range(4)})
    return sizes


def test_by_device_bytes_charges_homes_and_two_staging_slots():
    config = RuntimeConfig(preset="tiny", offload={"lm.layers.0-1": "cuda", "lm.layers.2-3": "cpu"})
    p = resolve_placement(config, cuda_available=True, cuda_count=1)
    # cpu holds layers 2 and 3; the GPU holds the rest plus slots sized for layers 3 and 2.
    assert p.by_device_bytes(_tiny_bytes()) == {"cpu": 300 + 400, "cuda:0": 1000 + 100 + 200 + 1 + 500 + 70 + 5 + 400 + 300}

    config = RuntimeConfig(preset="tiny", offload={"lm.layers.0-1": "cuda", "lm.layers.2-3": "cpu", "diffusion": "cpu"})
    p = resolve_placement(config, cuda_available=True, cuda_count=1)
    # The two largest streamed components are now the diffusion head (500) and layer 3 (400).
    assert p.by_device_bytes(_tiny_bytes()) == {"cpu": 300 + 400 + 500, "cuda:0": 1000 + 100 + 200 + 1 + 70 + 5 + 500 + 400}

    p = resolve_placement(config.model_copy(update={"offload_mode": "compute"}), cuda_available=True, cuda_count=1)
    assert p.by_device_bytes(_tiny_bytes()) == {"cpu": 1200, "cuda:0": 1376}


def test_by_device_bytes_on_cpu_and_name_mismatches():
    p = resolve_placement(RuntimeConfig(preset="tiny"), cuda_available=False)
    assert p.by_device_bytes(_tiny_bytes()) == {"cpu": sum(_tiny_bytes().values())}
    bad = {**_tiny_bytes(), "semantic": 9}
    del bad["decoder"]
    with pytest.raises(ValueError, match="missing decoder; unknown semantic"):
        p.by_device_bytes(bad)


def test_describe_groups_alike_layers():
    config = RuntimeConfig(preset="tiny", offload={"lm.layers.0-1": "cuda", "lm.layers.2-3": "cpu", "decoder": "cpu"})
    rows = resolve_placement(config.model_copy(update={"offload_mode": "compute"}), cuda_available=True, cuda_count=1).describe()
    assert rows[0].split() == ["component", "home", "exec", "how"]
    assert [r.split()[0] for r in rows[1:]] == ["lm.embed", "lm.layers.0-1", "lm.layers.2-3", "lm.norm", "diffusion", "decoder", "connectors"]
    assert rows[3].split()[1:3] == ["cpu", "cpu"] and "computed on cpu" in rows[3]
    streamed = resolve_placement(config, cuda_available=True, cuda_count=1).describe()
    assert streamed[3].split()[1:3] == ["cpu", "cuda:0"] and "streamed" in streamed[3]
    assert "resident" in streamed[2]


# -- LayerStreamer (CPU path) ------------------------------------------------------------------


def _layers(n: int, width: int = 16, seed: int = 0) -> list[nn.Module]:
    torch.manual_seed(seed)
    return [nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width)) for _ in range(n)]


def _run_frames(get, n: int, x: torch.Tensor, frames: int) -> tuple[torch.Tensor, list[nn.Module]]:
    handed = []
    with torch.no_grad():
        for _ in range(frames):
            for i in range(n):
                m = get(i)
                handed.append(m)
                x = m(x)
    return x, handed


def test_streamed_frames_equal_the_original_layers_bit_for_bit():
    layers = _layers(6)
    before = copy.deepcopy(layers)
    x = torch.randn(4, 16, generator=torch.Generator().manual_seed(1))
    expected, _ = _run_frames(lambda i: layers[i], 6, x, frames=2)
    streamer = LayerStreamer(layers, "cpu")
    got, handed = _run_frames(streamer.get, 6, x, frames=2)
    assert torch.equal(got, expected)
    # The home layers are untouched and never handed out.
    assert all(torch.equal(a, b) for l0, l1 in zip(before, layers) for a, b in zip(l0.parameters(), l1.parameters()))
    assert not any(m is layer for m in handed for layer in layers)


def test_staging_buffers_alternate_and_stats_count_copies():
    streamer = LayerStreamer(_layers(6), "cpu")
    s0, s1 = streamer.staging
    _, handed = _run_frames(streamer.get, 6, torch.randn(2, 16), frames=2)
    assert [m is s0 for m in handed] == [True, False] * 6
    stats = streamer.stats()
    # One cold load of layer 0, then one prefetch per get (the last wraps to the next frame's 0).
    assert stats.copies == 13 and stats.misses == 1
    layer_bytes = sum(p.numel() * 4 for p in streamer.layers[0].parameters())
    assert stats.bytes_copied == 13 * layer_bytes
    assert stats.wait_s > 0


def test_odd_layer_count_never_hands_out_one_buffer_twice_in_a_row():
    streamer = LayerStreamer(_layers(5), "cpu")
    _, handed = _run_frames(streamer.get, 5, torch.randn(2, 16), frames=3)
    assert all(a is not b for a, b in zip(handed, handed[1:]))
    assert streamer.stats().misses == 1


def test_two_layers_stay_resident_until_invalidated():
    layers = _layers(2)
    streamer = LayerStreamer(layers, "cpu")
    x = torch.randn(3, 16)
    _run_frames(streamer.get, 2, x, frames=3)
    assert streamer.stats().copies == 2
    with torch.no_grad():
        layers[1][0].weight.add_(1.0)
    streamer.invalidate()
    got, _ = _run_frames(streamer.get, 2, x, frames=1)
    expected, _ = _run_frames(lambda i: layers[i], 2, x, frames=1)
    assert torch.equal(got, expected)


def test_out_of_order_get_loads_the_right_layer():
    layers = _layers(6)
    streamer = LayerStreamer(layers, "cpu")
    x = torch.randn(2, 16)
    with torch.no_grad():
        streamer.get(0)
        assert torch.equal(streamer.get(3)(x), layers[3](x))
        assert torch.equal(streamer.get(4)(x), layers[4](x))
    assert streamer.stats().misses == 2
    with pytest.raises(IndexError, match="out of range 0-5"):
        streamer.get(6)


def test_staging_is_inference_only():
    streamer = LayerStreamer(_layers(3), "cpu")
    assert all(p.requires_grad for p in streamer.layers[0].parameters())
    assert not any(p.requires_grad for s in streamer.staging for p in s.parameters())


def test_mismatched_structure_is_rejected():
    layers = _layers(4)
    layers[2] = nn.Sequential(nn.Linear(16, 33), nn.GELU(), nn.Linear(33, 16))
    with pytest.raises(ValueError, match=r"layer 2 differs in structure from layer 0"):
        LayerStreamer(layers, "cpu")
    layers = _layers(3)
    layers[1][1] = nn.ReLU()
    with pytest.raises(ValueError, match=r"layer 1 differs.*GELU.*ReLU"):
        LayerStreamer(layers, "cpu")
    with pytest.raises(ValueError, match="at least one layer"):
        LayerStreamer([], "cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_cuda_exec_device_without_cuda_is_refused():
    with pytest.raises(ValueError, match="needs CUDA"):
        LayerStreamer(_layers(2), "cuda")


class _Records(nn.Module):
    def __init__(self):
        super().__init__()
        self.seen: list[torch.device] = []

    def forward(self, x, extra):
        self.seen += [x.device, extra["h"].device]
        return x * 2, {"h": extra["h"] + 1, "n": extra["n"]}


def test_compute_offload_moves_inputs_in_and_outputs_back():
    inner = _Records()
    wrapped = ComputeOffload(inner, return_device="meta", compute_device="cpu")
    x, h = torch.ones(2), torch.zeros(3)
    y, rest = wrapped(x, extra={"h": h, "n": 7})
    assert inner.seen == [torch.device("cpu")] * 2
    assert y.device == torch.device("meta") and rest["h"].device == torch.device("meta") and rest["n"] == 7


# -- GPU: the real side-stream path --------------------------------------------------------------


@pytest.mark.gpu
@needs_cuda
def test_gpu_streamer_pins_home_weights_and_matches_resident_layers():
    layers = _layers(6, width=64)
    resident = [copy.deepcopy(layer).cuda() for layer in layers]
    streamer = LayerStreamer(layers, "cuda")
    assert all(p.is_pinned() and p.device.type == "cpu" for layer in layers for p in layer.parameters())
    assert all(p.device.type == "cuda" for s in streamer.staging for p in s.parameters())
    assert streamer.copy_stream != torch.cuda.current_stream()
    x = torch.randn(8, 64, device="cuda")
    expected, _ = _run_frames(lambda i: resident[i], 6, x, frames=2)
    got, handed = _run_frames(streamer.get, 6, x, frames=2)
    torch.cuda.synchronize()
    assert torch.equal(got, expected)
    assert all(a is not b for a, b in zip(handed, handed[1:]))
    stats = streamer.stats()
    assert stats.copies == 13 and stats.misses == 1 and stats.wait_s >= 0.0


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("rows", [64, 8192])
def test_gpu_streamer_orders_copies_against_compute(rows):
    # 64 rows: copies dominate, so a missing wait on a slot's copy reads half-copied weights.
    # 8192 rows: compute dominates, so a prefetch not ordered after the previous layer's
    # kernels would overwrite weights they are still reading.
    layers = _layers(6, width=2048)
    resident = [copy.deepcopy(layer).cuda() for layer in layers]
    streamer = LayerStreamer(layers, "cuda:0")
    x = torch.randn(rows, 2048, device="cuda", generator=torch.Generator("cuda").manual_seed(0)) / 8
    expected, _ = _run_frames(lambda i: resident[i], 6, x, frames=3)
    got, _ = _run_frames(streamer.get, 6, x, frames=3)
    torch.cuda.synchronize()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert streamer.stats().copies == 19


@pytest.mark.gpu
@needs_cuda
def test_gpu_compute_offload_runs_on_cpu_and_returns_to_the_gpu():
    layer = _layers(1)[0]
    wrapped = ComputeOffload(layer, return_device="cuda")
    x = torch.randn(4, 16, device="cuda")
    with torch.no_grad():
        y = wrapped(x)
        assert y.device.type == "cuda" and torch.equal(y.cpu(), layer(x.cpu()))
