"""Small building blocks shared by the runtime's models: RMSNorm, rotary embeddings, SwiGLU.

Every op here works row by row: nothing reduces across the leading (batch) dimension, so a
row's result does not depend on what the other rows hold (DESIGN.md section 2, batch
invariance). Normalisation statistics are taken over the last dimension only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    """Root-mean-square norm over the last dimension, with an optional learned scale.

    Statistics are computed in float32 whatever the input dtype (as Qwen2 does), so bfloat16
    activations with a large dynamic range do not lose the normalisation to rounding.
    """

    def __init__(self, dim: int, eps: float = 1e-6, affine: bool = True):
        super().__init__()
        self.dim = dim
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim)) if affine else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        out = xf.to(dtype)
        return out * self.weight if self.weight is not None else out

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}, affine={self.weight is not None}"


class Embedding(nn.Embedding):
    """`nn.Embedding` that skips its default init on the meta device.

    `normal_` on a meta tensor pulls in torch's decomposition machinery (seconds at first use),
    and a meta build is only for shapes: the real init happens after materialising.
    """

    def reset_parameters(self) -> None:
        if not self.weight.is_meta:
            super().reset_parameters()


class SwiGLU(nn.Module):
    """`down(silu(gate(x)) * up(x))`, the feed-forward of Qwen2 and of VibeVoice's diffusion head."""

    def __init__(self, dim: int, hidden: int, bias: bool = False):
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden, bias=bias)
        self.up_proj = nn.Linear(dim, hidden, bias=bias)
        self.down_proj = nn.Linear(hidden, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


def rope_cos_sin(
    positions: torch.Tensor, head_dim: int, theta: float, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotary tables `cos, sin` of shape [len(positions), head_dim] (Qwen2/Llama layout).

    Angles are computed in float32 and only the final tables are cast, so positions in the tens
    of thousands (90 minutes at 7.5 Hz) keep their precision in bfloat16 models.
    """
    device = positions.device
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim))
    freqs = positions.to(torch.float32)[:, None] * inv_freq[None, :]
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """Split the last dimension in two halves (a, b) and return (-b, a)."""
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate `x` [..., heads, tokens or rows broadcast, head_dim] by tables broadcast to it."""
    return x * cos + rotate_half(x) * sin
