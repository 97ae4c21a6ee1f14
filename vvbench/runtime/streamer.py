"""Running CPU-resident weights: `LayerStreamer` (mode ``stream``) and `ComputeOffload` (``compute``).

`LayerStreamer` keeps a group of same-shaped layers at home (pinned host memory when the exec
device is a GPU) and hands out, for layer i, a staging module on the exec device holding layer
i's weights, having already started the copy of layer i+1 into the other of two staging modules.
On CUDA the copies run with ``non_blocking=True`` on a side stream; a per-slot event lets the
compute stream wait only for its own slot's copy, and an event recorded on the compute stream
before each overwrite keeps a slot from being refilled while kernels queued on it still run.
(accelerate's offload hooks copy synchronously with no prefetch, which is what this avoids.)

Choices:
- The contract is strictly sequential: the module returned by ``get(i)`` may be used until the
  next ``get`` call; work queued on it before that call is protected, later use is not.
- Prefetch wraps around (after the last layer comes layer 0 of the next frame). A slot that
  already holds the wanted layer is not copied again, so a group of one or two layers ends up
  resident after the first pass; home weights are read-only while streaming (`invalidate` after
  changing them).
- Without a GPU the same slot logic runs with synchronous copies, so it is exercised on CPU.
- ``wait_s`` is time compute was stalled waiting for weights: on CPU the synchronous copies
  made from `get`; on CUDA the compute stream's waits, timed by events and summed once they
  have completed (`stats` never synchronises).
- Staging parameters never require grad: streaming is for inference.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class StreamerStats:
    """Counters of a `LayerStreamer` since it was built."""

    copies: int
    bytes_copied: int
    wait_s: float
    misses: int  # gets whose layer had not been prefetched (first call, out-of-order access)


def _tensors(module: nn.Module) -> list[torch.Tensor]:
    return [p for _, p in module.named_parameters()] + [b for _, b in module.named_buffers()]


def _signature(module: nn.Module) -> list[tuple[Any, ...]]:
    mods = [("module", n, type(m).__name__) for n, m in module.named_modules()]
    params = [("param", n, tuple(p.shape), p.dtype) for n, p in module.named_parameters()]
    bufs = [("buffer", n, tuple(b.shape), b.dtype) for n, b in module.named_buffers()]
    return mods + params + bufs


def _check_same_structure(layers: Sequence[nn.Module]) -> None:
    ref = _signature(layers[0])
    for i, layer in enumerate(layers[1:], start=1):
        sig = _signature(layer)
        if sig != ref:
            diff = next((f"{a} vs {b}" for a, b in zip(ref, sig) if a != b), f"{len(ref)} vs {len(sig)} entries")
            raise ValueError(f"layer {i} differs in structure from layer 0 ({diff}); a stream group shares one structure")


def _pin(module: nn.Module) -> None:
    """Move a CPU module's parameters and buffers into page-locked memory, in place."""
    for mod in module.modules():
        for p in mod.parameters(recurse=False):
            if not p.is_pinned():
                p.data = p.data.pin_memory()
        for name, b in mod.named_buffers(recurse=False):
            if not b.is_pinned():
                mod._buffers[name] = b.pin_memory()


