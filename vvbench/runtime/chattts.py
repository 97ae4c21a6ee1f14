"""The codec path of the ChatTTS-shaped preset: code embeddings, code heads, decoder, vocoder.

Each LM step emits `codebooks` (4) codes of `codebook_size` (626). Their embeddings, summed, are
the next LM input. To make sound, the codes go through a streaming conv decoder to mel frames
(`mel_per_step` per step, 2 at 46.875 Hz = 93.75 mel frames/s = hop 256 at 24 kHz) and a Vocos-like
vocoder (ConvNeXt blocks, then a linear head to `n_fft // 2 + 1` log-magnitudes and phases). The
output is a spectrum per mel frame; turning it into samples (inverse STFT) is left to the caller.

Everything streams with the same per-row in-place state contract as `codec.py`, and nothing
reduces across rows, so the path is batch invariant at a fixed row count.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from vvbench.runtime.codec import CausalConv1d, CausalConvTranspose1d, ConvNeXtBlock, StreamingStack
from vvbench.runtime.layers import Embedding, RMSNorm
from vvbench.runtime.presets import CodecSpec

# Vocos clips magnitudes at 100 (exp(log_mag) <= 1e2) so random heads cannot overflow.
_LOG_MAG_MAX = math.log(100.0)


class ChannelRMSNorm(nn.Module):
    """RMSNorm over the channel axis of [M, C, L]; stateless."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.norm = RMSNorm(channels, eps)

    def state_shape(self) -> None:
        return None

    def sequence(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)

    def stream(self, x: torch.Tensor, state: None) -> torch.Tensor:
        return self.sequence(x)

    def flops(self, steps_in: int) -> int:
        return 4 * self.norm.dim * steps_in


class CodeDecoder(StreamingStack):
    """Codes [M, codebooks] -> mel [M, mel_bins, mel_per_step], streaming.

    One embedding table per codebook (each `channels / codebooks` wide, concatenated, like
    grouped quantisers), upsampled to `mel_per_step` frames, `decoder_layers` ConvNeXt blocks,
    then a 1x1 conv to the mel bins.
    """

    def __init__(self, spec: CodecSpec):
        c, up = spec.decoder_channels, spec.mel_per_step
        super().__init__(
            [CausalConvTranspose1d(c, c, up, up)]
            + [ConvNeXtBlock(c, 7) for _ in range(spec.decoder_layers)]
            + [CausalConv1d(c, spec.mel_bins, 1)]
        )
        width = c // spec.codebooks
        self.quantizer_embed = nn.ModuleList(Embedding(spec.codebook_size, width) for _ in range(spec.codebooks))
        self.proj = nn.Linear(width * spec.codebooks, c)

    def _embed(self, codes: torch.Tensor) -> torch.Tensor:
        parts = [emb(codes[..., i]) for i, emb in enumerate(self.quantizer_embed)]
        return self.proj(torch.cat(parts, dim=-1))

    def forward(self, codes: torch.Tensor, state: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.stream(self._embed(codes).unsqueeze(-1), state)

    def forward_sequence(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes [M, T, codebooks] from a zero state -> mel [M, mel_bins, T * mel_per_step]."""
        return self.sequence(self._embed(codes).transpose(1, 2))


class Vocoder(StreamingStack):
    """Vocos-like: mel [M, mel_bins, L] -> (magnitude, phase), each [M, L, n_fft // 2 + 1]."""

    def __init__(self, spec: CodecSpec):
        vc = spec.vocoder_channels
        super().__init__(
            [CausalConv1d(spec.mel_bins, vc, 7), ChannelRMSNorm(vc)]
            + [ConvNeXtBlock(vc, 7, ffn=spec.vocoder_ffn) for _ in range(spec.vocoder_layers)]
            + [ChannelRMSNorm(vc)]
        )
        self.bins = spec.n_fft // 2 + 1
        self.head = nn.Linear(vc, 2 * self.bins)

    def _spectrum(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.head(h.transpose(1, 2))
        log_mag, p = y[..., : self.bins], y[..., self.bins :]
        mag = torch.exp(torch.clamp(log_mag, max=_LOG_MAG_MAX))
        return mag, torch.atan2(torch.sin(p), torch.cos(p))

    def forward(self, mel: torch.Tensor, state: Sequence[torch.Tensor]):
        return self._spectrum(self.stream(mel, state))

    def forward_sequence(self, mel: torch.Tensor):
        return self._spectrum(self.sequence(mel))


class ChatTTSCodec(nn.Module):
    """Code embeddings and heads for the LM, and the streaming codes -> spectrum path.

    State is the decoder's caches followed by the vocoder's (one list, rows first, updated in
    place). `forward` returns non-negative magnitudes [M, mel_per_step, n_fft // 2 + 1];
    `forward_spectrum` returns the phases as well.
    """

    def __init__(self, spec: CodecSpec, hidden: int):
        super().__init__()
        self.spec = spec
        self.code_embed = nn.ModuleList(Embedding(spec.codebook_size, hidden) for _ in range(spec.codebooks))
        self.heads = nn.ModuleList(nn.Linear(hidden, spec.codebook_size, bias=False) for _ in range(spec.codebooks))
        self.decoder = CodeDecoder(spec)
        self.vocoder = Vocoder(spec)

    def embed_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """LM input [M, H]: the sum of the codebooks' embeddings of codes [M, codebooks]."""
        out = self.code_embed[0](codes[:, 0])
        for i in range(1, self.spec.codebooks):
            out = out + self.code_embed[i](codes[:, i])
        return out

    def code_logits(self, h: torch.Tensor) -> torch.Tensor:
        """Logits [M, codebooks, codebook_size] of final-normed LM states [M, H]."""
        return torch.stack([head(h) for head in self.heads], dim=1)

    def init_state(self, rows: int, device=None, dtype: torch.dtype | None = None) -> list[torch.Tensor]:
        """Zeroed caches of decoder and vocoder for `rows` slots."""
        return self.decoder.init_state(rows, device, dtype) + self.vocoder.init_state(rows, device, dtype)

    def state_bytes_per_row(self, dtype_bytes: int) -> int:
        """Bytes of causal cache one stream holds."""
        return self.decoder.state_bytes_per_row(dtype_bytes) + self.vocoder.state_bytes_per_row(dtype_bytes)

    def _split(self, state: Sequence[torch.Tensor]):
        n = len(self.decoder._shapes())
        return state[:n], state[n:]

    def forward_spectrum(self, codes: torch.Tensor, state: Sequence[torch.Tensor]):
        """One step per row: codes [M, codebooks] -> (magnitude, phase) [M, mel_per_step, bins]."""
        dec_state, voc_state = self._split(state)
        return self.vocoder(self.decoder(codes, dec_state), voc_state)

    def forward(self, codes: torch.Tensor, state: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.forward_spectrum(codes, state)[0]

    def forward_sequence(self, codes: torch.Tensor) -> torch.Tensor:
        """Magnitudes [M, T * mel_per_step, bins] for codes [M, T, codebooks] from a zero state."""
        return self.vocoder.forward_sequence(self.decoder.forward_sequence(codes))[0]

    def flops_per_step(self) -> int:
        """FLOPs of decoder and vocoder for one LM step of one row (code heads not included)."""
        s = self.spec
        head = 2 * self.vocoder.head.in_features * self.vocoder.head.out_features * s.mel_per_step
        return self.decoder.stack_flops(1) + self.vocoder.stack_flops(s.mel_per_step) + head
