"""Audio in for the checks: WAV files of any common sample format, raw 16-bit PCM, or WAV bytes.

The one WAV reader of the project: the service writes 16-bit PCM (`vvbench.core.audio`), and the
checks also read files users bring (`vvbench check-audio`), so this decoder takes every PCM width (8-bit unsigned,
16, 24 and 32-bit signed), 32/64-bit IEEE float, and WAVE_FORMAT_EXTENSIBLE wrappers of those.
Samples come back as float64 scaled so that integer full scale is ±1 (16-bit PCM uses the same
divisor as `vvbench.core.audio.from_pcm16`, so both readers agree bit for bit); float WAV values are
kept as they are, so a float file whose samples pass ±1 shows up as clipped. Multi-channel
audio is checked on its first channel: a TTS service answers mono, and
averaging channels would hide a clipped one.

A header with the streaming sizes (0xFFFFFFFF, as the service sends while streaming) reads
whatever data follows it. Anything unreadable raises `InputError` with the file named, which
the CLI turns into one line and exit code 2.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from vvbench.core.audio import STREAMING_SIZE, from_pcm16
from vvbench.core.errors import InputError

__all__ = ["decode_wav", "load_audio"]

_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE


def _samples(data: bytes, fmt: int, bits: int, name: str) -> np.ndarray:
    """Interleaved sample bytes -> float64, integer full scale at ±1."""
    if fmt == _PCM and bits == 16:
        return from_pcm16(data).astype(np.float64)
    if fmt == _PCM and bits == 8:
        return (np.frombuffer(data, dtype=np.uint8).astype(np.float64) - 128.0) / 127.0
    if fmt == _PCM and bits == 24:
        raw = np.frombuffer(data[: len(data) // 3 * 3], dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        value = raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)
        value = np.where(value >= 1 << 23, value - (1 << 24), value)
        return value.astype(np.float64) / float((1 << 23) - 1)
    if fmt == _PCM and bits == 32:
        return np.frombuffer(data[: len(data) // 4 * 4], dtype="<i4").astype(np.float64) / float(2**31 - 1)
    if fmt == _FLOAT and bits in (32, 64):
        dtype = "<f4" if bits == 32 else "<f8"
        size = bits // 8
        return np.frombuffer(data[: len(data) // size * size], dtype=dtype).astype(np.float64)
    raise InputError(f"{name}: unsupported WAV sample format (format tag {fmt}, {bits} bits); "
                     "PCM 8/16/24/32-bit and float 32/64-bit are read")


def decode_wav(raw: bytes, name: str = "<audio>") -> tuple[np.ndarray, int]:
    """RIFF/WAVE bytes -> (float64 samples of the first channel, sample rate)."""
    if raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise InputError(f"{name}: not a RIFF/WAVE file")
    pos, fmt, rate, channels, bits = 12, None, None, 1, 16
    while pos + 8 <= len(raw):
        cid, size = raw[pos:pos + 4], struct.unpack("<I", raw[pos + 4:pos + 8])[0]
        body = pos + 8
        if cid == b"fmt ":
            if size < 16 or body + min(size, 26) > len(raw):
                raise InputError(f"{name}: truncated fmt chunk")
            fmt, channels, rate, _, _, bits = struct.unpack("<HHIIHH", raw[body:body + 16])
            if fmt == _EXTENSIBLE and size >= 40:
                fmt = struct.unpack("<H", raw[body + 24:body + 26])[0]  # the sub-format GUID's first field
        elif cid == b"data":
            if fmt is None or not rate or not channels:
                raise InputError(f"{name}: data chunk before a valid fmt chunk")
            end = len(raw) if size == STREAMING_SIZE else min(len(raw), body + size)
            samples = _samples(raw[body:end], fmt, bits, name)
            samples = samples[: len(samples) // channels * channels]
            return samples[::channels].copy(), int(rate)
        pos = body + size + (size & 1)
    raise InputError(f"{name}: no data chunk")


def load_audio(path: str | Path, rate: int | None = None) -> tuple[np.ndarray, int]:
    """Read a WAV file, or raw 16-bit little-endian mono PCM when `rate` is given and the file is not a WAV.

    Returns (float64 samples, sample rate). Raises `InputError` naming the file when it cannot
    be read or decoded.
    """
    name = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"{name}: cannot read: {exc.strerror or exc}") from None
    if raw[:4] == b"RIFF":
        return decode_wav(raw, name)
    if rate is None:
        raise InputError(f"{name}: not a WAV file; give --rate N to read it as raw 16-bit little-endian PCM")
    if rate <= 0:
        raise InputError(f"{name}: --rate must be a positive sample rate, got {rate}")
    return from_pcm16(raw).astype(np.float64), int(rate)
