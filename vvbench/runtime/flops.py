"""Useful FLOPs of one frame of one stream, by stage — for rooflines and capacity arithmetic.

Counts 2 FLOPs per multiply-add of the matmuls and convolutions (norms, activations and the
synthesiser are left out: they are memory-bound and small). "Useful" means for a real stream:
the padded rows that batch invariance adds are not counted, so achieved GFLOP/s shows the price
of padding at low load.
"""

from __future__ import annotations

from torch import nn


def _linear_flops(module: nn.Module) -> int:
    return sum(2 * m.in_features * m.out_features for m in module.modules() if isinstance(m, nn.Linear))


def frame_flops(model, *, steps: int, context_tokens: int) -> dict[str, int]:
    """FLOPs per frame per stream: lm (both CFG branches and the head), diffusion, decode, semantic."""
    preset = model.preset
    lm = preset.lm
    per_layer = _linear_flops(model.lm.layers[0])
    attention = 4 * lm.heads * lm.head_dim * context_tokens  # q.k and p.v over the stream's context
    branches = 2 if preset.uses_cfg else 1
    out = {"lm": branches * lm.layers * (per_layer + attention) + 2 * lm.hidden * lm.vocab}
    if preset.family == "codec":
        out["lm"] += _linear_flops(model.codec.heads)
        out["decode"] = model.codec.flops_per_step()
        return out
    out["diffusion"] = steps * 2 * _linear_flops(model.diffusion)
    out["decode"] = model.decoder.flops_per_frame() + _linear_flops(model.connectors.acoustic)
    if model.semantic is not None:
        out["semantic"] = model.semantic.flops_per_frame() + _linear_flops(model.connectors.semantic)
    return out
