"""Assemble a preset's model and give it deterministic random weights.

`build_model` constructs every module on the meta device first (no memory, no default init),
casts to the requested dtype, and only then materialises it on the target device and fills it
from `seed`. So a meta build of the 7B preset costs nothing (the memory planner uses it), and a
real build writes each weight exactly once.

Initialisation (real devices only): each piece of `_INIT_CHUNK` elements of a weight draws from
its own generator, seeded from `(seed, parameter name, piece index)`, so weights do not depend on
construction order (and the pieces could be drawn in parallel). Draws are made in float32 and
cast, so a bfloat16 model is the rounding of the float32 one; on CUDA the draws use a CUDA
generator (fast, but different numbers from a CPU build). On CPU, drawing runs at about 10^8
values per second per core: the 1.5B preset with its codec (2.2B parameters) takes about half a
minute. Scales keep activations O(1):
embeddings N(0, 0.02) as in Qwen2; every linear or conv weight N(0, 1/fan_in), so each projection
preserves variance; the projection closing a residual branch is further scaled by
1/sqrt(2 * blocks in its stack) (GPT-2's rule), so the residual stream stays O(1) through 28 layers;
norm scales are one, biases zero.
"""

from __future__ import annotations

import hashlib
import math

import torch
from torch import nn

from vvbench.runtime.chattts import ChatTTSCodec
from vvbench.runtime.codec import ConvDecoder, ConvEncoder, SpeechConnector
from vvbench.runtime.diffusion import DiffusionHead
from vvbench.runtime.lm import QwenLM
from vvbench.runtime.presets import Preset, get_preset

# Weights are drawn this many elements at a time (one generator each; bounds the staging buffer).
_INIT_CHUNK = 1 << 24
_EMBED_STD = 0.02
# Weights that close a residual branch (their output is added to the stream).
_RESIDUAL_OUT = ("o_proj", "down_proj", "pwconv2")


class Connectors(nn.Module):
    """The acoustic (and, with semantic feedback, semantic) latent -> LM-input connectors."""

    def __init__(self, acoustic: SpeechConnector, semantic: SpeechConnector | None):
        super().__init__()
        self.acoustic = acoustic
        self.semantic = semantic


class TTSModel(nn.Module):
    """Every component of one preset. Absent components are None.

    VibeVoice family: `lm`, `diffusion`, `decoder`, `semantic` (1.5B/7B), `connectors`
    (`acoustic_connector`, `semantic_connector`). Codec family: `lm` and `codec`.
    """

    def __init__(self, preset: Preset):
        super().__init__()
        self.preset = preset
        h = preset.lm.hidden
        self.lm = QwenLM(preset.lm)
        self.diffusion = DiffusionHead(preset.diffusion) if preset.diffusion else None
        self.decoder = ConvDecoder(preset.decoder) if preset.decoder else None
        self.semantic = ConvEncoder(preset.semantic) if preset.semantic else None
        self.codec = ChatTTSCodec(preset.codec, h) if preset.codec else None
        if self.decoder is not None:
            sem = SpeechConnector(preset.semantic.latent_dim, h) if preset.semantic else None
            self.connectors = Connectors(SpeechConnector(preset.decoder.latent_dim, h), sem)
        else:
            self.connectors = None

    @property
    def acoustic_connector(self) -> SpeechConnector | None:
        """Acoustic latent -> LM input (None for the codec family)."""
        return self.connectors.acoustic if self.connectors is not None else None

    @property
    def semantic_connector(self) -> SpeechConnector | None:
        """Semantic latent -> LM input (None without semantic feedback)."""
        return self.connectors.semantic if self.connectors is not None else None

    @property
    def dtype(self) -> torch.dtype:
        """The weights' dtype (the LM embedding's)."""
        return self.lm.embed.weight.dtype

    @property
    def device(self) -> torch.device:
        """The LM embedding's device (components may sit elsewhere once offloaded)."""
        return self.lm.embed.weight.device


