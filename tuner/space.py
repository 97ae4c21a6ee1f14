"""The search space: which knobs a study varies, over which values, and how a trial's params become knobs.

A space is a YAML mapping of knob -> dimension (`load_space`), or the built-in default derived
from the `RuntimeConfig` knob table (`default_space`). A dimension is a range `{low, high}`
(optional `step`, `log`) or `{choices: [...]}`; `diffusion_steps` also takes the adaptive policy
`{adaptive: {min: DIM, max: DIM, per_char: DIM}}`; `offload` is `{gpu_layers: DIM, components:
{diffusion: [cuda, cpu], ...}, mode: [stream, compute]}`: the LM's first `gpu_layers` layers on
the GPU, the rest on the CPU, plus a device per named component. Every dimension is a plain
Optuna distribution of ints, floats or strings (never lists: they come back from storage as
lists and break `enqueue_trial` after a reload), and `params_to_knobs` rebuilds the offload map
and the adaptive policy from them.

Each knob's hot/restart flag comes from the knob table (`knob_fields`), never from here, so the
grouping of trials by server config follows the runtime. Choices where the issue is silent:
- the default space: `batch_window_ms` 0-50 ms, `max_batch` 1-8, `diffusion_steps` 2 up to the
  preset's default (the reference config uses the maximum), `first_chunk_frames` 1-4,
  `chunk_frames` 2-16, `batch_invariant` on/off, `threads` default or 1..cores, and `cfg_scale`
  left fixed (it changes the audio's character, not only its cost). `offload` only with CUDA;
- without CUDA the offload dimension is dropped with a note (every map resolves to the CPU, so
  it could only add noise), while the memory plan still prices maps for a GPU budget.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import optuna
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from vvbench.core.errors import ConfigError
from vvbench.core.validation import format_validation_error
from vvbench.runtime.config import HOT_KNOBS, RuntimeConfig, knob_fields, validate_config

INT_KNOBS = frozenset({"max_batch", "first_chunk_frames", "chunk_frames", "threads", "diffusion_steps"})
OFFLOAD_DEVICES = ("cuda", "cpu")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Dim(_Model):
    """A range `{low, high}` (optional `step`, `log`) or a list of `choices`."""

    low: float | None = Field(None, description="smallest value (ranges)")
    high: float | None = Field(None, description="largest value (ranges)")
    step: float | None = Field(None, gt=0, description="grid step (ranges)")
    log: bool = Field(False, description="sample on a log scale (ranges)")
    choices: list[str | int | float | bool | None] | None = Field(None, min_length=1, description="the values to choose from")

    @model_validator(mode="after")
    def _shape(self) -> Dim:
        ranged = self.low is not None or self.high is not None
        if self.choices is not None:
            if ranged:
                raise ValueError("give either choices or low/high, not both")
            return self
        if self.low is None or self.high is None:
            raise ValueError("give low and high, or choices")
        if self.low > self.high:
            raise ValueError(f"empty range: low ({self.low:g}) > high ({self.high:g})")
        if self.log and self.low <= 0:
            raise ValueError("a log range needs low > 0")
        return self

    def distribution(self, integer: bool) -> optuna.distributions.BaseDistribution:
        """The Optuna distribution of this dimension (ints for integer knobs)."""
        if self.choices is not None:
            return optuna.distributions.CategoricalDistribution(self.choices)
        if integer:
            return optuna.distributions.IntDistribution(int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        return optuna.distributions.FloatDistribution(self.low, self.high, log=self.log, step=self.step)

    def values(self) -> list[Any]:
        """The extreme values (validated against the config model when the space is loaded)."""
        return list(self.choices) if self.choices is not None else [self.low, self.high]


class Adaptive(_Model):
    """The adaptive steps policy's three parameters, each a dimension."""

    min: Dim = Field(description="fewest steps any request gets")
    max: Dim = Field(description="steps for the shortest inputs")
    per_char: Dim = Field(description="steps removed per input character")


class StepsDim(Dim):
    """Fixed steps (a range or choices), or the adaptive policy."""

    adaptive: Adaptive | None = Field(None, description="tune the adaptive policy {min, max, per_char} instead")

    @model_validator(mode="before")
    @classmethod
    def _adaptive_alone(cls, data: Any) -> Any:
        if isinstance(data, dict) and "adaptive" in data and len(data) > 1:
            raise ValueError("adaptive takes no low/high/choices beside it")
        return data

    @model_validator(mode="after")
    def _shape(self) -> StepsDim:
        return self if self.adaptive is not None else Dim._shape(self)


class OffloadDim(_Model):
    """The offload map as GPU-resident LM layers plus a device per component."""

    gpu_layers: Dim | None = Field(None, description="LM layers 0..N-1 on the GPU, the rest on the CPU")
    components: dict[str, list[str]] = Field(default_factory=dict, description="component -> devices to choose from (cuda, cpu)")
    mode: list[str] | None = Field(None, min_length=1, description="offload_mode choices: stream, compute")


