"""Memory plan: predicted bytes per device for a config, streams and audio length.

Terms (all exact arithmetic from the shapes, except where marked as an estimate):
- weights: parameters of every component x dtype size, on its home device (from a meta-device
  build, so planning the 7B preset allocates nothing); streamed parts also charge two staging
  slots on their exec device;
- KV caches: per stream, the conditional cache holds the prompt (voice prompt + text tokens)
  plus one token per frame, the CFG cache one token per frame — exactly what the engine
  allocates at admission. Text tokens per audio second are measured with the runtime's own
  tokenizer and prosody plan on a reference paragraph;
- conv caches: the streaming decoder/encoder states of all `max_batch` slots (allocated once);
- activations (estimate): the largest transient of one step or one prefill chunk (a chunk's
  attention is bounded by `vvbench.runtime.prefill`, so this does not grow with the prompt);
- overhead (estimate): a CUDA context per GPU; on a CPU exec device, the fixed runtime overhead
  measured by bench/plan_memory.py.
The plan also answers how many streams fit in the device's memory at the requested length, and
how many minutes each stream may reach at the requested stream count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from vvbench.core.audio import SAMPLE_RATE
from vvbench.runtime.config import RuntimeConfig
from vvbench.runtime.offload import resolve_placement
from vvbench.runtime.presets import Preset

CUDA_CONTEXT_BYTES = 512 * 1024**2
# What a CPU process holds beyond the tensors counted here (allocator caches, kernel code,
# thread pools, Python objects of the engine): measured with bench/plan_memory.py as a fixed
# ~75-80 MiB for tiny and small (docs/benchmarks.md), independent of the model size.
CPU_RUNTIME_OVERHEAD_BYTES = 80 * 1024**2
REFERENCE_TEXT = (
    "The quarterly numbers came in ahead of plan, and the team spent most of the meeting on what "
    "to do next. Maria wanted to hire two engineers before the summer; David argued for waiting "
    "until the new contract was signed. In the end they agreed on one hire now, and a review in "
    "six weeks, when the figures for April would be known."
)

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_dtype(config: RuntimeConfig, device: str) -> torch.dtype:
    """The dtype a config runs in: explicit, else the preset's default."""
    name = config.dtype if config.dtype != "auto" else config.preset_spec.default_dtype
    return _DTYPES[name]


def text_tokens_per_audio_s(preset: Preset) -> float:
    """Prompt tokens per second of planned audio, measured with the runtime's own front end."""
    from vvbench.runtime.text import Tokenizer, plan_prosody

    tokens = len(Tokenizer(preset.lm.vocab).encode(REFERENCE_TEXT))
    return tokens / plan_prosody(REFERENCE_TEXT).duration_s


@dataclass
class DevicePlan:
    weights: int = 0
    kv_cache: int = 0
    conv_cache: int = 0
    activations: int = 0
    overhead: int = 0

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.conv_cache + self.activations + self.overhead


@dataclass
class MemoryPlan:
    preset: str
    dtype: str
    streams: int
    max_audio_min: float
    max_batch: int
    params: dict[str, int]
    kv_bytes_per_token: int
    kv_bytes_per_stream: int
    tokens_per_audio_s: float
    devices: dict[str, DevicePlan]
    budget_bytes: dict[str, int]
    max_streams: int | None
    max_audio_min_fit: float | None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "preset": self.preset,
            "dtype": self.dtype,
            "streams": self.streams,
            "max_audio_min": self.max_audio_min,
            "max_batch": self.max_batch,
            "params": self.params,
            "params_total": sum(v for k, v in self.params.items() if k != "lm_layers"),
            "weights_bytes": sum(d.weights for d in self.devices.values()),
            "kv_bytes_per_token": self.kv_bytes_per_token,
            "kv_bytes_per_stream": self.kv_bytes_per_stream,
            "tokens_per_audio_s": round(self.tokens_per_audio_s, 3),
            "devices": {k: {**d.__dict__, "total": d.total} for k, d in self.devices.items()},
            "budget_bytes": self.budget_bytes,
            "max_streams": self.max_streams,
            "max_audio_min_fit": self.max_audio_min_fit,
            "notes": self.notes,
        }


def stream_kv_bytes(preset: Preset, prompt_tokens: int, frames: int, dtype_bytes: int) -> int:
    """KV bytes the engine allocates for one stream: (prompt + frames + 1) tokens, plus frames + 1 with CFG."""
    cond = prompt_tokens + frames + 1
    uncond = frames + 1 if preset.uses_cfg else 0
    return (cond + uncond) * preset.lm.kv_bytes_per_token(dtype_bytes)


def _component_bytes(model, dtype_bytes: int) -> dict[str, int]:
    from vvbench.runtime.model import component_modules

    return {name: sum(p.numel() for p in mod.parameters()) * dtype_bytes for name, mod in component_modules(model).items()}


