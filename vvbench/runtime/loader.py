"""Build the model for a RuntimeConfig and place it according to its offload map.

Placement (see `offload.resolve_placement`): every component has a home device (its weights) and
an exec device (its compute). LM layers are split into *groups* by exec device; each stream keeps
one KV cache per group, on that group's device, so a layer computed on the CPU (`compute` mode)
attends over a CPU-resident cache while GPU layers keep theirs on the GPU. Layers whose home is
the CPU but which compute on a GPU (`stream` mode) are served by a `LayerStreamer` (pinned host
weights, side-stream prefetch of the next layer, double-buffered staging). Other components in
`compute` mode run on the CPU through `ComputeOffload`; whole components in `stream` mode are
moved to the exec device for the run (they are used every frame, so streaming them would copy
their weights each frame for no saving); the plan still charges their home device.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from vvbench.runtime.config import RuntimeConfig
from vvbench.runtime.model import build_model, component_modules
from vvbench.runtime.offload import Placement, resolve_placement
from vvbench.runtime.plan import resolve_dtype
from vvbench.runtime.presets import Preset
from vvbench.runtime.streamer import ComputeOffload, LayerStreamer

log = logging.getLogger("vvbench.loader")


@dataclass
class LMGroup:
    """LM layers that compute on one device; a stream's KV cache for them lives there too."""

    device: torch.device
    layers: list[int]


@dataclass
class LoadedModel:
    model: nn.Module
    preset: Preset
    placement: Placement
    device: torch.device
    dtype: torch.dtype
    weights_bytes: int
    groups: list[LMGroup]
    exec_devices: dict[str, torch.device]
    streamer: LayerStreamer | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def layer_provider(self) -> Callable[[int], nn.Module] | None:
        """Layer i's module for compute (a staged copy when streamed); None when nothing streams."""
        if self.streamer is None:
            return None
        streamed = {int(n.rsplit(".", 1)[1]): k for k, n in enumerate(n for n in self.placement.streamed if n.startswith("lm.layers."))}
        layers = self.model.lm.layers
        streamer = self.streamer

        def provide(i: int) -> nn.Module:
            k = streamed.get(i)
            return layers[i] if k is None else streamer.get(k)

        return provide

    def sync(self) -> None:
        """Wait for queued GPU work, so per-stage timings measure the stage."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def allocator_stats(self) -> dict:
        """CUDA allocator bytes (None without CUDA: the CPU allocator exposes no counters)."""
        if self.device.type != "cuda":
            return {"cuda_allocated_bytes": None, "cuda_reserved_bytes": None, "cuda_max_allocated_bytes": None}
        return {
            "cuda_allocated_bytes": torch.cuda.memory_allocated(self.device),
            "cuda_reserved_bytes": torch.cuda.memory_reserved(self.device),
            "cuda_max_allocated_bytes": torch.cuda.max_memory_allocated(self.device),
        }


def load_model(config: RuntimeConfig) -> LoadedModel:
    """Build the preset's model with seeded random weights and place it (see module docstring)."""
    preset = config.preset_spec
    placement = resolve_placement(config)
    device = torch.device(placement.device)
    dtype = resolve_dtype(config, placement.device)
    if config.cudnn_benchmark and torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True
    trivial = all(c.home == placement.device and c.exec == placement.device for c in placement.components.values())
    model = build_model(preset, device=placement.device if trivial else "cpu", dtype=dtype, seed=config.weights_seed)
    model.eval().requires_grad_(False)
    weights_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    modules = component_modules(model)
    exec_devices: dict[str, torch.device] = {}
    streamer = None
    if not trivial:
        streamed_layers = []
        for name, mod in modules.items():
            c = placement[name]
            exec_devices[name] = torch.device(c.exec)
            if name.startswith("lm.layers.") and c.streamed:
                mod.to(c.home)
                streamed_layers.append(mod)
            else:
                mod.to(c.exec)
        if streamed_layers:
            streamer = LayerStreamer(streamed_layers, placement.device)
        for comp in ("diffusion", "decoder", "semantic"):
            c = placement.components.get(comp)
            if c is not None and c.exec != placement.device:
                setattr(model, comp, ComputeOffload(getattr(model, comp), placement.device, c.exec))
    else:
        exec_devices = {name: device for name in modules}
    groups: dict[str, LMGroup] = {}
    for i in range(preset.lm.layers):
        dev = exec_devices[f"lm.layers.{i}"]
        groups.setdefault(str(dev), LMGroup(dev, [])).layers.append(i)
    if config.compile:
        _compile(model)
    loaded = LoadedModel(
        model=model, preset=preset, placement=placement, device=device, dtype=dtype,
        weights_bytes=weights_bytes, groups=list(groups.values()), exec_devices=exec_devices,
        streamer=streamer, notes=list(placement.notes),
    )
    for note in loaded.notes:
        log.warning(note)
    return loaded


def _compile(model: nn.Module) -> None:
    """torch.compile the per-frame modules whose shapes stay fixed (batch-invariant slots)."""
    for comp in ("diffusion", "decoder", "semantic"):
        mod = getattr(model, comp, None)
        if mod is not None:
            mod.forward = torch.compile(mod.forward, dynamic=False)
