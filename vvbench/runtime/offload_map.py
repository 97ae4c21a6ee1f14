"""The offload map: which device each component's weights are mapped to, checked against a preset.

`parse_offload_map` checks a map such as ``{"lm.layers.0-13": "cuda", "lm.layers.14-27": "cpu"}``
against a preset and returns its entries; `vvbench.runtime.offload` resolves a whole
`RuntimeConfig` into a placement. This half imports neither torch nor the config model, so the
config's validator can use it (the two halves were one module, in an import cycle with the config).

Choices where the design is silent:
- Component names are those of `component_names(preset)`: ``lm.embed``, ``lm.layers.<i>``,
  ``lm.norm``, ``lm.head`` (untied presets only: a tied head *is* ``lm.embed``), ``diffusion``,
  ``decoder``, ``semantic``, ``connectors`` (presets with a diffusion head, whose latents they
  feed back into the LM) and ``codec`` (codec-token presets).
- ``lm`` maps the whole LM and cannot be combined with any ``lm.*`` key (two answers for one
  layer). Once any ``lm.layers.*`` key is given, the ranges must cover every layer exactly once,
  so a map never leaves a layer's placement to an implicit default.
"""


from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from vvbench.core.errors import ConfigError
from vvbench.runtime.presets import Preset

DEVICE_VALUES = "cpu, cuda, cuda:N, auto"
_LAYER_KEY = re.compile(r"lm\.layers\.(\d+)(?:-(\d+))?")
_DEVICE = re.compile(r"cpu|auto|cuda(?::\d+)?")
# Whole components other than the LM's parts, with the words used when a preset lacks one.
_COMPONENTS = {
    "diffusion": "diffusion head",
    "decoder": "acoustic decoder",
    "semantic": "semantic encoder",
    "connectors": "connectors (they exist with a diffusion head)",
    "codec": "codec (only codec-token presets have one)",
}


@dataclass(frozen=True)
class OffloadEntry:
    """One checked key of an offload map: the components it covers and the device it names.

    `device` is kept as written (``cpu``, ``cuda``, ``cuda:N`` or ``auto``); `layers` is the
    inclusive layer range for ``lm.layers.*`` keys and None otherwise.
    """

    key: str
    device: str
    components: tuple[str, ...]
    layers: tuple[int, int] | None = None


def component_names(preset: Preset) -> list[str]:
    """Every placeable component of `preset`, in execution order (the model uses the same names)."""
    names = ["lm.embed", *(f"lm.layers.{i}" for i in range(preset.lm.layers)), "lm.norm"]
    if not preset.lm.tied:
        names.append("lm.head")
    if preset.diffusion is not None:
        names.append("diffusion")
    if preset.decoder is not None:
        names.append("decoder")
    if preset.semantic is not None:
        names.append("semantic")
    if preset.diffusion is not None:
        names.append("connectors")
    if preset.codec is not None:
        names.append("codec")
    return names


def _allowed_keys(preset: Preset) -> str:
    have = set(component_names(preset))
    keys = ["lm", "lm.embed", f"lm.layers.N or lm.layers.A-B (layers {_span(preset)})", "lm.norm"]
    keys += [k for k in ("lm.head", *_COMPONENTS) if k in have]
    return f"allowed keys for preset {preset.name}: " + ", ".join(keys)


def _span(preset: Preset) -> str:
    return f"0-{preset.lm.layers - 1}"


def _fmt_layers(layers: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2, 5'."""
    runs: list[list[int]] = []
    for i in sorted(layers):
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def _entry(key: str, value: object, preset: Preset) -> OffloadEntry:
    def fail(what: str) -> ConfigError:
        return ConfigError(f"offload: {key!r}: {what}")

    lm = preset.lm
    m = _LAYER_KEY.fullmatch(key)
    if m:
        start = int(m.group(1))
        end = int(m.group(2)) if m.group(2) is not None else start
        if start > end:
            raise fail(f"reversed range; write 'lm.layers.{end}-{start}' (layers {_span(preset)})")
        if end >= lm.layers:
            raise fail(f"layer {end} is out of range; preset {preset.name} has layers {_span(preset)}")
        components = tuple(f"lm.layers.{i}" for i in range(start, end + 1))
        layers: tuple[int, int] | None = (start, end)
    elif key == "lm.layers" or key.startswith("lm.layers."):
        raise fail(f"malformed layer range; expected lm.layers.N or lm.layers.A-B with 0 <= A <= B <= {lm.layers - 1}")
    elif key == "lm":
        components = tuple(n for n in component_names(preset) if n.startswith("lm."))
        layers = None
    elif key in ("lm.embed", "lm.norm", "lm.head", *_COMPONENTS):
        if key not in component_names(preset):
            what = "an untied lm.head (it is tied to lm.embed: map 'lm.embed')" if key == "lm.head" else _COMPONENTS[key]
            raise fail(f"preset {preset.name} has no {what}; {_allowed_keys(preset)}")
        components, layers = (key,), None
    else:
        raise ConfigError(f"offload: unknown key {key!r}; {_allowed_keys(preset)}")
    if not isinstance(value, str) or not _DEVICE.fullmatch(value):
        raise fail(f"unknown device {value!r}; allowed: {DEVICE_VALUES}")
    return OffloadEntry(key=key, device=value, components=components, layers=layers)


def parse_offload_map(mapping: Mapping[str, str], preset: Preset) -> list[OffloadEntry]:
    """Check an offload map against `preset` and return its entries in the map's order.

    Raises `ConfigError` (message ``offload: ...`` naming the key and what is allowed) for an
    unknown key, a component the preset lacks, a malformed, reversed or out-of-range layer range,
    overlapping ranges, layer ranges that leave layers out, ``lm`` combined with ``lm.*`` keys,
    or an unknown device value.
    """
    entries = [_entry(key, value, preset) for key, value in mapping.items()]
    keys = [e.key for e in entries]
    if "lm" in keys:
        parts = [k for k in keys if k.startswith("lm.")]
        if parts:
            raise ConfigError(
                f"offload: 'lm' maps the whole LM and cannot be combined with {', '.join(map(repr, parts))}; "
                "map either 'lm' or its parts"
            )
    ranged = sorted((e for e in entries if e.layers is not None), key=lambda e: e.layers)
    for a, b in zip(ranged, ranged[1:]):
        if b.layers[0] <= a.layers[1]:
            both = _fmt_layers(list(range(b.layers[0], min(a.layers[1], b.layers[1]) + 1)))
            raise ConfigError(f"offload: {a.key!r} and {b.key!r} overlap (layers {both}); each layer must be mapped once")
    if ranged:
        covered = {i for e in ranged for i in range(e.layers[0], e.layers[1] + 1)}
        missing = [i for i in range(preset.lm.layers) if i not in covered]
        if missing:
            raise ConfigError(
                f"offload: lm.layers ranges must cover layers {_span(preset)} exactly once; "
                f"missing {_fmt_layers(missing)} (map them too, or use 'lm' for the whole LM)"
            )
    return entries


