"""The one WAV/PCM reader and writer: exact round trips, every sample format, and one-line errors.

The last test feeds the load generator's stream parser one byte at a time: it uses the same
chunk walk and sample decoder as the file reader, so both must see the same samples and the
same first audible window.
"""

from __future__ import annotations

import hashlib
import struct

import numpy as np
import pytest

from vvbench.core.audio import (
    FORMAT_EXTENSIBLE,
    FORMAT_FLOAT,
    FORMAT_PCM,
    SAMPLE_RATE,
    STREAMING_SIZE,
    AudioFormatError,
    decode_wav,
    first_audible,
    from_pcm16,
    parse_wav_header,
    read_audio,
    to_pcm16,
    wav_header,
    write_wav,
)
from vvbench.core.errors import InputError
from vvbench.load.audio import AudioStream

RATE = 22_050  # not the service's rate, so that nothing passes by defaulting to it
_GUID_TAIL = bytes.fromhex("000000001000800000aa00389b71")  # KSDATAFORMAT_SUBTYPE_* after the format tag


def chunk(cid: bytes, body: bytes) -> bytes:
    return cid + struct.pack("<I", len(body)) + body + b"\0" * (len(body) & 1)


def riff(*chunks: bytes, size: int | None = None) -> bytes:
    body = b"WAVE" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body) if size is None else size) + body


def extensible_fmt(channels: int, bits: int, sub_format: int, rate: int = RATE) -> bytes:
    block = channels * bits // 8
    return (struct.pack("<HHIIHH", FORMAT_EXTENSIBLE, channels, rate, rate * block, block, bits)
            + struct.pack("<HHI", 22, bits, (1 << channels) - 1) + struct.pack("<H", sub_format) + _GUID_TAIL)


def int24(values: np.ndarray) -> bytes:
    return b"".join(int(v).to_bytes(3, "little", signed=True) for v in values)


