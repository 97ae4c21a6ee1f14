"""The offload map: which device holds each component's weights, and which device runs it.

`parse_offload_map` checks a map such as ``{"lm.layers.0-13": "cuda", "lm.layers.14-27": "cpu"}``
against a preset; `resolve_placement` turns a `RuntimeConfig` into a `Placement` that gives every
component a *home* device (where its weights live) and an *exec* device (where it computes).
The layer streaming itself is in `vvbench.runtime.streamer`.

Choices where the design is silent:
- Component names are those of `component_names(preset)`: ``lm.embed``, ``lm.layers.<i>``,
  ``lm.norm``, ``lm.head`` (untied presets only: a tied head *is* ``lm.embed``), ``diffusion``,
  ``decoder``, ``semantic``, ``connectors`` (presets with a diffusion head, whose latents they
  feed back into the LM) and ``codec`` (codec-token presets).
- ``lm`` maps the whole LM and cannot be combined with any ``lm.*`` key (two answers for one
  layer). Once any ``lm.layers.*`` key is given, the ranges must cover every layer exactly once,
  so a map never leaves a layer's placement to an implicit default.
- Devices in a `Placement` are canonical: ``cpu`` or ``cuda:N`` (``cuda`` means ``cuda:0``), so
  per-device sums never split one GPU in two.
- An explicit ``device: cuda`` (or ``cuda:N``) without CUDA is a `ConfigError`: silently running a
  GPU config on the CPU would make its measurements lie. ``device: auto`` falls back to the CPU,
  and without CUDA every map resolves to CPU with one note saying how many entries were ignored.
- A ``cuda:N`` beyond the device count is a `ConfigError`, only checked when CUDA is present.

Importing this module does not import torch (the config validator calls `parse_offload_map`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Mapping

from vvbench.errors import ConfigError
from vvbench.runtime.presets import Preset

if TYPE_CHECKING:
    from vvbench.runtime.config import RuntimeConfig

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


@dataclass(frozen=True)
class ComponentPlacement:
    """Where one component's weights live (`home`) and where it computes (`exec`).

    `home` cpu with `exec` cuda:N means streamed: the weights sit in pinned host memory and are
    copied to the GPU just in time. `source` is the offload key that placed it (None: default).
    """

    name: str
    home: str
    exec: str
    source: str | None = None

    @property
    def streamed(self) -> bool:
        return self.home != self.exec


@dataclass(frozen=True)
class Placement:
    """Home and exec device of every component of a preset, resolved from a `RuntimeConfig`.

    `device` is the resolved default device (where activations live between components);
    `components` is ordered like `component_names`; `notes` says what was ignored and why.
    """

    device: str
    mode: Literal["stream", "compute"]
    components: dict[str, ComponentPlacement]
    notes: tuple[str, ...] = ()
    cuda_available: bool = False

    def __getitem__(self, name: str) -> ComponentPlacement:
        return self.components[name]

    @property
    def streamed(self) -> list[str]:
        """Names whose weights are copied from their home to their exec device for each use."""
        return [n for n, c in self.components.items() if c.streamed]

    @property
    def remote(self) -> list[str]:
        """Names that compute away from `device`: their inputs and outputs must be moved."""
        return [n for n, c in self.components.items() if c.exec != self.device]

    def by_device_bytes(self, param_bytes: Mapping[str, int]) -> dict[str, int]:
        """Predicted weight bytes per device, given each component's weight bytes.

        Every component counts on its home device. Streamed weights also pass through their exec
        device: the streamer keeps two staging slots there, so each exec device is charged the
        two largest components streamed to it. `param_bytes` must name exactly this placement's
        components (a mismatch with the model is a bug, so it raises ValueError).
        """
        missing = [n for n in self.components if n not in param_bytes]
        extra = [n for n in param_bytes if n not in self.components]
        if missing or extra:
            raise ValueError(
                f"param_bytes does not match the placement: missing {_names(missing)}; unknown {_names(extra)}"
            )
        out: dict[str, int] = {}
        staged: dict[str, list[int]] = {}
        for name, c in self.components.items():
            out[c.home] = out.get(c.home, 0) + int(param_bytes[name])
            if c.streamed:
                staged.setdefault(c.exec, []).append(int(param_bytes[name]))
        for dev, sizes in staged.items():
            out[dev] = out.get(dev, 0) + sum(sorted(sizes, reverse=True)[:2])
        return dict(sorted(out.items(), key=lambda kv: _device_sort_key(kv[0])))

    def describe(self) -> list[str]:
        """Human table rows (a header, then one row per component or run of alike layers)."""
        rows = [f"{'component':<18} {'home':<8} {'exec':<8} how"]
        groups: list[tuple[str, ComponentPlacement, int, int]] = []
        for name, c in self.components.items():
            if name.startswith("lm.layers."):
                i = int(name.rsplit(".", 1)[1])
                if groups and groups[-1][0] == "layers" and (groups[-1][1].home, groups[-1][1].exec) == (c.home, c.exec):
                    groups[-1] = ("layers", c, groups[-1][2], i)
                    continue
                groups.append(("layers", c, i, i))
            else:
                groups.append((name, c, 0, 0))
        for label, c, a, b in groups:
            if label == "layers":
                label = f"lm.layers.{a}" if a == b else f"lm.layers.{a}-{b}"
            if c.streamed:
                how = f"streamed from pinned {c.home}"
            elif c.exec != self.device:
                how = f"computed on {c.exec} (activations moved)"
            else:
                how = "resident"
            rows.append(f"{label:<18} {c.home:<8} {c.exec:<8} {how}")
        return rows


def _names(names: list[str]) -> str:
    return ", ".join(names) if names else "none"


def _device_sort_key(dev: str) -> tuple[int, int]:
    return (0, 0) if dev == "cpu" else (1, int(dev.split(":")[1]))


def _canonical(value: str, cuda_count: int, what: str) -> str:
    """cpu | cuda | cuda:N -> cpu | cuda:N, checking N against the devices present."""
    if value == "cpu":
        return "cpu"
    index = int(value.split(":")[1]) if ":" in value else 0
    if index >= cuda_count:
        valid = ", ".join(f"cuda:{i}" for i in range(cuda_count))
        raise ConfigError(f"{what}: {value!r} but this machine has {cuda_count} CUDA device(s); allowed: cpu, {valid}")
    return f"cuda:{index}"


def resolve_placement(
    config: "RuntimeConfig", *, cuda_available: bool | None = None, cuda_count: int | None = None
) -> Placement:
    """Resolve `config.device`, `config.offload` and `config.offload_mode` into a `Placement`.

    The default device is ``config.device`` (``auto``: ``cuda:0`` when CUDA is available, else
    ``cpu``). A component mapped to ``cpu`` while the default is a GPU is, in mode ``stream``,
    kept in pinned host memory and computed on the GPU; in mode ``compute``, kept and computed on
    the CPU. A component mapped to a GPU is kept and computed there. Without CUDA every component
    is cpu/cpu and a note says how many map entries were ignored; an explicit ``device: cuda`` or
    ``cuda:N`` then raises `ConfigError`, as does any ``cuda:N`` beyond `cuda_count`.

    Pure given `cuda_available` and `cuda_count`; each defaults to torch's answer (a count left
    out while `cuda_available` is forced True is taken as one device).
    """
    if cuda_available is None or cuda_count is None:
        import torch

        torch_has = torch.cuda.is_available()
        if cuda_available is None:
            cuda_available = torch_has
        if cuda_count is None:
            cuda_count = torch.cuda.device_count() if torch_has else 1
    if not cuda_available:
        cuda_count = 0
    preset = config.preset_spec
    entries = parse_offload_map(config.offload, preset)
    names = component_names(preset)
    notes: list[str] = []

    if config.device == "auto":
        default = "cuda:0" if cuda_available else "cpu"
    elif config.device != "cpu" and not cuda_available:
        raise ConfigError(f"device: {config.device!r} but no CUDA device is available; use 'auto' or 'cpu'")
    else:
        default = _canonical(config.device, cuda_count, "device")

    target: dict[str, tuple[str, str]] = {}  # name -> (device as written, key)
    for e in entries:
        for n in e.components:
            target[n] = (e.device, e.key)

    placed: dict[str, ComponentPlacement] = {}
    if not cuda_available:
        if entries:
            notes.append(f"no CUDA device: offload map resolves to CPU ({len(entries)} entries ignored)")
        for n in names:
            placed[n] = ComponentPlacement(n, "cpu", "cpu", target.get(n, (None, None))[1])
    else:
        for n in names:
            written, key = target.get(n, ("auto", None))
            dev = default if written == "auto" else _canonical(written, cuda_count, f"offload: {key!r}")
            if dev == "cpu" and default != "cpu" and config.offload_mode == "stream":
                placed[n] = ComponentPlacement(n, "cpu", default, key)
            else:
                placed[n] = ComponentPlacement(n, dev, dev, key)
    return Placement(
        device=default,
        mode=config.offload_mode,
        components=placed,
        notes=tuple(notes),
        cuda_available=bool(cuda_available),
    )