class SearchSpace(_Model):
    """Knob -> dimension (see the module docstring)."""

    batch_window_ms: Dim | None = None
    max_batch: Dim | None = None
    diffusion_steps: StepsDim | None = None
    first_chunk_frames: Dim | None = None
    chunk_frames: Dim | None = None
    cfg_scale: Dim | None = None
    threads: Dim | None = None
    batch_invariant: Dim | None = None
    compile: Dim | None = None
    offload: OffloadDim | None = None
    notes: list[str] = Field(default_factory=list, exclude=True, description="why a dimension was left out")

    def knobs(self) -> list[str]:
        """The knobs this space varies."""
        return [k for k in type(self).model_fields if k != "notes" and getattr(self, k) is not None]

    def distributions(self) -> dict[str, optuna.distributions.BaseDistribution]:
        """Param name -> Optuna distribution; adaptive steps and offload expand to several params."""
        out: dict[str, optuna.distributions.BaseDistribution] = {}
        for knob in self.knobs():
            dim = getattr(self, knob)
            if knob == "offload":
                if dim.gpu_layers is not None:
                    out["offload.gpu_layers"] = dim.gpu_layers.distribution(True)
                for comp, devices in dim.components.items():
                    out[f"offload.{comp}"] = optuna.distributions.CategoricalDistribution(devices)
                if dim.mode:
                    out["offload_mode"] = optuna.distributions.CategoricalDistribution(dim.mode)
            elif knob == "diffusion_steps" and dim.adaptive is not None:
                for part in ("min", "max", "per_char"):
                    out[f"diffusion_steps.{part}"] = getattr(dim.adaptive, part).distribution(part != "per_char")
            else:
                out[knob] = dim.distribution(knob in INT_KNOBS)
        return out

    def restart_params(self) -> list[str]:
        """Params whose knobs need a restart (they define a trial's server config)."""
        hot = {k for k, v in knob_fields().items() if v["hot"]}
        return [p for p in self.distributions() if p.split(".")[0] not in hot]


def params_to_knobs(params: dict[str, Any], preset_layers: int) -> dict[str, Any]:
    """A trial's params -> RuntimeConfig knobs (the offload map and adaptive policy rebuilt)."""
    knobs: dict[str, Any] = {}
    offload: dict[str, str] = {}
    adaptive: dict[str, Any] = {}
    for name, value in params.items():
        if name == "offload.gpu_layers":
            n = int(value)
            if n > 0:
                offload[f"lm.layers.0-{n - 1}"] = "cuda"
            if n < preset_layers:
                offload[f"lm.layers.{n}-{preset_layers - 1}"] = "cpu"
        elif name.startswith("offload."):
            offload[name.split(".", 1)[1]] = value
        elif name.startswith("diffusion_steps."):
            adaptive[name.split(".", 1)[1]] = value
        else:
            knobs[name] = value
    if offload:
        knobs["offload"] = offload
    if adaptive:
        knobs["diffusion_steps"] = adaptive
    return knobs


def _check_values(space: SearchSpace, base: RuntimeConfig, source: str) -> None:
    """Every extreme of every dimension must be a value the config model accepts."""
    data = base.model_dump(mode="json")
    for knob in space.knobs():
        dim = getattr(space, knob)
        if knob == "offload":
            layers = base.preset_spec.lm.layers
            counts = [int(v) for v in dim.gpu_layers.values()] if dim.gpu_layers else []
            for n in counts:
                if n is None or not 0 <= n <= layers:
                    raise ConfigError(f"{source}: offload.gpu_layers: {n} is outside 0..{layers} (preset {base.preset})")
            for comp, devices in dim.components.items():
                for dev in devices:
                    try:
                        validate_config({**data, "offload": {comp: dev}})
                    except ConfigError as exc:
                        raise ConfigError(f"{source}: offload.components.{comp}: {exc}") from None
            for mode in dim.mode or []:
                _check_one(data, "offload_mode", mode, source)
            continue
        if knob == "diffusion_steps" and dim.adaptive is not None:
            for part in ("min", "max"):
                for v in getattr(dim.adaptive, part).values():
                    _check_one(data, "diffusion_steps", v, f"{source}: diffusion_steps.adaptive.{part}")
            continue
        for v in dim.values():
            _check_one(data, knob, int(v) if knob in INT_KNOBS and isinstance(v, float) else v, source)


def _check_one(data: dict, knob: str, value: Any, source: str) -> None:
    try:
        validate_config({**data, knob: value})
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def parse_space(data: Any, base: RuntimeConfig, source: str = "search space", *, cuda_available: bool) -> SearchSpace:
    """Validate a space mapping against the model and `base`'s preset; ConfigError naming the key."""
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{source}: expected a mapping of knob -> dimension, e.g. max_batch: {{low: 1, high: 8}}")
    try:
        space = SearchSpace.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source, model=SearchSpace, unknown="unknown knob")) from None
    _check_values(space, base, source)
    _include_baseline(space, base)
    if space.offload is not None and not cuda_available:
        space.offload = None
        space.notes.append("offload left out: no CUDA device here, so every offload map resolves to the CPU")
    return space


