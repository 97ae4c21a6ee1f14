"""Model presets: the shapes of the reference runtime.

Shapes come from the public configs of VibeVoice-Realtime-0.5B, VibeVoice-1.5B and -7B, and
ChatTTS; `tiny` and `small` are our own, sized for CPU tests and demos. The parameter counts in
`reference_params` are the figures of DESIGN.md's table (our arithmetic from those configs); the
unit tests check the built models against them.

Nothing here allocates memory: a preset is plain data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vvbench.core.audio import SAMPLE_RATE
from vvbench.core.errors import ConfigError


@dataclass(frozen=True)
class LMSpec:
    """A Qwen2-style decoder: RMSNorm, RoPE, grouped-query attention (qkv bias), SwiGLU."""

    layers: int
    hidden: int
    heads: int
    kv_heads: int
    ffn: int
    vocab: int
    tied: bool = True
    rope_theta: float = 1_000_000.0
    norm_eps: float = 1e-6

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    def kv_bytes_per_token(self, dtype_bytes: int) -> int:
        """Bytes one token occupies in one KV cache (keys and values, every layer)."""
        return self.layers * 2 * self.kv_heads * self.head_dim * dtype_bytes


@dataclass(frozen=True)
class DiffusionSpec:
    """VibeVoice's diffusion head: adaptive-norm SwiGLU MLP blocks, no attention."""

    layers: int
    hidden: int
    ffn_ratio: float = 3.0
    latent_dim: int = 64
    default_steps: int = 10
    cfg_scale: float = 1.3
    train_timesteps: int = 1000


@dataclass(frozen=True)
class ConvCodecSpec:
    """A streaming causal conv stack (sigma-VAE decoder, or the semantic encoder mirrored).

    `channels[i]`/`depths[i]` describe stage i counted from the latent side; between stage i and
    i+1 the time axis is resampled by `ratios[i]`, so prod(ratios) samples make one frame.
    A block is depthwise causal conv (`kernel`) + RMS-style norm + pointwise MLP (4x channels).
    """

    channels: tuple[int, ...]
    depths: tuple[int, ...]
    ratios: tuple[int, ...]
    latent_dim: int = 64
    kernel: int = 7
    audio_channels: int = 1

    @property
    def hop(self) -> int:
        out = 1
        for r in self.ratios:
            out *= r
        return out


@dataclass(frozen=True)
class CodecSpec:
    """ChatTTS-style codec path: LM emits `codebooks` tokens per step, conv decoder to mel, vocoder."""

    codebooks: int = 4
    codebook_size: int = 626
    text_vocab: int = 21_178
    decoder_channels: int = 256
    decoder_layers: int = 12
    mel_bins: int = 100
    mel_per_step: int = 2
    vocoder_channels: int = 512
    vocoder_layers: int = 8
    vocoder_ffn: int = 1536
    n_fft: int = 1024


@dataclass(frozen=True)
class Preset:
    """Everything that fixes a model's shapes and its time base."""

    name: str
    description: str
    family: str  # "vibevoice" (LM + diffusion + sigma-VAE) or "codec" (ChatTTS-like)
    lm: LMSpec
    diffusion: DiffusionSpec | None
    decoder: ConvCodecSpec | None
    semantic: ConvCodecSpec | None
    codec: CodecSpec | None = None
    samples_per_frame: int = 3200
    default_dtype: str = "bfloat16"
    voice_prompt_tokens: int = 16
    # DESIGN.md table figures, by component name (see model.component_params()).
    reference_params: dict[str, float] = field(default_factory=dict)
    use: str = ""

    @property
    def frame_rate_hz(self) -> float:
        return SAMPLE_RATE / self.samples_per_frame

    @property
    def has_diffusion(self) -> bool:
        return self.diffusion is not None

    @property
    def uses_cfg(self) -> bool:
        return self.diffusion is not None


def _sigma_vae(scale: int = 1) -> ConvCodecSpec:
    return ConvCodecSpec(
        channels=(2048, 1024, 512, 256, 128, 64, 32),
        depths=(8, 3, 3, 3, 3, 3, 3),
        ratios=(8, 5, 5, 4, 2, 2),
    )


def _semantic_encoder() -> ConvCodecSpec:
    # Same stack as the acoustic tokenizer, read from the audio side to a 128-d semantic latent.
    return ConvCodecSpec(
        channels=(2048, 1024, 512, 256, 128, 64, 32),
        depths=(8, 3, 3, 3, 3, 3, 3),
        ratios=(8, 5, 5, 4, 2, 2),
        latent_dim=128,
    )


_QWEN_VOCAB = 151_936

PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        name="tiny",
        description="4-layer LM, 2-layer diffusion head, small conv decoder: tests and CI on CPU",
        family="vibevoice",
        lm=LMSpec(layers=4, hidden=256, heads=4, kv_heads=2, ffn=768, vocab=4096),
        diffusion=DiffusionSpec(layers=2, hidden=256, default_steps=10, cfg_scale=1.3),
        decoder=ConvCodecSpec(
            channels=(128, 64, 32, 16, 8, 8, 8), depths=(1, 1, 1, 1, 1, 1, 1), ratios=(8, 5, 5, 4, 2, 2)
        ),
        semantic=None,
        default_dtype="float32",
        voice_prompt_tokens=8,
        use="tests, CI",
    ),
    "small": Preset(
        name="small",
        description="8-layer LM, 4-layer diffusion head, medium conv decoder: CPU demo and tuning",
        family="vibevoice",
        lm=LMSpec(layers=8, hidden=512, heads=8, kv_heads=2, ffn=1536, vocab=8192),
        diffusion=DiffusionSpec(layers=4, hidden=512, default_steps=10, cfg_scale=1.3),
        decoder=ConvCodecSpec(
            channels=(256, 128, 64, 32, 16, 16, 16), depths=(2, 1, 1, 1, 1, 1, 1), ratios=(8, 5, 5, 4, 2, 2)
        ),
        semantic=None,
        default_dtype="float32",
        voice_prompt_tokens=8,
        use="CPU demo, CPU tuning",
    ),
    "realtime-0.5b": Preset(
        name="realtime-0.5b",
        description="VibeVoice-Realtime-0.5B shape: Qwen2.5-0.5B LM, 5-step head, sigma-VAE decoder",
        family="vibevoice",
        lm=LMSpec(layers=24, hidden=896, heads=14, kv_heads=2, ffn=4864, vocab=_QWEN_VOCAB),
        diffusion=DiffusionSpec(layers=4, hidden=896, default_steps=5, cfg_scale=1.5),
        decoder=_sigma_vae(),
        semantic=None,
        reference_params={"lm": 494e6, "diffusion": 42e6, "decoder": 344e6},
        use="GPU",
    ),
    "vibevoice-1.5b": Preset(
        name="vibevoice-1.5b",
        description="VibeVoice-1.5B shape: Qwen2.5-1.5B LM, 10-step head, sigma-VAE decoder, semantic feedback",
        family="vibevoice",
        lm=LMSpec(layers=28, hidden=1536, heads=12, kv_heads=2, ffn=8960, vocab=_QWEN_VOCAB),
        diffusion=DiffusionSpec(layers=4, hidden=1536, default_steps=10, cfg_scale=1.3),
        decoder=_sigma_vae(),
        semantic=_semantic_encoder(),
        reference_params={"lm": 1.54e9, "diffusion": 123e6, "decoder": 344e6, "semantic": 345e6},
        use="GPU",
    ),
    "vibevoice-7b": Preset(
        name="vibevoice-7b",
        description="VibeVoice-7B shape: Qwen2.5-7B LM (untied), 10-step head, sigma-VAE decoder, semantic feedback",
        family="vibevoice",
        lm=LMSpec(layers=28, hidden=3584, heads=28, kv_heads=4, ffn=18944, vocab=_QWEN_VOCAB, tied=False),
        diffusion=DiffusionSpec(layers=4, hidden=3584, default_steps=10, cfg_scale=1.3),
        decoder=_sigma_vae(),
        semantic=_semantic_encoder(),
        reference_params={"lm": 7.6e9, "diffusion": 669e6, "decoder": 344e6, "semantic": 345e6},
        use="GPU",
    ),
    "chattts": Preset(
        name="chattts",
        description="ChatTTS shape: 20-layer GPT emitting 4 codebooks at 46.875 Hz, conv decoder to mel, vocoder",
        family="codec",
        lm=LMSpec(layers=20, hidden=768, heads=12, kv_heads=12, ffn=3072, vocab=21_178, rope_theta=10_000.0),
        diffusion=None,
        decoder=None,
        semantic=None,
        codec=CodecSpec(),
        samples_per_frame=512,
        default_dtype="float32",
        voice_prompt_tokens=4,
        # DESIGN's 189M is the transformer layers alone (20 x 9.44M); see model.component_params().
        reference_params={"lm_layers": 189e6},
        use="GPU/CPU",
    ),
}


def get_preset(name: str) -> Preset:
    """The preset called `name`; an unknown name lists the valid ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"preset: unknown preset {name!r}; allowed: {', '.join(PRESETS)}") from None