def _activation_bytes(preset: Preset, rows: int, dtype_bytes: int, device_type: str = "cpu") -> int:
    """Largest transient of one frame step (at `rows` slots) or one prefill chunk (estimate).

    A prefill chunk's attention scores are bounded by the chunk geometry whatever the prompt's
    length (`vvbench.runtime.prefill`), so this term does not grow with a long-form job.
    """
    from vvbench.runtime.prefill import chunk_activation_bytes

    lm = preset.lm
    lm_rows = rows * (2 if preset.uses_cfg else 1)
    step_lm = lm_rows * (3 * lm.hidden + 2 * lm.ffn) * dtype_bytes + rows * lm.vocab * 4
    prefill = chunk_activation_bytes(lm, dtype_bytes, device_type)
    conv = 0
    for spec in (preset.decoder, preset.semantic):
        if spec is None:
            continue
        positions, widest = 1, 0
        for i, ch in enumerate(spec.channels):
            widest = max(widest, positions * ch * 6)  # block input, 4x MLP hidden, output
            if i < len(spec.ratios):
                positions *= spec.ratios[i]
        conv = max(conv, rows * widest * dtype_bytes)
    diff = 0
    if preset.diffusion is not None:
        d = preset.diffusion
        diff = 2 * rows * int(d.hidden * (3 + 2 * d.ffn_ratio)) * dtype_bytes
    return max(step_lm, prefill, conv, diff)


def _budget(device: str) -> int:
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_properties(int(device.split(":")[1])).total_memory
    import psutil

    return psutil.virtual_memory().total


def memory_plan(config: RuntimeConfig, *, streams: int | None = None, max_audio_min: float = 5.0,
                budget_bytes: int | None = None, cuda_available: bool | None = None) -> MemoryPlan:
    """Plan memory for `streams` concurrent streams of up to `max_audio_min` minutes each."""
    from vvbench.runtime.model import build_model, component_params

    preset = config.preset_spec
    streams = config.max_batch if streams is None else streams
    placement = resolve_placement(config, cuda_available=cuda_available)
    dtype = resolve_dtype(config, placement.device)
    dbytes = torch.empty(0, dtype=dtype).element_size()
    model = build_model(preset, device="meta", dtype=dtype)
    params = component_params(model)
    weights = placement.by_device_bytes(_component_bytes(model, dbytes))

    tok_s = text_tokens_per_audio_s(preset)
    frames_per_min = 60 * SAMPLE_RATE / preset.samples_per_frame
    kv_tok = preset.lm.kv_bytes_per_token(dbytes)

    def stream_kv(minutes: float) -> int:
        frames = math.ceil(minutes * frames_per_min)
        prompt = preset.voice_prompt_tokens + math.ceil(minutes * 60 * tok_s) + 2
        return stream_kv_bytes(preset, prompt, frames, dbytes)

    per_stream = stream_kv(max_audio_min)
    conv_rows = 0
    for mod in (model.decoder, model.semantic, getattr(model, "codec", None)):
        if mod is not None:
            conv_rows += mod.state_bytes_per_row(dbytes)

    exec_dev = placement.device
    devices: dict[str, DevicePlan] = {d: DevicePlan(weights=b) for d, b in weights.items()}
    main = devices.setdefault(exec_dev, DevicePlan())
    main.kv_cache = streams * per_stream
    main.conv_cache = config.max_batch * conv_rows
    main.activations = _activation_bytes(preset, config.max_batch, dbytes, exec_dev.split(":")[0])
    for d, plan in devices.items():
        if d.startswith("cuda"):
            plan.overhead = CUDA_CONTEXT_BYTES
    if exec_dev == "cpu":
        main.overhead = CPU_RUNTIME_OVERHEAD_BYTES

    budgets = {d: (budget_bytes if budget_bytes is not None else _budget(d)) for d in devices}
    free = budgets[exec_dev] - (main.total - main.kv_cache)
    max_streams = max(0, free // per_stream) if per_stream else None
    per_min = stream_kv(1.0) - stream_kv(0.0)
    max_min = max(0.0, (free / max(1, streams) - stream_kv(0.0)) / per_min) if per_min else None
    notes = config.notes() + list(placement.notes)
    if streams > config.max_batch:
        notes.append(f"{streams} streams > max_batch {config.max_batch}: only {config.max_batch} run at once, the rest queue")
    for d, p in devices.items():
        if p.total > budgets[d]:
            notes.append(f"does not fit on {d}: needs {p.total / 2**30:.2f} GiB of {budgets[d] / 2**30:.2f} GiB")
    return MemoryPlan(
        preset=preset.name, dtype=str(dtype).removeprefix("torch."), streams=streams, max_audio_min=max_audio_min,
        max_batch=config.max_batch, params=params, kv_bytes_per_token=kv_tok, kv_bytes_per_stream=per_stream,
        tokens_per_audio_s=tok_s, devices=devices, budget_bytes=budgets, max_streams=int(max_streams) if max_streams is not None else None,
        max_audio_min_fit=round(max_min, 1) if max_min is not None else None, notes=notes,
    )
