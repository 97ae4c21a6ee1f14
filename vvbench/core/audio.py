"""WAV and raw PCM in and out: 16-bit little-endian mono, with a streaming header variant.

No torch, no numpy beyond conversion, so the service, the monitor and the load generator can
all share it.
"""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import numpy as np

STREAMING_SIZE = 0xFFFFFFFF  # RIFF/data size for a WAV whose length is unknown when sent


def to_pcm16(audio: np.ndarray) -> bytes:
    """float samples in [-1, 1] -> 16-bit little-endian PCM bytes (clipped, rounded)."""
    a = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    return (np.round(a * 32767.0)).astype("<i2").tobytes()


def from_pcm16(data: bytes) -> np.ndarray:
    """16-bit little-endian PCM bytes -> float32 samples in [-1, 1]."""
    n = len(data) // 2
    return np.frombuffer(data[: n * 2], dtype="<i2").astype(np.float32) / 32767.0


def wav_header(sample_rate: int, n_samples: int | None = None, channels: int = 1) -> bytes:
    """A 44-byte PCM16 WAV header; `n_samples=None` writes the streaming (unknown length) sizes."""
    block = 2 * channels
    if n_samples is None:
        data_size, riff_size = STREAMING_SIZE, STREAMING_SIZE
    else:
        data_size = n_samples * block
        riff_size = 36 + data_size
    return (
        b"RIFF" + struct.pack("<I", riff_size) + b"WAVE"
        + b"fmt " + struct.pack("<IHHIIHH", 16, 1, channels, sample_rate, sample_rate * block, block, 16)
        + b"data" + struct.pack("<I", data_size)
    )


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write mono float audio as a PCM16 WAV file (written to a temp name, then renamed)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(to_pcm16(audio))
    tmp.replace(path)
