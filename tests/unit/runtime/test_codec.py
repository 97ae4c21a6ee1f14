"""Streaming conv decoder/encoder and the ChatTTS codec path: streaming = whole sequence, batch
invariance, in-place state views."""

from __future__ import annotations

import pytest
import torch

from vvbench.runtime.chattts import ChatTTSCodec
from vvbench.runtime.codec import ConvDecoder, ConvEncoder, SpeechConnector
from vvbench.runtime.model import build_model
from vvbench.runtime.presets import PRESETS, CodecSpec, ConvCodecSpec, LMSpec, Preset

M = 8
SMALL_CODEC = CodecSpec(
    decoder_channels=32, decoder_layers=2, vocoder_channels=48, vocoder_layers=2, vocoder_ffn=96, n_fft=64
)


# The sigma-VAE's ratios (3200 samples per frame) with narrow channels, to keep tests fast.
NARROW = dict(channels=(32, 16, 8, 8, 4, 4, 4), depths=(2, 1, 1, 1, 1, 1, 1), ratios=(8, 5, 5, 4, 2, 2))


@pytest.fixture(scope="module")
def model():
    preset = Preset(
        **{
            **PRESETS["tiny"].__dict__,
            "decoder": ConvCodecSpec(**NARROW),
            "semantic": ConvCodecSpec(**NARROW, latent_dim=128),
        }
    )
    return build_model(preset, seed=2)


@pytest.fixture(scope="module")
def codec() -> ChatTTSCodec:
    # The codec is sized by its own spec; a narrow LM keeps the build cheap.
    lm = LMSpec(layers=1, hidden=768, heads=12, kv_heads=12, ffn=256, vocab=64)
    preset = Preset(
        name="codec-test",
        description="",
        family="codec",
        lm=lm,
        diffusion=None,
        decoder=None,
        semantic=None,
        codec=SMALL_CODEC,
    )
    return build_model(preset, seed=2).codec