def _include_baseline(space: SearchSpace, base: RuntimeConfig) -> None:
    """Trial 0 is the base config: a choices dimension without the base value gets it added."""
    for name, value in baseline_params(space, base).items():
        knob = name.split(".")[0]
        dim = getattr(space, knob) if knob != "offload_mode" else space.offload
        if knob == "offload" or knob == "offload_mode" or (knob == "diffusion_steps" and dim.adaptive is not None):
            continue
        if dim.choices is not None and value not in dim.choices:
            dim.choices.append(value)
            space.notes.append(f"{knob}: the base config's {value!r} added to the choices (trial 0 is the baseline)")


def load_space(path: str | Path, base: RuntimeConfig, *, cuda_available: bool) -> SearchSpace:
    """Read a space YAML file (see the module docstring)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read search space ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    return parse_space(data, base, str(path), cuda_available=cuda_available)


def default_space(base: RuntimeConfig, *, cuda_available: bool, cores: int | None = None) -> SearchSpace:
    """The built-in space for `base`'s preset (see the module docstring for the ranges)."""
    preset = base.preset_spec
    cores = cores or os.cpu_count() or 1
    data: dict[str, Any] = {
        "batch_window_ms": {"low": 0, "high": 50},
        "max_batch": {"low": 1, "high": 8},
        "first_chunk_frames": {"low": 1, "high": 4},
        "chunk_frames": {"low": 2, "high": 16},
        "batch_invariant": {"choices": [True, False]},
        "threads": {"choices": [None, *range(1, cores + 1)]},
    }
    if preset.diffusion is not None:
        data["diffusion_steps"] = {"low": 2, "high": max(2, preset.diffusion.default_steps)}
    if cuda_available:
        components = {c: list(OFFLOAD_DEVICES) for c in ("diffusion", "decoder", "semantic") if getattr(preset, c, None) is not None}
        data["offload"] = {"gpu_layers": {"low": 0, "high": preset.lm.layers}, "components": components}
    space = parse_space(data, base, "default space", cuda_available=cuda_available)
    if not cuda_available:
        space.notes.append("offload left out: no CUDA device here, so every offload map resolves to the CPU")
    return space


def hot_only(space: SearchSpace, why: str) -> SearchSpace:
    """`space` without its restart-only knobs (a service vvbench cannot restart), the note saying `why`."""
    cold = [k for k in space.knobs() if k not in HOT_KNOBS]
    for knob in cold:
        setattr(space, knob, None)
    if cold:
        space.notes.append(f"{', '.join(cold)} left out: restart-only knobs, and {why}")
    if not space.knobs():
        raise ConfigError(f"search space: nothing left to tune ({why}); give hot knobs: {', '.join(sorted(HOT_KNOBS))}")
    return space


def _steps_of(config: RuntimeConfig) -> tuple[int, int, float]:
    """(min, max, per_char) of a config's steps: a fixed count is min = max, per_char 0."""
    steps = config.diffusion_steps
    if steps is None or isinstance(steps, int):
        n = config.steps_for(0)
        return n, n, 0.0
    return steps.min, steps.max, steps.per_char


def baseline_params(space: SearchSpace, base: RuntimeConfig) -> dict[str, Any]:
    """The params that describe `base` itself in `space` (trial 0, the baseline)."""
    layers = base.preset_spec.lm.layers
    out: dict[str, Any] = {}
    for name, dist in space.distributions().items():
        if name == "offload.gpu_layers":
            on_cpu = {int(k.split(".")[2].split("-")[0]) for k, v in base.offload.items() if k.startswith("lm.layers") and v == "cpu"}
            out[name] = min(on_cpu) if on_cpu else layers
        elif name.startswith("offload."):
            out[name] = base.offload.get(name.split(".", 1)[1], "cuda")
        elif name.startswith("diffusion_steps."):
            low, high, per_char = _steps_of(base)
            out[name] = {"min": low, "max": high, "per_char": per_char}[name.split(".", 1)[1]]
        elif name == "diffusion_steps":
            out[name] = _steps_of(base)[1]
        elif getattr(base, name) is not None or isinstance(dist, optuna.distributions.CategoricalDistribution):
            out[name] = getattr(base, name)
        # else: a range cannot hold "the runtime's default" (None): the sampler picks that one
    return out


def reference_knobs(space: SearchSpace, base: RuntimeConfig) -> dict[str, Any]:
    """The reference configuration's knobs: the base config at the space's maximum diffusion steps."""
    dim = space.diffusion_steps
    if dim is None:
        return {}
    if dim.adaptive is not None:
        return {"diffusion_steps": int(max(dim.adaptive.max.values()))}
    return {"diffusion_steps": int(max(v for v in dim.values() if v is not None))}
