"""The streaming encoders decoded back by FFmpeg (PyAV): length, delay, level, and the Ogg framing."""

from __future__ import annotations

import io
import struct

import av
import numpy as np
import pytest

from vvbench.core.formats import FORMATS
from vvbench.core.formats.encode import open_encoder
from vvbench.core.formats.ogg import ogg_crc

RATE = 24_000
PIECE = 6_400  # two runtime frames


def encode(fmt: str, x: np.ndarray, rate: int = RATE) -> tuple[list[bytes], object]:
    enc = open_encoder(fmt, rate)
    parts = [enc.encode(x[i:i + PIECE]) for i in range(0, len(x), PIECE)]
    return parts + [enc.finish()], enc


def decode(data: bytes) -> tuple[np.ndarray, int]:
    with av.open(io.BytesIO(data)) as c:
        stream = c.streams.audio[0]
        frames = [f.to_ndarray().astype(np.float64).reshape(-1) / (32768.0 if f.format.name.startswith("s16") else 1.0)
                  for f in c.decode(stream)]
        return np.concatenate(frames), stream.rate


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f != "pcm"])
def test_a_click_comes_back_at_its_place_plus_the_declared_delay(fmt):
    x = np.zeros(RATE * 2, dtype=np.float32)
    x[RATE // 2:RATE // 2 + 240] = 0.5  # 10 ms burst at 0.5 s
    parts, enc = encode(fmt, x)
    y, rate = decode(b"".join(parts))
    onset = int(np.argmax(np.abs(y) > 0.1))
    expected = RATE // 2 * rate // RATE + enc.delay_samples
    assert abs(onset - expected) <= 2 * rate // 1000, (fmt, onset, expected)  # within 2 ms
    assert len(y) >= len(x) * rate // RATE + enc.delay_samples


@pytest.mark.parametrize("fmt", ["opus", "flac", "wav"])
def test_lossless_framing_formats_decode_to_the_exact_length(fmt):
    x = (0.3 * np.sin(2 * np.pi * 200 * np.arange(50_000) / RATE)).astype(np.float32)  # not a whole number of frames
    y, rate = decode(b"".join(encode(fmt, x)[0]))
    assert len(y) == len(x) * rate // RATE  # Opus: pre-skip and end trimming from the granule positions
    assert abs(np.sqrt(np.mean(y[2000:-2000] ** 2)) - 0.3 / np.sqrt(2)) < 0.01


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac"])
def test_every_chunk_after_the_first_yields_bytes(fmt):
    x = (0.3 * np.sin(2 * np.pi * 200 * np.arange(RATE * 3) / RATE)).astype(np.float32)
    parts, _ = encode(fmt, x)
    assert all(parts[:-1]), [len(p) for p in parts]  # nothing held back for the end but the codec's own delay


def test_opus_pages_one_per_chunk_with_valid_crc_and_granules():
    x = (0.3 * np.sin(2 * np.pi * 200 * np.arange(RATE) / RATE)).astype(np.float32)
    parts, _ = encode("opus", x)
    data, pos, pages = b"".join(parts), 0, []
    while pos < len(data):
        assert data[pos:pos + 4] == b"OggS"
        flags, granule, _, seq, crc, nseg = struct.unpack("<BqIIIB", data[pos + 5:pos + 27])
        size = 27 + nseg + sum(data[pos + 27:pos + 27 + nseg])
        page = bytearray(data[pos:pos + size])
        page[22:26] = b"\0\0\0\0"
        assert ogg_crc(bytes(page)) == crc
        pages.append((flags, granule, seq))
        pos += size
    assert [s for _, _, s in pages] == list(range(len(pages)))
    assert pages[0][0] == 0x02 and pages[-1][0] & 0x04  # begin and end of stream
    assert len(pages) == 2 + len(parts)  # two header pages, then one page per chunk and the last one
    granules = [g for _, g, _ in pages[2:]]
    assert granules == sorted(granules) and granules[-1] == 312 + len(x) * 2


def test_ogg_crc_matches_ffmpegs_muxer():
    sink = io.BytesIO()
    with av.open(sink, "w", format="ogg") as out:
        stream = out.add_stream("libopus", rate=48_000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 9600), dtype=np.int16), format="s16", layout="mono")
        frame.sample_rate = 48_000
        for packet in list(stream.encode(frame)) + list(stream.encode(None)):
            out.mux(packet)
    data = sink.getvalue()
    page = bytearray(data[:27 + data[26] + sum(data[27:27 + data[26]])])
    crc = struct.unpack("<I", page[22:26])[0]
    page[22:26] = b"\0\0\0\0"
    assert ogg_crc(bytes(page)) == crc
