"""Placement: the home and exec device of every component, resolved from a `RuntimeConfig`.

`resolve_placement` turns a config (its device, offload map and offload mode) into a `Placement`
that gives every component a *home* device (where its weights live) and an *exec* device (where
it computes). The map itself is checked in `vvbench.runtime.offload_map`; the layer streaming is
in `vvbench.runtime.streamer`.

Choices where the design is silent:
- Devices in a `Placement` are canonical: ``cpu`` or ``cuda:N`` (``cuda`` means ``cuda:0``), so
  per-device sums never split one GPU in two.
- An explicit ``device: cuda`` (or ``cuda:N``) without CUDA is a `ConfigError`: silently running a
  GPU config on the CPU would make its measurements lie. ``device: auto`` falls back to the CPU,
  and without CUDA every map resolves to CPU with one note saying how many entries were ignored.
- A ``cuda:N`` beyond the device count is a `ConfigError`, only checked when CUDA is present.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from vvbench.core.errors import ConfigError
from vvbench.runtime.config import RuntimeConfig
from vvbench.runtime.offload_map import component_names, parse_offload_map


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
    config: RuntimeConfig, *, cuda_available: bool | None = None, cuda_count: int | None = None
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