def speechlike(n: int, seed: int = 0) -> np.ndarray:
    """A 0.3 s silence, then a modulated tone with noise: audible from some window past the start."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / RATE
    x = 0.4 * np.sin(2 * np.pi * 180 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)) + 0.01 * rng.standard_normal(n)
    x[: int(0.3 * RATE)] = 0.0
    return x


# -- writing and the 16-bit scale --------------------------------------------------------------------
def test_every_int16_value_round_trips_bit_exactly(tmp_path):
    pcm = np.arange(-32768, 32768, dtype="<i2").tobytes()
    x = from_pcm16(pcm)
    assert x[0] == -1.0 and x[-1] == 32767 / 32768 and x[32768] == 0.0
    assert to_pcm16(x) == pcm
    assert to_pcm16(x.astype(np.float32)) == pcm  # the runtime hands over float32
    path = tmp_path / "all.wav"
    write_wav(path, x, RATE)
    assert path.read_bytes() == wav_header(RATE, 65536) + pcm
    y, rate = read_audio(path)
    assert rate == RATE and np.array_equal(y, x)
    assert [p.name for p in tmp_path.iterdir()] == ["all.wav"]  # written through a temporary name


def test_writing_rounds_to_nearest_and_clips():
    x = np.array([1.0, -1.0, 1.5, -7.0, 1.4 / 32768, 1.6 / 32768, -1.6 / 32768])
    assert np.frombuffer(to_pcm16(x), dtype="<i2").tolist() == [32767, -32768, 32767, -32768, 1, 2, -2]


def test_the_header_says_what_follows():
    head = wav_header(RATE, 10, channels=2, bits=24)
    parsed = parse_wav_header(head)
    assert parsed.format.sample_rate == RATE and parsed.format.channels == 2 and parsed.format.bits == 24
    assert parsed.data_offset == 44 and parsed.data_bytes == 60
    streaming = parse_wav_header(wav_header(SAMPLE_RATE, None))
    assert streaming.data_bytes is None and wav_header(SAMPLE_RATE, None)[40:44] == struct.pack("<I", STREAMING_SIZE)


# -- reading every sample format ----------------------------------------------------------------------
def test_24_and_32_bit_and_8_bit_pcm_read_at_integer_full_scale():
    ints = np.array([-(1 << 23), -1, 0, 1, (1 << 23) - 1, 123456])
    y, rate = decode_wav(wav_header(RATE, len(ints), bits=24) + int24(ints))
    assert rate == RATE and np.array_equal(y, ints / 2.0**23)
    i32 = np.array([-(2**31), 0, 2**31 - 1, -5], dtype="<i4")
    y32, _ = decode_wav(wav_header(RATE, len(i32), bits=32) + i32.tobytes())
    assert np.array_equal(y32, i32 / 2.0**31)
    u8 = np.array([0, 128, 255, 64], dtype=np.uint8)
    y8, _ = decode_wav(wav_header(RATE, len(u8), bits=8) + u8.tobytes())
    assert y8.tolist() == [-1.0, 0.0, 127 / 128, -0.5]


@pytest.mark.parametrize("bits", [32, 64])
def test_float_files_keep_their_values(bits):
    x = np.array([0.25, -0.5, 1.25, -1e-7])  # 1.25: a float file may pass full scale, and that is clipping
    raw = x.astype(f"<f{bits // 8}")
    y, _ = decode_wav(wav_header(RATE, len(x), bits=bits, tag=FORMAT_FLOAT) + raw.tobytes())
    assert np.array_equal(y, raw.astype(np.float64))


def test_extensible_reads_its_sub_format_on_the_first_channel():
    left, right = np.array([100, -200, 300]), np.array([-7, 7, -7])
    frames = int24(np.stack([left, right], axis=1).reshape(-1))
    y, rate = decode_wav(riff(chunk(b"fmt ", extensible_fmt(2, 24, FORMAT_PCM)), chunk(b"data", frames)))
    assert rate == RATE and np.array_equal(y, left / 2.0**23)
    floats = np.array([0.5, -0.25], dtype="<f4")
    yf, _ = decode_wav(riff(chunk(b"fmt ", extensible_fmt(1, 32, FORMAT_FLOAT)), chunk(b"data", floats.tobytes())))
    assert yf.tolist() == [0.5, -0.25]


def test_other_chunks_are_skipped_and_sizes_are_honoured():
    pcm = to_pcm16(np.array([0.5, -0.5, 0.25]))
    fmt = wav_header(RATE, 0)[12:36]
    listed = riff(chunk(b"LIST", b"INFOISFT\x03\x00\x00\x00vv\x00"), fmt, chunk(b"data", pcm), chunk(b"id3 ", b"tag"))
    y, _ = decode_wav(listed)
    assert y.tolist() == [0.5, -0.5, 0.25]  # the odd-sized LIST is padded; the chunk after the data is not audio
    streamed = wav_header(RATE, None) + pcm + pcm
    assert len(decode_wav(streamed)[0]) == 6  # unknown size: everything that follows
    assert len(decode_wav(wav_header(RATE, 0) + pcm)[0]) == 3  # a header written before the audio, as some servers stream
    cut = wav_header(RATE, 1000) + pcm
    assert len(decode_wav(cut)[0]) == 3  # a data chunk cut short reads what is there


# -- what cannot be read: one line, naming the source ---------------------------------------------------
FMT16 = wav_header(RATE, 0)[12:36]


@pytest.mark.parametrize("raw, why", [
    (b"<html>nope</html>", "not a RIFF/WAVE file"),
    (b"RIFF\x00\x00", "not a RIFF/WAVE file"),
    (b"RIFF\x00\x00\x00\x00WAVEjunk", "no data chunk"),
    (riff(FMT16), "no data chunk"),
    (riff(chunk(b"data", b"\0\0"), FMT16), "data chunk before a valid fmt chunk"),
    (riff(chunk(b"fmt ", b"\x01\x00\x01\x00")), "truncated fmt chunk"),
    (riff(size=0) + b"fmt " + struct.pack("<I", 40) + extensible_fmt(1, 16, FORMAT_PCM)[:18], "truncated fmt chunk"),
    (riff(chunk(b"fmt ", extensible_fmt(1, 16, FORMAT_PCM)[:18])), "truncated fmt chunk"),
    (riff(chunk(b"fmt ", struct.pack("<HHIIHH", 2, 1, RATE, RATE, 256, 4)), chunk(b"data", b"")), "unsupported WAV sample format (format tag 2, 4 bits)"),
    (riff(chunk(b"fmt ", struct.pack("<HHIIHH", 1, 1, RATE, RATE, 2, 12)), chunk(b"data", b"")), "unsupported"),
    (riff(chunk(b"fmt ", struct.pack("<HHIIHH", 1, 0, RATE, 0, 0, 16)), chunk(b"data", b"")), "0 channels"),
])
def test_unreadable_wav_is_a_one_line_input_error_naming_the_file(tmp_path, raw, why):
    with pytest.raises(AudioFormatError) as info:
        decode_wav(raw, "canary response")
    assert isinstance(info.value, InputError)  # the CLI prints it as one line, exit code 2
    assert str(info.value).startswith("canary response: ") and why in str(info.value) and "\n" not in str(info.value)
    if raw.startswith(b"RIFF"):  # a file that is no RIFF at all may be raw PCM: the next test
        path = tmp_path / "bad.wav"
        path.write_bytes(raw)
        with pytest.raises(AudioFormatError) as info:
            read_audio(path)
        assert str(info.value).startswith(f"{path}: ") and why in str(info.value)


def test_missing_files_and_raw_pcm_without_a_rate(tmp_path):
    with pytest.raises(InputError, match="missing.wav: cannot read"):
        read_audio(tmp_path / "missing.wav")
    raw = tmp_path / "speech.pcm"
    raw.write_bytes(to_pcm16(np.array([0.5, -0.5])))
    with pytest.raises(InputError, match=r"speech.pcm: not a WAV file; give its sample rate \(--rate N\)"):
        read_audio(raw)
    for bad in (0, -1, 384_001, 4_294_967_295):
        with pytest.raises(InputError, match="sample rate must be between 1 and 384000 Hz"):
            read_audio(raw, rate=bad)
    assert read_audio(raw, rate=RATE)[0].tolist() == [0.5, -0.5]


def test_absurd_header_rates_and_files_that_are_no_files_are_refused(tmp_path):
    wav = bytearray(wav_header(RATE, 2) + to_pcm16(np.array([0.5, -0.5])))
    wav[24:28] = (4_294_967_295).to_bytes(4, "little")  # the fmt chunk's sample rate
    path = tmp_path / "absurd.wav"
    path.write_bytes(bytes(wav))
    with pytest.raises(InputError, match="4294967295 Hz"):
        read_audio(path)
    with pytest.raises(InputError, match="/dev/zero: not a regular file"):  # would never finish reading
        read_audio("/dev/zero", rate=RATE)
    with pytest.raises(InputError, match="not a regular file"):
        read_audio(tmp_path, rate=RATE)


# -- the stream parser and the file reader agree ----------------------------------------------------------
def _bodies() -> dict[str, bytes]:
    x = speechlike(RATE)
    stereo = np.stack([x, -x], axis=1).reshape(-1)
    ints = np.round(x * 2**23).clip(-(2**23), 2**23 - 1)
    return {
        "pcm16 streaming": wav_header(RATE, None) + to_pcm16(x),
        "pcm16 header with size 0": wav_header(RATE, 0) + to_pcm16(x),
        "pcm16 stereo sized": wav_header(RATE, len(x), channels=2) + to_pcm16(stereo),
        "pcm24 between other chunks": riff(chunk(b"LIST", b"INFOx"), wav_header(RATE, 0, bits=24)[12:36],
                                         chunk(b"data", int24(ints)), chunk(b"id3 ", b"not audio"), size=STREAMING_SIZE),
        "float32 extensible": riff(chunk(b"fmt ", extensible_fmt(1, 32, FORMAT_FLOAT)), chunk(b"data", x.astype("<f4").tobytes())),
    }


@pytest.mark.parametrize("name", list(_bodies()))
def test_fed_one_byte_at_a_time_the_stream_sees_what_the_reader_sees(name):
    body = _bodies()[name]
    samples, rate = decode_wav(body)
    whole = parse_wav_header(body)
    stream = AudioStream("wav")
    hits = [i for i in range(len(body)) if stream.feed(body[i:i + 1])]
    assert stream.sample_rate == rate == RATE and stream.samples == len(samples)
    assert stream.header_len == whole.data_offset
    data_end = len(body) if whole.data_bytes is None else whole.data_offset + whole.data_bytes
    assert stream.md5 == hashlib.md5(body[whole.data_offset:data_end]).hexdigest()
    audible_at = first_audible(samples, rate)
    assert audible_at is not None and stream.audible_at == audible_at
    assert len(hits) == 1 and hits[0] == whole.data_offset + audible_at * whole.format.frame_bytes - 1
    for n in range(whole.data_offset):  # every shorter prefix is "not yet", never an error
        assert parse_wav_header(body[:n], final=False) is None
