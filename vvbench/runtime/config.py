"""`RuntimeConfig`: every knob of the reference runtime, in one pydantic model.

Each field carries `hot` in its JSON-schema extras: hot knobs may change on a running engine
(`Engine.reconfigure`, the service's `POST /admin/config`); the rest need a restart. Precedence
when loading: defaults < file (YAML or JSON) < `VVBENCH_*` environment < explicit overrides (CLI
flags). Errors name the field, the offending value and what is allowed.

Choices where the design is silent:
- `diffusion_steps` as an adaptive policy `{min, max, per_char}` gives each request
  `clamp(round(max - per_char * chars), min, max)` steps: short interactive turns keep full
  quality, long passages trade steps for throughput so long-form RTF stays below one.
- `noise_db` is the level of the added white noise in dBFS (e.g. -30), not an SNR.
- Every number has finite bounds and NaN/Infinity are refused (`allow_inf_nan=False`), whatever
  the source (flag, file, environment, `/admin/config`): a value that passes here cannot make
  the engine's arithmetic overflow. `threads` is capped at the machine's cores (`os.cpu_count()`),
  `request_timeout_s` at a day, `leak_mb_per_request` at 1 GiB.
- `/admin/config` validates strictly (`validate_config(..., strict=True)`: `"5"` is not a
  number there, as in request bodies); files, `VVBENCH_*` variables and flags are text, read as
  YAML scalars first, so they stay lax.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from vvbench.core.errors import ConfigError
from vvbench.core.validation import format_validation_error
from vvbench.runtime.offload_map import parse_offload_map
from vvbench.runtime.presets import PRESETS, Preset, get_preset

ENV_PREFIX = "VVBENCH_"
CORES = os.cpu_count() or 1
COUNT_MAX = 10**9  # request counters of the faults: a billion requests is "never" in practice
DAY_S = 86_400.0


def _hot(description: str, **kw: Any) -> Any:
    return Field(description=description, json_schema_extra={"hot": True}, **kw)


def _restart(description: str, **kw: Any) -> Any:
    return Field(description=description, json_schema_extra={"hot": False}, **kw)


class AdaptiveSteps(BaseModel):
    """Per-request diffusion steps: clamp(round(max - per_char * chars), min, max)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    min: int = Field(ge=1, le=1000, description="fewest solver steps any request gets")
    max: int = Field(ge=1, le=1000, description="steps for the shortest inputs")
    per_char: float = Field(ge=0.0, le=1000.0, description="steps removed per input character (at most 1000: one character then takes every step away)")

    @model_validator(mode="after")
    def _ordered(self) -> AdaptiveSteps:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must be <= max ({self.max})")
        return self

    def steps_for(self, chars: int) -> int:
        return int(min(self.max, max(self.min, round(self.max - self.per_char * chars))))


