"""Streaming encoders for the `response_format`s: float mono samples in, the format's bytes out, chunk by chunk.

`open_encoder(fmt, rate)` returns an encoder with `encode(samples) -> bytes` (call it per
synthesised chunk; what it returns can be sent at once), `finish() -> bytes` (the encoder's
held-back frames and the container's end) and `seconds` (wall time spent encoding, for
Server-Timing). Choices:

- **PyAV** (`av`, FFmpeg's libraries in one wheel): libmp3lame, FFmpeg's native AAC and FLAC
  encoders, libopus, and libswresample for rate and sample-format conversion, all maintained
  and already what most TTS servers ship; pydub or ffmpeg subprocesses would add a process per
  stream and pipe latency, and per-codec bindings (lameenc, pyogg, pyflac) one dependency each.
- **mp3**: raw MPEG audio frames (FFmpeg's mp3 muxer with no ID3v2 tag and no Xing frame, which a
  non-seekable stream could not fill in). **aac**: ADTS (the `adts` muxer), AAC-LC.
  **flac**: `fLaC` and STREAMINFO, then frames (the `flac` muxer; the total-samples field stays 0,
  "unknown", as for any streamed FLAC). **opus**: libopus packets in Ogg pages written by
  `vvbench.core.formats.ogg`, one page per chunk (why not FFmpeg's Ogg muxer: see there); Opus
  runs at 48 kHz, so the input is resampled by libswresample. **wav**: a 44-byte header with the
  streaming (unknown) sizes, then PCM16; **pcm**: PCM16, no header.
- Every muxer writes through `flush_packets`, so the bytes of each packet reach `encode()`'s
  return value instead of waiting in FFmpeg's 32 KiB I/O buffer.
- Bit rates: mp3 64 kbit/s, aac 64 kbit/s, opus 32 kbit/s (mono speech; OpenAI does not state its own).
- Codec delay (`delay_samples`, at the output rate): what the decoder's output starts with before the
  input's first sample: libmp3lame's encoder delay plus the mp3 decoder's 529 samples (no LAME
  tag to tell the decoder), AAC's 1024 priming samples; 0 for flac/wav/pcm and for Ogg Opus, whose
  pre-skip the decoder drops. The end of mp3 and aac is padded to a whole frame (1152 / 1024 samples).
"""

from __future__ import annotations

import time

import av
import numpy as np

from vvbench.core.audio import to_pcm16, wav_header
from vvbench.core.formats import FORMATS
from vvbench.core.formats.ogg import OggOpusWriter

OPUS_RATE = 48_000
BIT_RATES = {"mp3": 64_000, "aac": 64_000, "opus": 32_000}
_MUXERS = {  # response_format -> (FFmpeg muxer, encoder, muxer options)
    "mp3": ("mp3", "libmp3lame", {"id3v2_version": "0", "write_xing": "0"}),
    "aac": ("adts", "aac", {}),
    "flac": ("flac", "flac", {}),
}
# Samples the decoded stream starts with before the input's first one (no gapless tag says so):
# libmp3lame's encoder delay (576) plus the mp3 decoder's (529); AAC-LC's 1024 priming samples.
CODEC_DELAYS = {"mp3": 576 + 529, "aac": 1024}


def _frame(samples: np.ndarray, rate: int) -> av.AudioFrame:
    x = np.ascontiguousarray(samples, dtype=np.float32).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(x, format="flt", layout="mono")
    frame.sample_rate = rate
    return frame


class _Timed:
    seconds: float = 0.0
    delay_samples: int = 0

    def _timed(self, fn, *args) -> bytes:
        t0 = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.seconds += time.perf_counter() - t0


class PcmEncoder(_Timed):
    """pcm (16-bit little-endian) and wav (the same after a streaming header)."""

    def __init__(self, fmt: str, rate: int):
        self.fmt, self.rate = fmt, rate
        self._head = wav_header(rate, None) if fmt == "wav" else b""

    def encode(self, samples: np.ndarray) -> bytes:
        head, self._head = self._head, b""
        return head + self._timed(to_pcm16, samples)

    def finish(self) -> bytes:
        head, self._head = self._head, b""
        return head