def _frames(shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_decoder_frame_shape_and_state_accounting(model):
    dec: ConvDecoder = model.decoder
    state = dec.init_state(3, "cpu", torch.float32)
    assert all(s.shape[0] == 3 for s in state)
    assert dec.state_bytes_per_row(4) * 3 == sum(s.numel() * 4 for s in state)
    audio = dec(torch.randn(3, 64), state)
    assert audio.shape == (3, 1, 3200) and torch.isfinite(audio).all()
    assert 0.01 < audio.std().item() < 100
    assert any(s.abs().sum() > 0 for s in state)


def test_decoder_streaming_equals_whole_sequence(model):
    latents = _frames((2, 4, 64), seed=0)
    state = model.decoder.init_state(2, "cpu", torch.float32)
    streamed = torch.cat([model.decoder(latents[:, i], state) for i in range(4)], dim=-1)
    whole = model.decoder.forward_sequence(latents)
    assert whole.shape == (2, 1, 4 * 3200)
    torch.testing.assert_close(streamed, whole, rtol=1e-4, atol=1e-5)


def test_encoder_streaming_equals_whole_sequence(model):
    enc: ConvEncoder = model.semantic
    audio = _frames((2, 1, 3 * 3200), seed=1)
    state = enc.init_state(2, "cpu", torch.float32)
    streamed = torch.stack([enc(audio[..., i * 3200 : (i + 1) * 3200], state) for i in range(3)], dim=1)
    whole = enc.forward_sequence(audio)
    assert whole.shape == (2, 3, 128)
    torch.testing.assert_close(streamed, whole, rtol=1e-4, atol=1e-5)


def test_state_views_are_updated_in_place(model):
    """The engine keeps per-slot tensors and passes views [:M]; both must give the same audio."""
    dec = model.decoder
    slots = dec.init_state(6, "cpu", torch.float32)
    own = dec.init_state(4, "cpu", torch.float32)
    for i in range(2):
        latent = _frames((4, 64), seed=10 + i)
        via_view = dec(latent, [s[:4] for s in slots])
        direct = dec(latent, own)
        assert torch.equal(via_view, direct)
    assert all(torch.equal(s[:4], o) for s, o in zip(slots, own, strict=True))
    assert all(s[4:].abs().sum() == 0 for s in slots)


def _invariant(step, inputs_for):
    """Run a stateful `step` three times with the target in row 0, then in row 5."""
    results = []
    for row, seed in ((0, 1), (5, 2)):
        outs, state = [], None
        for frame in range(3):
            x, state = inputs_for(row, seed, frame, state)
            outs.append(step(x, state)[row])
        results.append(torch.stack(outs))
    return results


def test_decoder_and_encoder_rows_are_batch_invariant(model):
    for module, shape in ((model.decoder, (64,)), (model.semantic, (1, 3200))):

        def inputs_for(row, seed, frame, state, module=module, shape=shape):
            x = _frames((M, *shape), seed=seed * 100 + frame) * 4
            x[row] = _frames(shape, seed=frame)
            if state is None:
                # Other rows carry garbage history; the target row starts from a zero past.
                gen = torch.Generator().manual_seed(seed)
                state = [s.normal_(generator=gen) for s in module.init_state(M, "cpu", torch.float32)]
                for s in state:
                    s[row] = 0
            return x, state

        a, b = _invariant(module, inputs_for)
        assert torch.equal(a, b)


def test_connector_maps_latents_to_lm_width():
    conn = SpeechConnector(64, 96)
    assert conn(torch.randn(5, 64)).shape == (5, 96)


def test_codec_embeddings_and_heads(codec):
    codes = torch.randint(0, 626, (M, 4))
    emb = codec.embed_codes(codes)
    assert emb.shape == (M, 768)
    expected = sum(codec.code_embed[i].weight[codes[:, i]] for i in range(4))
    torch.testing.assert_close(emb, expected)
    assert codec.code_logits(torch.randn(M, 768)).shape == (M, 4, 626)


def test_codec_spectrum_streaming_equals_sequence(codec):
    codes = torch.randint(0, 626, (2, 5, 4), generator=torch.Generator().manual_seed(0))
    state = codec.init_state(2, "cpu", torch.float32)
    assert codec.state_bytes_per_row(4) * 2 == sum(s.numel() * 4 for s in state)
    frames = [codec(codes[:, i], state) for i in range(5)]
    assert frames[0].shape == (2, SMALL_CODEC.mel_per_step, SMALL_CODEC.n_fft // 2 + 1)
    assert all((f >= 0).all() for f in frames)
    mag, phase = codec.forward_spectrum(codes[:, 0], codec.init_state(2, "cpu", torch.float32))
    assert phase.abs().max() <= torch.pi + 1e-6 and torch.equal(mag, frames[0])
    torch.testing.assert_close(torch.cat(frames, dim=1), codec.forward_sequence(codes), rtol=1e-4, atol=1e-5)


def test_codec_rows_are_batch_invariant(codec):
    target = torch.randint(0, 626, (3, 4), generator=torch.Generator().manual_seed(7))

    def inputs_for(row, seed, frame, state):
        codes = torch.randint(0, 626, (M, 4), generator=torch.Generator().manual_seed(seed * 10 + frame))
        codes[row] = target[frame]
        return codes, state if state is not None else codec.init_state(M, "cpu", torch.float32)

    a, b = _invariant(codec, inputs_for)
    assert torch.equal(a, b)


def test_sigma_vae_flops_match_design_figure():
    model = build_model("vibevoice-1.5b", device="meta")
    # DESIGN.md: decoder and semantic encoder about 3.6 GFLOP per frame each.
    assert model.decoder.flops_per_frame() == pytest.approx(3.6e9, rel=0.05)
    assert model.semantic.flops_per_frame() == pytest.approx(3.6e9, rel=0.05)