class Faults(BaseModel):
    """Injected failures, so the watchdog and the reliability tests have real faults to catch."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    leak_mb_per_request: float = Field(0.0, ge=0.0, le=1024, description="memory kept forever per finished request (MiB, at most 1024); on the model's device")
    crash_after_requests: int | None = Field(None, ge=1, le=COUNT_MAX, description="the process exits (code 70) after this many finished requests")
    hang_after_requests: int | None = Field(None, ge=1, le=COUNT_MAX, description="the engine loop stops making progress after this many finished requests")
    fail_step_after_requests: int | None = Field(None, ge=1, le=COUNT_MAX, description="every engine step raises after this many finished requests: its streams fail, and after a few failed steps in a row the engine stops")
    noise_db: float | None = Field(None, le=0.0, ge=-120.0, description="add white noise at this level (dBFS) to every sample")
    slow_factor: float = Field(1.0, ge=1.0, le=100.0, description="every engine step takes this many times as long (real compute, not a sleep); 1: off")

    def any_set(self) -> list[str]:
        """The fault knobs set away from their defaults (what `--allow-faults` must permit)."""
        return [name for name, f in Faults.model_fields.items() if getattr(self, name) != f.default]


class RuntimeConfig(BaseModel):
    """Every knob of the reference runtime. See the module docstring for precedence and choices."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    preset: str = _restart("model shapes: " + ", ".join(PRESETS), default="tiny")
    device: str = _restart("auto | cpu | cuda | cuda:N (auto: cuda when available)", default="auto")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = _restart("weights and activations dtype (auto: the preset's default: bfloat16 for the VibeVoice shapes, float32 for tiny, small and chattts)", default="auto")
    weights_seed: int = _restart("seed of the random weights", default=0, ge=0, le=2**63 - 1)
    offload: dict[str, str] = _restart("component or layer range -> device: {'lm.layers.0-13': 'cuda', 'lm.layers.14-27': 'cpu'} in a file, lm.layers.0-13=cuda,lm.layers.14-27=cpu as a flag", default_factory=dict)
    offload_mode: Literal["stream", "compute"] = _restart("CPU-resident parts: stream weights to the GPU just in time, or compute on the CPU", default="stream")
    diffusion_steps: int | AdaptiveSteps | None = _hot("solver steps (int), an adaptive policy {min, max, per_char}, or null for the preset default", default=None)
    cfg_scale: float | None = _hot("classifier-free guidance scale (null: preset default)", default=None, ge=0.0, le=20.0)
    max_batch: int = _restart("streams stepped together (slots)", default=8, ge=1, le=256)
    batch_window_ms: float = _hot("how long an idle engine waits for more arrivals before stepping a new batch", default=5.0, ge=0.0, le=10_000)
    first_chunk_frames: int = _hot("frames in the first streamed chunk (time to first audio)", default=2, ge=1, le=10_000)
    chunk_frames: int = _hot("frames per later chunk (continuity vs overhead)", default=8, ge=1, le=10_000)
    threads: int | None = _hot(f"torch intra-op threads, at most the machine's cores ({CORES}) (null: torch's default)", default=None, ge=1, le=CORES)
    compile: bool = _restart("torch.compile the per-frame modules", default=False)
    cudnn_benchmark: bool = _hot("torch.backends.cudnn.benchmark (CUDA only)", default=False)
    empty_cache_every: int = _hot("torch.cuda.empty_cache() every N finished requests (0: never; CUDA only)", default=0, ge=0, le=COUNT_MAX)
    batch_invariant: bool = _restart("run every step at max_batch rows so a seed gives identical audio alone or in any batch", default=True)
    max_queue: int = _hot("requests waiting for a slot before new ones are refused", default=64, ge=0, le=100_000)
    request_timeout_s: float = _hot("a request not finished after this long is cancelled (seconds, at most a day)", default=600.0, gt=0.0, le=DAY_S)
    max_input_chars: int = _hot("longest input text accepted", default=4096, ge=1, le=2_000_000)
    faults: Faults = _hot("injected failures", default_factory=Faults)

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, v: str) -> str:
        if v not in PRESETS:
            raise ValueError(f"unknown preset {v!r}; allowed: {', '.join(PRESETS)}")
        return v

    @field_validator("device")
    @classmethod
    def _device_form(cls, v: str) -> str:
        ok = v in ("auto", "cpu", "cuda") or (v.startswith("cuda:") and v[5:].isdigit())
        if not ok:
            raise ValueError(f"unknown device {v!r}; allowed: auto, cpu, cuda, cuda:N")
        return v

    @model_validator(mode="after")
    def _offload_matches_preset(self) -> RuntimeConfig:
        if self.offload:
            try:
                parse_offload_map(self.offload, get_preset(self.preset))
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return self

    # -- derived values -------------------------------------------------------------------
    @property
    def preset_spec(self) -> Preset:
        return get_preset(self.preset)

    def steps_for(self, chars: int) -> int:
        """Diffusion solver steps a request of `chars` characters gets (0 for presets without diffusion)."""
        spec = self.preset_spec
        if spec.diffusion is None:
            return 0
        if self.diffusion_steps is None:
            return spec.diffusion.default_steps
        if isinstance(self.diffusion_steps, int):
            return self.diffusion_steps
        return self.diffusion_steps.steps_for(chars)

    def effective_cfg_scale(self) -> float:
        spec = self.preset_spec
        if self.cfg_scale is not None:
            return self.cfg_scale
        return spec.diffusion.cfg_scale if spec.diffusion else 0.0

    def notes(self) -> list[str]:
        """Knobs that were set but do not apply to this preset or machine (said, not failed)."""
        out = []
        spec = self.preset_spec
        if spec.diffusion is None:
            for knob in ("diffusion_steps", "cfg_scale"):
                if knob in self.model_fields_set and getattr(self, knob) is not None:
                    out.append(f"{knob} does not apply to preset {spec.name} (codec-token LM, no diffusion head): ignored")
        return out

    @field_validator("diffusion_steps")
    @classmethod
    def _positive_steps(cls, v: Any) -> Any:
        if isinstance(v, int) and not (1 <= v <= 1000):
            raise ValueError(f"must be between 1 and 1000 (got {v}); or an adaptive policy {{min, max, per_char}}")
        return v