class LayerStreamer:
    """Double-buffered just-in-time copies of same-shaped layers from a home to an exec device.

    `layers` are the home modules, in execution order, all with one structure (checked: a
    mismatch raises ValueError) and all on one device. ``get(i)`` returns one of the two staging
    modules (`staging`), on `exec_device`, holding layer i's weights, after queueing the copy of
    layer (i+1) % n into the other one. With a CUDA exec device and CPU home, home weights are
    pinned in place (`pin=False` skips that, at the price of synchronous copies). Not thread-safe.
    """

    def __init__(self, layers: Sequence[nn.Module], exec_device: str | torch.device, *, pin: bool = True):
        layers = list(layers)
        if not layers:
            raise ValueError("LayerStreamer needs at least one layer")
        _check_same_structure(layers)
        homes = {t.device for layer in layers for t in _tensors(layer)}
        if len(homes) > 1:
            raise ValueError(f"layers of one stream group must share a home device; found {sorted(map(str, homes))}")
        self.home_device = homes.pop() if homes else torch.device("cpu")
        exec_device = torch.device(exec_device)
        self._cuda = exec_device.type == "cuda"
        if self._cuda:
            if not torch.cuda.is_available():
                raise ValueError(f"exec device {exec_device} needs CUDA, which is not available here")
            if exec_device.index is None:
                exec_device = torch.device("cuda", torch.cuda.current_device())
            if pin and self.home_device.type == "cpu":
                for layer in layers:
                    _pin(layer)
        self.exec_device = exec_device
        self.layers = layers
        self.staging: tuple[nn.Module, nn.Module] = tuple(self._make_staging() for _ in range(2))  # type: ignore[assignment]
        self._dst = [_tensors(s) for s in self.staging]
        self._src = [_tensors(layer) for layer in layers]
        self._bytes = [sum(t.numel() * t.element_size() for t in ts) for ts in self._src]
        self._slot_layer: list[int | None] = [None, None]
        self._last_slot: int | None = None
        self._copies = 0
        self._bytes_copied = 0
        self._wait_s = 0.0
        self._misses = 0
        if self._cuda:
            with torch.cuda.device(exec_device):
                self.copy_stream = torch.cuda.Stream(device=exec_device)
                self._copy_done = [torch.cuda.Event(), torch.cuda.Event()]
                self._consumers_done = torch.cuda.Event()
            self._pending_waits: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []

    def _make_staging(self) -> nn.Module:
        staging = copy.deepcopy(self.layers[0]).to(self.exec_device)
        staging.requires_grad_(False)
        return staging

    def __len__(self) -> int:
        return len(self.layers)

    def get(self, i: int) -> nn.Module:
        """The staging module holding layer i's weights on the exec device, ready for compute.

        Also queues the copy of layer (i+1) % n into the other staging module. The result is
        valid until the next call to `get`.
        """
        n = len(self.layers)
        if not 0 <= i < n:
            raise IndexError(f"layer {i} out of range 0-{n - 1}")
        if self._slot_layer[0] == i and self._slot_layer[1] == i:
            slot = 1 - self._last_slot if self._last_slot is not None else 0
        elif i in self._slot_layer:
            slot = self._slot_layer.index(i)
        else:
            self._misses += 1
            slot = 1 - self._last_slot if self._last_slot is not None else 0
            self._load(i, slot)
        self._wait_for(slot)
        nxt = (i + 1) % n
        if self._slot_layer[1 - slot] != nxt:
            self._load(nxt, 1 - slot)
        self._last_slot = slot
        return self.staging[slot]

    def invalidate(self) -> None:
        """Forget what the staging modules hold (after the home weights were changed)."""
        self._slot_layer = [None, None]

    def stats(self) -> StreamerStats:
        """Copies, bytes copied, seconds compute waited for weights, and cold (unprefetched) gets."""
        if self._cuda:
            self._collect_waits()
        return StreamerStats(self._copies, self._bytes_copied, self._wait_s, self._misses)

    # -- copies ---------------------------------------------------------------------------
    def _load(self, layer: int, slot: int) -> None:
        self._slot_layer[slot] = layer
        self._copies += 1
        self._bytes_copied += self._bytes[layer]
        pairs = zip(self._dst[slot], self._src[layer])
        if not self._cuda:
            # Synchronous: the caller (the compute) waits for the whole copy.
            t0 = time.perf_counter()
            with torch.no_grad():
                for dst, src in pairs:
                    dst.copy_(src)
            self._wait_s += time.perf_counter() - t0
            return
        compute = torch.cuda.current_stream(self.exec_device)
        # Everything queued on the compute stream so far may read this slot (the previous
        # holder's forward): the copy stream must not overwrite it before that work is done.
        self._consumers_done.record(compute)
        with torch.cuda.device(self.exec_device), torch.cuda.stream(self.copy_stream), torch.no_grad():
            self.copy_stream.wait_event(self._consumers_done)
            for dst, src in pairs:
                dst.copy_(src, non_blocking=True)
            self._copy_done[slot].record(self.copy_stream)

    def _wait_for(self, slot: int) -> None:
        if not self._cuda:
            return  # the copy already finished inside _load
        compute = torch.cuda.current_stream(self.exec_device)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record(compute)
        # Only this slot's copy: the prefetch into the other slot keeps running.
        compute.wait_event(self._copy_done[slot])
        end.record(compute)
        self._pending_waits.append((start, end))
        self._collect_waits()

    def _collect_waits(self) -> None:
        while self._pending_waits and self._pending_waits[0][1].query():
            start, end = self._pending_waits.pop(0)
            self._wait_s += start.elapsed_time(end) / 1000.0


def _move(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(_move(v, device) for v in value))
    if isinstance(value, (list, tuple)):
        return type(value)(_move(v, device) for v in value)
    if isinstance(value, dict):
        return {k: _move(v, device) for k, v in value.items()}
    return value


class ComputeOffload(nn.Module):
    """Runs `module` on `compute_device` (the CPU for mode ``compute``) inside a GPU-resident model.

    Tensor arguments (also inside lists, tuples, named tuples and dicts) are moved to
    `compute_device` and tensor results back to `return_device`; anything else passes through,
    so state such as a KV cache for this module must already live on `compute_device`. The
    wrapped module's parameters appear under the ``module.`` prefix.
    """

    def __init__(self, module: nn.Module, return_device: str | torch.device, compute_device: str | torch.device = "cpu"):
        super().__init__()
        self.module = module
        self.compute_device = torch.device(compute_device)
        self.return_device = torch.device(return_device)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        out = self.module(*_move(args, self.compute_device), **_move(kwargs, self.compute_device))
        return _move(out, self.return_device)
