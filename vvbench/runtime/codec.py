"""Streaming causal conv stacks: the sigma-VAE acoustic decoder, the semantic encoder, connectors.

A stack is a list of causal ops run one frame at a time. Every op that looks into the past keeps
that past in a state tensor whose first dimension is the row (slot): a depthwise or strided conv
keeps its last `kernel - stride` input samples, a transposed conv keeps the overlap tail of its
output (`kernel - stride` samples) to add to the next frame. States are updated in place, so the
engine can hand in views `[:M]` of larger per-slot tensors.

Each op also has a whole-sequence form (left zero padding, full transposed conv, no state), used
by `forward_sequence`; the streaming path run frame by frame must agree with it (a unit test
checks it), which is what makes the frame-by-frame state handling trustworthy.

Nothing reduces across rows (RMSNorm is over channels, convolutions are per sample), so with a
fixed row count a row's output does not depend on the other rows (DESIGN.md section 2).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vvbench.runtime.layers import RMSNorm
from vvbench.runtime.presets import ConvCodecSpec


class CausalConv1d(nn.Conv1d):
    """A conv that sees only the past; `stride` > 1 downsamples (input chunks: multiples of it)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__(cin, cout, kernel, stride=stride, groups=groups)
        self.context = kernel - stride

    def state_shape(self) -> tuple[int, int] | None:
        return (self.in_channels, self.context) if self.context > 0 else None

    def _conv(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv1d(x, self.weight, self.bias, self.stride, 0, 1, self.groups)

    def stream(self, x: torch.Tensor, state: torch.Tensor | None) -> torch.Tensor:
        if state is None:
            return self._conv(x)
        full = torch.cat([state, x], dim=-1)
        state.copy_(full[..., full.shape[-1] - self.context :])
        return self._conv(full)

    def sequence(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv(F.pad(x, (self.context, 0)))

    def flops(self, steps_in: int) -> int:
        per_out = 2 * (self.in_channels // self.groups) * self.out_channels * self.kernel_size[0]
        return per_out * (steps_in // self.stride[0])


class CausalConvTranspose1d(nn.ConvTranspose1d):
    """Upsampling by `stride` with kernel `2 * stride`; the overlap tail is the streaming state."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int):
        if not stride <= kernel <= 2 * stride:
            raise ValueError(f"transposed conv needs stride <= kernel <= 2*stride, got {kernel}/{stride}")
        super().__init__(cin, cout, kernel, stride=stride)
        self.context = kernel - stride

    def state_shape(self) -> tuple[int, int] | None:
        return (self.out_channels, self.context) if self.context > 0 else None

    def _full(self, x: torch.Tensor) -> torch.Tensor:
        # Bias is added once per output sample after the overlap-add, not per contribution.
        return F.conv_transpose1d(x, self.weight, None, self.stride)

    def _bias(self, y: torch.Tensor) -> torch.Tensor:
        return y + self.bias[:, None] if self.bias is not None else y

    def stream(self, x: torch.Tensor, state: torch.Tensor | None) -> torch.Tensor:
        y = self._full(x)
        n = x.shape[-1] * self.stride[0]
        if state is not None:
            y[..., : self.context] += state
            state.copy_(y[..., n:])
        return self._bias(y[..., :n])

    def sequence(self, x: torch.Tensor) -> torch.Tensor:
        return self._bias(self._full(x)[..., : x.shape[-1] * self.stride[0]])

    def flops(self, steps_in: int) -> int:
        return 2 * self.in_channels * self.out_channels * self.kernel_size[0] * steps_in


class ConvNeXtBlock(nn.Module):
    """Causal depthwise conv -> RMSNorm over channels -> Linear(C, ffn) -> GELU -> Linear(ffn, C), residual."""

    def __init__(self, channels: int, kernel: int = 7, ffn: int | None = None, eps: float = 1e-6):
        super().__init__()
        ffn = 4 * channels if ffn is None else ffn
        self.dwconv = CausalConv1d(channels, channels, kernel, groups=channels)
        self.norm = RMSNorm(channels, eps)
        self.pwconv1 = nn.Linear(channels, ffn)
        self.pwconv2 = nn.Linear(ffn, channels)

    def state_shape(self) -> tuple[int, int] | None:
        return self.dwconv.state_shape()

    def _mlp(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        y = self.pwconv2(F.gelu(self.pwconv1(self.norm(y.transpose(1, 2)))))
        return x + y.transpose(1, 2)

    def stream(self, x: torch.Tensor, state: torch.Tensor | None) -> torch.Tensor:
        return self._mlp(x, self.dwconv.stream(x, state))

    def sequence(self, x: torch.Tensor) -> torch.Tensor:
        return self._mlp(x, self.dwconv.sequence(x))

    def flops(self, steps_in: int) -> int:
        mlp = 4 * self.pwconv1.in_features * self.pwconv1.out_features * steps_in
        return self.dwconv.flops(steps_in) + mlp


class StreamingStack(nn.Module):
    """A chain of causal ops with one state tensor per op that has a past to remember.

    An op provides `state_shape()` (per-row (channels, samples), or None when stateless),
    `stream(x, state)` (one chunk [M, C, L], state updated in place), `sequence(x)` (a whole
    sequence from a zero past) and `flops(steps_in)`.
    """

    def __init__(self, ops: Sequence[nn.Module]):
        super().__init__()
        self.ops = nn.ModuleList(ops)

    def _shapes(self) -> list[tuple[int, int]]:
        return [s for s in (op.state_shape() for op in self.ops) if s is not None]

    def init_state(self, rows: int, device=None, dtype: torch.dtype | None = None) -> list[torch.Tensor]:
        """Zeroed causal caches, one tensor [rows, channels, context] per stateful op."""
        return [torch.zeros((rows, *s), device=device, dtype=dtype) for s in self._shapes()]

    def state_bytes_per_row(self, dtype_bytes: int) -> int:
        """Bytes of causal cache one row (stream) holds."""
        return sum(c * t for c, t in self._shapes()) * dtype_bytes

    def stream(self, x: torch.Tensor, state: Sequence[torch.Tensor]) -> torch.Tensor:
        """Run one chunk [M, C, L] through every op, updating `state` (from `init_state`) in place."""
        it = iter(state)
        for op in self.ops:
            x = op.stream(x, next(it) if op.state_shape() is not None else None)
        return x

    def sequence(self, x: torch.Tensor) -> torch.Tensor:
        """Run a whole sequence [M, C, T] from a zero past, without state (the reference path)."""
        for op in self.ops:
            x = op.sequence(x)
        return x

    def stack_flops(self, steps_in: int) -> int:
        """Multiply-add FLOPs (2 per MAC) for `steps_in` input steps of one row."""
        total, steps = 0, steps_in
        for op in self.ops:
            total += op.flops(steps)
            if isinstance(op, CausalConvTranspose1d):
                steps *= op.stride[0]
            elif isinstance(op, CausalConv1d):
                steps //= op.stride[0]
        return total


class ConvDecoder(StreamingStack):
    """sigma-VAE decoder: one latent frame [M, latent_dim] -> audio [M, audio_channels, hop].

    Stem causal conv, then per stage `depths[i]` ConvNeXt blocks of `channels[i]` with a causal
    transposed conv (kernel 2r, stride r) between stages, then a causal conv head.
    """

    def __init__(self, spec: ConvCodecSpec):
        ch, k = spec.channels, spec.kernel
        ops: list[nn.Module] = [CausalConv1d(spec.latent_dim, ch[0], k)]
        for i, c in enumerate(ch):
            ops += [ConvNeXtBlock(c, k) for _ in range(spec.depths[i])]
            if i < len(spec.ratios):
                r = spec.ratios[i]
                ops.append(CausalConvTranspose1d(c, ch[i + 1], 2 * r, r))
        ops.append(CausalConv1d(ch[-1], spec.audio_channels, k))
        super().__init__(ops)
        self.spec = spec

    def forward(self, latent: torch.Tensor, state: Sequence[torch.Tensor]) -> torch.Tensor:
        """Decode one frame per row, updating `state` in place."""
        return self.stream(latent.unsqueeze(-1), state)

    def forward_sequence(self, latents: torch.Tensor) -> torch.Tensor:
        """Decode T frames [M, T, latent_dim] at once from a zero state -> [M, audio, T * hop]."""
        return self.sequence(latents.transpose(1, 2))

    def flops_per_frame(self) -> int:
        """FLOPs to decode one frame of one row."""
        return self.stack_flops(1)


class ConvEncoder(StreamingStack):
    """Semantic encoder, the decoder mirrored: audio [M, audio_channels, hop] -> [M, latent_dim].

    Stages run from the audio side (`channels[-1]`) to the latent side, joined by causal strided
    convs (kernel 2r, stride r); a causal conv head maps `channels[0]` to the latent.
    """

    def __init__(self, spec: ConvCodecSpec):
        ch, k = spec.channels, spec.kernel
        ops: list[nn.Module] = [CausalConv1d(spec.audio_channels, ch[-1], k)]
        for i in range(len(ch) - 1, -1, -1):
            ops += [ConvNeXtBlock(ch[i], k) for _ in range(spec.depths[i])]
            if i > 0:
                r = spec.ratios[i - 1]
                ops.append(CausalConv1d(ch[i], ch[i - 1], 2 * r, stride=r))
        ops.append(CausalConv1d(ch[0], spec.latent_dim, k))
        super().__init__(ops)
        self.spec = spec

    def forward(self, audio: torch.Tensor, state: Sequence[torch.Tensor]) -> torch.Tensor:
        """Encode one frame of audio per row, updating `state` in place."""
        return self.stream(audio, state).squeeze(-1)

    def forward_sequence(self, audio: torch.Tensor) -> torch.Tensor:
        """Encode [M, audio_channels, T * hop] from a zero state -> latents [M, T, latent_dim]."""
        return self.sequence(audio).transpose(1, 2)

    def flops_per_frame(self) -> int:
        """FLOPs to encode one frame of one row."""
        return self.stack_flops(self.spec.hop)


class SpeechConnector(nn.Module):
    """VibeVoice's latent -> LM-input projection: Linear(in, H) -> RMSNorm -> Linear(H, H)."""

    def __init__(self, in_dim: int, hidden: int, eps: float = 1e-6):
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden)
        self.norm = RMSNorm(hidden, eps)
        self.fc2 = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.norm(self.fc1(x)))