def knob_fields() -> dict[str, dict[str, Any]]:
    """Name -> {hot, description, default} for every knob, faults flattened as `faults.<name>`."""
    out: dict[str, dict[str, Any]] = {}
    for name, f in RuntimeConfig.model_fields.items():
        extra = f.json_schema_extra or {}
        if name == "faults":
            for fname, ff in Faults.model_fields.items():
                out[f"faults.{fname}"] = {"hot": True, "description": ff.description, "default": ff.default}
            continue
        default = f.default_factory() if f.default_factory else f.default
        out[name] = {"hot": bool(extra.get("hot")), "description": f.description, "default": default}
    return out


HOT_KNOBS = frozenset(k.split(".")[0] for k, v in knob_fields().items() if v["hot"])


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.strerror})") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {str(exc).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of knobs at the top level, got {type(data).__name__}")
    return data


def _env_overrides(env: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """`VVBENCH_MAX_BATCH=16`, `VVBENCH_FAULTS__NOISE_DB=-30`: values parsed as YAML scalars.

    Returns the values and, for each dotted knob path set, the variable that set it.
    """
    out: dict[str, Any] = {}
    names: dict[str, str] = {}
    fields = set(RuntimeConfig.model_fields)
    for key, raw in env.items():
        if not key.startswith(ENV_PREFIX):
            continue
        name = key[len(ENV_PREFIX):].lower()
        top, _, sub = name.partition("__")
        if top not in fields:
            continue
        value = yaml.safe_load(raw) if raw != "" else None
        if sub:
            out.setdefault(top, {})[sub] = value
        else:
            out[top] = value
        names[f"{top}.{sub}" if sub else top] = key
    return out, names


def merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive dict merge (later wins); used for file < env < flags and for hot patches."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping) and k != "offload":
            out[k] = merge(dict(out[k]), v)
        else:
            out[k] = v
    return out


def load_runtime_config(
    path: str | Path | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> RuntimeConfig:
    """Build a RuntimeConfig from defaults < file < VVBENCH_* env < overrides.

    An invalid value is reported against where it came from: the file, the environment
    variable, or the command line (`overrides` are the CLI's flags).
    """
    data: dict[str, Any] = {}
    source = "command line"
    if path is not None:
        source = str(path)
        data = _read_file(Path(path))
    from_env, origins = _env_overrides(os.environ if env is None else env)
    data = merge(data, from_env)
    if overrides:
        given = {k: v for k, v in overrides.items() if v is not None}
        data = merge(data, given)
        origins.update(dict.fromkeys(given, "command line"))
    return validate_config(data, source, origins=origins)


def validate_config(data: Mapping[str, Any], source: str | None = None, *, origins: Mapping[str, str] | None = None,
                    strict: bool = False) -> RuntimeConfig:
    """Validate a mapping of knobs, turning pydantic's errors into one ConfigError line.

    The line starts with `source` (none without one: `/admin/config` names the knob first),
    or with the origin `origins` gives for a knob's dotted path. `strict` refuses what only
    coerces (`"5"` for a number, `true` for an integer): for JSON bodies, where types are given.
    """
    try:
        return RuntimeConfig.model_validate(dict(data), strict=strict)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source, model=RuntimeConfig, origins=origins, unknown="unknown knob")) from None


def dump_config(config: RuntimeConfig) -> str:
    """YAML text of a config (what the tuner writes, what `--config` reads back)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
