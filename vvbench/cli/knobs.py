"""Every RuntimeConfig knob as a command-line flag, shared by `synth`, `plan`, `serve` and `run`.

Flags are generated from the model's fields, so a new knob is a new flag without edits here.
Values are parsed as YAML scalars (`--max-batch 16`, `--cfg-scale 1.5`, `--threads null`) and
validated by RuntimeConfig, so errors read the same as from a config file. Special forms:
`--diffusion-steps 20` or `--diffusion-steps adaptive:MIN,MAX,PER_CHAR` (or a JSON object);
`--offload lm.layers.0-13=cuda,lm.layers.14-27=cpu` (or a JSON object); fault knobs are
`--leak-mb-per-request`, `--crash-after-requests`, `--hang-after-requests`, `--noise-db`, `--slow-factor`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click
import yaml

from vvbench.core.errors import ConfigError
from vvbench.runtime.config import knob_fields

_BOOL = {"compile", "cudnn_benchmark", "batch_invariant"}


def _flag(name: str) -> str:
    return "--" + name.split(".")[-1].replace("_", "-")


def _param(name: str) -> str:
    return "knob__" + name.replace(".", "__")


def knob_options(func: Callable) -> Callable:
    """Decorate a click command with one option per knob (all default to 'not given')."""
    for name, info in reversed(list(knob_fields().items())):
        if name == "preset":
            continue  # commands declare --preset themselves (it is also a positional choice)
        tag = "hot" if info["hot"] else "restart"
        help_text = f"{info['description']} [{tag}]"
        if name in _BOOL:
            flag = _flag(name)
            opt = click.option(f"{flag}/--no-{flag[2:]}", _param(name), default=None, help=help_text)
        else:
            opt = click.option(_flag(name), _param(name), type=str, default=None, metavar="VALUE", help=help_text)
        func = opt(func)
    return func


def _parse_offload(raw: str) -> dict[str, str]:
    raw = raw.strip()
    if raw.startswith("{"):
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"offload: not valid JSON ({exc.msg})") from None
        if not isinstance(value, dict):
            raise ConfigError("offload: expected an object of component -> device")
        return value
    out = {}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        key, sep, dev = part.partition("=")
        if not sep:
            raise ConfigError(f"offload: expected KEY=DEVICE pairs separated by commas, got {part!r}")
        out[key.strip()] = dev.strip()
    return out


def _parse_steps(raw: str) -> Any:
    raw = raw.strip()
    if raw.startswith("adaptive:"):
        parts = raw[len("adaptive:"):].split(",")
        if len(parts) != 3:
            raise ConfigError("diffusion_steps: adaptive form is adaptive:MIN,MAX,PER_CHAR")
        try:
            return {"min": int(parts[0]), "max": int(parts[1]), "per_char": float(parts[2])}
        except ValueError:
            raise ConfigError(f"diffusion_steps: adaptive values must be numbers, got {raw!r}") from None
    if raw.startswith("{"):
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"diffusion_steps: not valid JSON ({exc.msg})") from None
    return _scalar(raw)


def _scalar(raw: str) -> Any:
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def overrides_from_flags(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Pop the knob flags out of a command's kwargs -> a nested overrides dict (given ones only)."""
    out: dict[str, Any] = {}
    for key in [k for k in kwargs if k.startswith("knob__")]:
        raw = kwargs.pop(key)
        if raw is None:
            continue
        name = key[len("knob__"):].replace("__", ".")
        if name == "offload":
            value: Any = _parse_offload(raw)
        elif name == "diffusion_steps":
            value = _parse_steps(raw)
        elif isinstance(raw, bool):
            value = raw
        else:
            value = _scalar(raw)
        top, _, sub = name.partition(".")
        if sub:
            out.setdefault(top, {})[sub] = value
        else:
            out[top] = value
    return out
