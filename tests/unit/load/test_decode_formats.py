"""Compressed answers decoded as they arrive: the same samples in any piece size, and as PyAV's demuxer reads them."""

import hashlib
import io

import av
import numpy as np
import pytest

from vvbench.core.audio import AudioFormatError, first_audible, to_pcm16
from vvbench.core.formats.decode import COMPRESSED, MP3_DECODER_DELAY, decode_file, decoder, sniff
from vvbench.load.audio import AudioStream
from vvbench.load.fakecodec import ChunkEncoder

RATE = 24_000


def signal(seconds: float = 1.5, silence_s: float = 0.3) -> np.ndarray:
    """A gliding tone after leading digital silence (so the first audible window is not at sample 0)."""
    t = np.arange(int(seconds * RATE)) / RATE
    x = 0.3 * np.sin(2 * np.pi * (200 + 100 * t) * t)
    x[t < silence_s] = 0.0
    return x


def streamed(fmt: str, x: np.ndarray, chunk: int = 9600) -> bytes:
    """`x` encoded chunk by chunk the way the fake server streams it."""
    enc = ChunkEncoder(fmt, RATE)
    return b"".join(enc.encode(to_pcm16(x[i:i + chunk])) for i in range(0, len(x), chunk)) + enc.close()


def lame_mp3(x: np.ndarray) -> bytes:
    """A whole mp3 file written to a seekable buffer: FFmpeg adds its Xing/Info frame with a LAME tag."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp3") as out:
        stream = out.add_stream("libmp3lame", rate=RATE, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.frombuffer(to_pcm16(x), "<i2").reshape(1, -1).copy(), format="s16", layout="mono")
        frame.sample_rate = RATE
        for p in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(p)
    return buf.getvalue()


def feed(fmt: str, body: bytes, piece: int | None) -> tuple[AudioStream, np.ndarray, list[int]]:
    """Feed `body` in pieces through AudioStream and a bare decoder: (stream, samples, pieces that became audible)."""
    step = piece or len(body)
    s, d, parts, hits = AudioStream(fmt), decoder(fmt), [], []
    for k, i in enumerate(range(0, len(body), step)):
        if s.feed(body[i:i + step]):
            hits.append(k)
        parts.append(d.feed(body[i:i + step]))
    if s.close():
        hits.append(-1)
    parts.append(d.close())
    return s, np.concatenate(parts), hits


@pytest.fixture(scope="module")
def bodies() -> dict[str, bytes]:
    x = signal()
    return {fmt: streamed(fmt, x) for fmt in COMPRESSED} | {"mp3-lame": lame_mp3(x)}


@pytest.mark.parametrize("fmt", [*COMPRESSED, "mp3-lame"])
def test_any_piece_size_gives_the_samples_md5_and_audible_point_of_the_whole_file(bodies, fmt):
    body, codec = bodies[fmt], fmt.split("-")[0]
    ref, rate, _ = decode_file(body)
    runs = {piece: feed(codec, body, piece) for piece in (1, 7, 4096, None)}
    whole, whole_samples, _ = runs[None]
    assert whole.sample_rate == rate == (48_000 if codec == "opus" else RATE)
    for stream, samples, hits in runs.values():
        assert stream.md5 == whole.md5 == hashlib.md5(to_pcm16(samples)).hexdigest()
        assert stream.samples == len(samples) == whole.samples
        assert len(hits) == 1  # the first audible window is found once
        assert stream.audible_at == first_audible(ref, rate)
    # PyAV's demuxer gives the same signal; Opus may end up to one pre-skip earlier (decode.py's docstring)
    n = len(ref)
    assert len(whole_samples) - n in ((0, 312) if codec == "opus" else (0,))
    np.testing.assert_array_equal(whole_samples[:n], ref)
    assert whole.audio_s == pytest.approx(1.5, abs=0.1)


def test_priming_and_padding_are_read_where_the_body_declares_them(bodies):
    opus, _, _ = feed("opus", bodies["opus"], 7)
    assert opus.facts.priming_samples == 312 and opus.facts.padding_samples is None  # libopus' pre-skip at 48 kHz
    lame, samples, _ = feed("mp3", bodies["mp3-lame"], 7)
    assert lame.facts.priming_samples > 0 and lame.facts.padding_samples > 0
    assert len(samples) == len(signal())  # delay + decoder delay and padding trimmed: exactly the input's length
    assert decode_file(bodies["mp3-lame"])[2].priming_samples == lame.facts.priming_samples
    assert decode_file(bodies["opus"])[2].priming_samples == 312
    plain, samples, _ = feed("mp3", bodies["mp3"], 7)  # streamed mp3: no LAME frame, nothing trimmed
    assert plain.facts.priming_samples is None and len(samples) > len(signal()) + MP3_DECODER_DELAY // 2
    for fmt in ("aac", "flac"):
        s, _, _ = feed(fmt, bodies[fmt], 4096)
        assert s.facts.priming_samples is None and s.facts.padding_samples is None


def test_encoded_bitrate_is_bits_per_decoded_second(bodies):
    s, _, _ = feed("opus", bodies["opus"], 4096)
    assert s.bitrate_bps == pytest.approx(len(bodies["opus"]) * 8 / s.audio_s)
    assert 20_000 < s.bitrate_bps < 80_000  # the fake server's 32 kb/s plus Ogg pages


def test_a_compressed_frame_is_decodable_only_when_it_has_arrived(bodies):
    body = bodies["opus"]
    s = AudioStream("opus")
    s.feed(body[: len(body) // 2])
    half = s.samples
    s.feed(body[len(body) // 2:])
    assert 0 < half < s.samples


def test_sniff_names_each_format(bodies):
    assert {fmt: sniff(bodies[fmt]) for fmt in COMPRESSED} == {fmt: fmt for fmt in COMPRESSED}
    assert sniff(b"RIFF....WAVE") is None


@pytest.mark.parametrize("fmt", ["opus", "flac"])
def test_not_the_container_is_a_format_error(fmt):
    with pytest.raises(AudioFormatError):
        AudioStream(fmt).feed(b"<html>this is not audio at all</html>")


def test_a_body_cut_inside_the_flac_metadata_is_a_format_error(bodies):
    s = AudioStream("flac")
    s.feed(bodies["flac"][:20])
    with pytest.raises(AudioFormatError):
        s.close()


def test_scenarios_take_every_format_for_speech_and_wav_or_pcm_for_jobs():
    from typing import get_args

    from pydantic import ValidationError

    from vvbench.artifacts.scenarios import RequestClass
    from vvbench.core.formats import FORMATS

    assert get_args(RequestClass.model_fields["response_format"].annotation) == FORMATS
    assert RequestClass.model_validate({"name": "a", "text": {"corpus": "short"}, "response_format": "opus"}).response_format == "opus"
    with pytest.raises(ValidationError, match="job chunks"):
        RequestClass.model_validate({"name": "a", "api": "job", "text": {"corpus": "short"}, "response_format": "mp3"})


@pytest.mark.parametrize("fmt", COMPRESSED)
def test_an_empty_body_has_no_samples_and_is_no_format_error(fmt):
    s = AudioStream(fmt)
    assert not s.feed(b"") and not s.close()
    assert s.samples == 0 and s.audible_at is None and s.sample_rate == 0