def build_model(
    preset: Preset | str,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
) -> TTSModel:
    """Build `preset`'s model on `device` in `dtype` with weights drawn from `seed`.

    `device="meta"` gives the shapes without allocating or initialising anything.
    """
    if isinstance(preset, str):
        preset = get_preset(preset)
    with torch.device("meta"):
        model = TTSModel(preset)
    model = model.to(dtype=dtype)
    device = torch.device(device)
    if device.type != "meta":
        model = model.to_empty(device=device)
        init_weights(model, seed)
    return model.eval().requires_grad_(False)


def _param_seed(seed: int, name: str) -> int:
    digest = hashlib.blake2b(f"{seed}:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def _fan_in(module: nn.Module, weight: torch.Tensor) -> int:
    if isinstance(module, nn.ConvTranspose1d):
        # Each output sample sums kernel/stride taps of every input channel.
        return max(1, module.in_channels * module.kernel_size[0] // module.stride[0])
    if isinstance(module, nn.Conv1d):
        return (module.in_channels // module.groups) * module.kernel_size[0]
    return weight.shape[1]


def _residual_blocks(model: TTSModel) -> dict[str, int]:
    """Residual blocks per top-level component (sets the residual-branch gain)."""
    p = model.preset
    counts = {"lm": p.lm.layers}
    if p.diffusion:
        counts["diffusion"] = p.diffusion.layers
    if p.decoder:
        counts["decoder"] = sum(p.decoder.depths)
    if p.semantic:
        counts["semantic"] = sum(p.semantic.depths)
    if p.codec:
        counts["codec"] = max(p.codec.decoder_layers, p.codec.vocoder_layers)
    return counts


@torch.no_grad()
def _fill_chunk(piece: torch.Tensor, std: float, seed: int) -> None:
    gen = torch.Generator(device=piece.device)
    gen.manual_seed(seed)
    if piece.dtype == torch.float32:
        piece.normal_(0.0, std, generator=gen)
    else:
        piece.copy_(torch.empty(piece.shape, device=piece.device).normal_(0.0, std, generator=gen))


def _init_std(model: TTSModel, mod_name: str, module: nn.Module, param: torch.Tensor) -> float:
    if isinstance(module, nn.Embedding):
        return _EMBED_STD
    std = 1.0 / math.sqrt(_fan_in(module, param))
    if mod_name.rsplit(".", 1)[-1] in _RESIDUAL_OUT:
        std /= math.sqrt(2 * _residual_blocks(model)[mod_name.split(".", 1)[0]])
    return std


@torch.no_grad()
def init_weights(model: TTSModel, seed: int) -> None:
    """Fill every parameter of a materialised model deterministically from `seed`."""
    for mod_name, module in model.named_modules():
        for p_name, param in module.named_parameters(recurse=False):
            if p_name == "bias":
                param.zero_()
            elif param.dim() == 1:  # norm scales
                param.fill_(1.0)
            else:
                std = _init_std(model, mod_name, module, param)
                for i, piece in enumerate(param.view(-1).split(_INIT_CHUNK)):
                    _fill_chunk(piece, std, _param_seed(seed, f"{mod_name}.{p_name}:{i}"))


def _count(module: nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def component_params(model: TTSModel) -> dict[str, int]:
    """Parameter counts by component; absent components are omitted.

    `lm` is embeddings + layers + final norm (+ the head when untied), `lm_layers` the decoder
    layers alone (the figure ChatTTS's size is usually quoted by).
    """
    counts = {"lm": _count(model.lm), "lm_layers": _count(model.lm.layers)}
    for name in ("diffusion", "decoder", "semantic", "connectors", "codec"):
        module = getattr(model, name)
        if module is not None:
            counts[name] = _count(module)
    return counts


def component_modules(model: TTSModel) -> dict[str, nn.Module]:
    """The units the offload map places: LM pieces layer by layer, then whole components."""
    lm = model.lm
    out: dict[str, nn.Module] = {"lm.embed": lm.embed}
    out.update({f"lm.layers.{i}": layer for i, layer in enumerate(lm.layers)})
    out["lm.norm"] = lm.norm
    if lm.lm_head is not None:
        out["lm.head"] = lm.lm_head
    for name in ("diffusion", "decoder", "semantic", "connectors", "codec"):
        module = getattr(model, name)
        if module is not None:
            out[name] = module
    return out