class _Sink:
    """The file object a muxer writes to: collects what it wrote since the last `take()`."""

    def __init__(self):
        self._parts: list[bytes] = []

    def write(self, data) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        out, self._parts = b"".join(self._parts), []
        return out


class MuxedEncoder(_Timed):
    """mp3, aac and flac through PyAV's encoder and FFmpeg's muxer for the format."""

    def __init__(self, fmt: str, rate: int):
        muxer, codec, options = _MUXERS[fmt]
        self.fmt, self.rate = fmt, rate
        self._sink = _Sink()
        self._out = av.open(self._sink, "w", format=muxer, options={"flush_packets": "1", **options})
        self._stream = self._out.add_stream(codec, rate=rate, layout="mono")
        if fmt in BIT_RATES:
            self._stream.codec_context.bit_rate = BIT_RATES[fmt]
        self.delay_samples = CODEC_DELAYS.get(fmt, 0)
        self._closed = False

    def _encode(self, frame: av.AudioFrame | None) -> bytes:
        for packet in self._stream.encode(frame):
            self._out.mux(packet)
        return self._sink.take()

    def encode(self, samples: np.ndarray) -> bytes:
        if len(samples) == 0:
            return b""
        return self._timed(self._encode, _frame(samples, self.rate))

    def finish(self) -> bytes:
        def close() -> bytes:
            tail = self._encode(None)
            self._out.close()
            return tail + self._sink.take()

        if self._closed:
            return b""
        self._closed = True
        return self._timed(close)


class OpusEncoder(_Timed):
    """Ogg Opus: libopus at 48 kHz (input resampled by libswresample), one Ogg page per `encode()`."""

    def __init__(self, rate: int):
        self.fmt, self.rate = "opus", rate
        ctx = av.CodecContext.create("libopus", "w")
        ctx.sample_rate, ctx.layout, ctx.format, ctx.bit_rate = OPUS_RATE, "mono", "s16", BIT_RATES["opus"]
        ctx.open()
        self._ctx = ctx
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=OPUS_RATE, frame_size=ctx.frame_size)
        self._ogg = OggOpusWriter(bytes(ctx.extradata))
        self._head = self._ogg.headers
        self._in_samples = 0
        self._done = False

    def _feed(self, frame: av.AudioFrame | None) -> None:
        for out in self._resampler.resample(frame):
            for packet in self._ctx.encode(out):
                self._ogg.add(bytes(packet), self._ctx.frame_size)

    def _encode(self, samples: np.ndarray) -> bytes:
        self._in_samples += len(samples)
        self._feed(_frame(samples, self.rate))
        head, self._head = self._head, b""
        return head + self._ogg.page()

    def encode(self, samples: np.ndarray) -> bytes:
        if len(samples) == 0:
            return b""
        return self._timed(self._encode, samples)

    def finish(self) -> bytes:
        def close() -> bytes:
            # The resampler's tail is padded to a whole frame: pad it with silence, never drop it.
            for out in self._resampler.resample(None):
                for packet in self._ctx.encode(out):
                    self._ogg.add(bytes(packet), self._ctx.frame_size)
            for packet in self._ctx.encode(None):
                self._ogg.add(bytes(packet), self._ctx.frame_size)
            end = self._ogg.pre_skip + round(self._in_samples * OPUS_RATE / self.rate)
            head, self._head = self._head, b""
            return head + self._ogg.page(last=True, end_granule=min(end, self._ogg.granule))

        if self._done:
            return b""
        self._done = True
        return self._timed(close)


def open_encoder(fmt: str, rate: int):
    """A streaming encoder for `fmt` (one of `FORMATS`) taking mono float samples at `rate` Hz."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    if fmt in ("wav", "pcm"):
        return PcmEncoder(fmt, rate)
    if fmt == "opus":
        return OpusEncoder(rate)
    return MuxedEncoder(fmt, rate)


def output_rate(fmt: str, rate: int) -> int:
    """The rate a decoder of `fmt` produces for input at `rate` (Ogg Opus always decodes at 48 kHz)."""
    return OPUS_RATE if fmt == "opus" else rate
