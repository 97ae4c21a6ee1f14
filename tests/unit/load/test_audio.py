"""Stream parsing and first-audible-window detection on synthetic byte streams."""

import base64
import hashlib
import json

import numpy as np
import pytest

from vvbench.core.audio import AudioFormatError, to_pcm16, wav_header
from vvbench.load.audio import AudioStream, SSEDecoder, StreamErrorEvent

RATE = 24_000
WIN = 480  # 20 ms


def tone(n: int, dbfs: float) -> np.ndarray:
    amp = 10 ** (dbfs / 20) * np.sqrt(2)  # a sine's RMS is amp / sqrt(2)
    return amp * np.sin(2 * np.pi * 300 * np.arange(n) / RATE)


def feed_in_pieces(stream: AudioStream, data: bytes, size: int) -> list[int]:
    """Feed `data` `size` bytes at a time; return the piece indexes that completed the audible window."""
    return [i for i, k in enumerate(range(0, len(data), size)) if stream.feed(data[k:k + size])]


@pytest.mark.parametrize("piece", [1, 7, 44, 1000, 10**6])
def test_wav_split_anywhere_gives_the_same_samples_md5_and_audible_point(piece):
    pcm = to_pcm16(np.concatenate([np.zeros(3 * WIN), tone(10 * WIN, -20)]))
    body = wav_header(RATE, None) + pcm
    s = AudioStream("wav")
    hits = feed_in_pieces(s, body, piece)
    assert s.sample_rate == RATE and s.samples == 13 * WIN
    assert s.md5 == hashlib.md5(pcm).hexdigest()
    assert s.audible_at == 4 * WIN  # the 4th window is the first audible one; it ends at sample 4*WIN
    assert len(hits) == 1
    assert s.header_len == 44


def test_threshold_is_minus_50_dbfs():
    quiet, loud = AudioStream("pcm", RATE), AudioStream("pcm", RATE)
    quiet.feed(to_pcm16(tone(20 * WIN, -53)))
    loud.feed(to_pcm16(tone(20 * WIN, -47)))
    assert quiet.audible_at is None
    assert loud.audible_at == WIN


def test_leading_silence_moves_the_audible_point():
    s = AudioStream("pcm", RATE)
    silence = to_pcm16(np.zeros(RATE // 2))
    assert not s.feed(silence)
    assert s.audible_at is None and s.audio_s == pytest.approx(0.5)
    assert s.feed(to_pcm16(tone(WIN, -10)))
    assert s.audible_at == RATE // 2 + WIN


def test_not_a_wav_is_an_error():
    with pytest.raises(AudioFormatError):
        AudioStream("wav").feed(b"<html>nope</html>")


def test_fmt_after_partial_header_waits():
    s = AudioStream("wav")
    body = wav_header(RATE, None) + to_pcm16(tone(WIN, -10))
    assert not s.feed(body[:30])
    assert s.samples == 0
    assert s.feed(body[30:])


def _sse(audio: bytes) -> bytes:
    return b"data: " + json.dumps({"type": "speech.audio.delta", "audio": base64.b64encode(audio).decode()}).encode() + b"\n\n"


def test_sse_events_decode_across_piece_boundaries():
    pcm = to_pcm16(tone(5 * WIN, -10))
    body = _sse(wav_header(RATE, None) + pcm[:1000]) + _sse(pcm[1000:]) + b'data: {"type":"speech.audio.done"}\n\n'
    dec, s = SSEDecoder(), AudioStream("wav")
    for k in range(0, len(body), 13):
        s.feed(dec.feed(body[k:k + 13]))
    assert dec.done and s.samples == 5 * WIN and s.md5 == hashlib.md5(pcm).hexdigest()


def test_sse_error_event_raises_with_its_message():
    with pytest.raises(StreamErrorEvent, match="engine failed"):
        SSEDecoder().feed(b'data: {"type":"error","error":{"message":"engine failed"}}\n\n')
