"""The fake server's encoder: its synthetic PCM as mp3, Ogg Opus, ADTS AAC or FLAC, chunk by chunk (PyAV).

`ChunkEncoder(fmt, rate)` muxes into a non-seekable sink, so what `encode(pcm16)` returns is
exactly what a streaming server could send after that chunk: every packet the encoder released,
in its container (Ogg pages are cut every 20 ms, `page_duration`, so a page leaves with its
packet); `close()` flushes the encoder and the container. A non-seekable mp3 carries no
Xing/LAME frame (FFmpeg writes it only where it can seek back), as from a real streaming server.
The samples an encoder holds back (an mp3 or AAC frame, Opus' 20 ms) leave with a later chunk.
A test double for a remote TTS server, not the service's encoder.
"""

from __future__ import annotations

import io

import av
import numpy as np

# format -> (FFmpeg muxer, encoder, muxer options)
MUXERS = {"mp3": ("mp3", "libmp3lame", {}), "opus": ("ogg", "libopus", {"page_duration": "20000"}),
          "aac": ("adts", "aac", {}), "flac": ("flac", "flac", {})}
BITRATES = {"mp3": 64_000, "opus": 32_000, "aac": 64_000}


class _Sink(io.RawIOBase):
    """A write-only, non-seekable buffer whose bytes are taken as they come."""

    def __init__(self):
        self.buf = bytearray()

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def write(self, b) -> int:
        self.buf += b
        return len(b)

    def take(self) -> bytes:
        out, self.buf = bytes(self.buf), bytearray()
        return out


class ChunkEncoder:
    """Encode PCM16 chunks of one answer (module docstring)."""

    def __init__(self, fmt: str, rate: int):
        muxer, codec, options = MUXERS[fmt]
        self._av = av
        self._sink = _Sink()
        self._out = av.open(self._sink, "w", format=muxer, options=options)
        self._stream = self._out.add_stream(codec, rate=rate, layout="mono")
        if fmt in BITRATES:
            self._stream.bit_rate = BITRATES[fmt]
        self.rate = rate

    def encode(self, pcm16: bytes) -> bytes:
        x = np.frombuffer(pcm16, dtype="<i2").reshape(1, -1)
        frame = self._av.AudioFrame.from_ndarray(np.ascontiguousarray(x), format="s16", layout="mono")
        frame.sample_rate = self.rate
        for packet in self._stream.encode(frame):
            self._out.mux(packet)
        return self._sink.take()

    def close(self) -> bytes:
        for packet in self._stream.encode(None):
            self._out.mux(packet)
        self._out.close()
        return self._sink.take()
