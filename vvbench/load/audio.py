"""Incremental parsing of a streamed audio body, and detection of the first audible audio.

`AudioStream` is fed the body as it arrives, in pieces of any size (a WAV header or a sample may
be split across pieces), and keeps: samples received, PCM bytes, an MD5 of the PCM (the audio
only, never the header), and where the first audible window ends. The WAV header, the sample
formats and what "audible" means are `vvbench.core.audio`'s (`parse_wav_header`, `WavFormat`,
`first_audible`): fed one byte at a time or all at once, a stream gives the samples and the
audible index that `decode_wav` and `first_audible` give for the whole body.

A window is known to be audible when its last sample has arrived, so time to first audible
audio is the arrival time of the piece completing that window. After it is found, samples are
only counted and hashed, not decoded (cheap).

Formats: `wav` (RIFF header, possibly a streaming header with unknown sizes, then any sample
format the core reader takes; bytes after a sized data chunk are not audio), `pcm` (raw 16-bit
little-endian mono at a given rate), the compressed `mp3`, `opus`, `aac` and `flac`, decoded as
they arrive by `vvbench.core.formats.decode` (a piece may release no samples, or the samples of
several frames), and SSE (`speech.audio.delta` events carrying base64 audio of any format; an
`error` event ends the stream with its message). `close()` at the end of the body releases what
the decoder held back (the last mp3 or FLAC frame); its samples arrived with the last piece.

The MD5 is of the audio as PCM: for `wav`/`pcm` the sample bytes as sent, for a compressed
format the decoded signal written as 16-bit little-endian (`vvbench.core.audio.to_pcm16`: ×32768,
rounded, clipped), so two answers hash alike when they decode alike, whatever their packets.
A compressed stream's samples are at the decoded rate (Opus: 48 kHz), known from its first
decoded frame (FLAC: its STREAMINFO); `sample_rate` is 0 before. The decoder's facts (priming
and padding the body declares) are `facts`; `body_bytes` counts the encoded bytes fed, for the
encoded bitrate.
"""

from __future__ import annotations

import base64
import hashlib
import json

import numpy as np

from vvbench.core.audio import (
    SAMPLE_RATE,
    AudioFormatError,
    WavFormat,
    first_audible,
    parse_wav_header,
    to_pcm16,
    window_samples,
)
from vvbench.core.formats import FORMATS
from vvbench.core.formats.decode import COMPRESSED, Decoder, Facts, decoder

SOURCE = "response body"  # how a format error names what it could not read


class StreamErrorEvent(Exception):
    """The server reported an error inside the stream (an SSE `error` event)."""


class AudioStream:
    """Feed body pieces; read samples, md5, and the first audible sample index (module docstring)."""

    def __init__(self, fmt: str, sample_rate: int = SAMPLE_RATE):
        if fmt not in FORMATS:
            raise ValueError(f"unknown audio format {fmt!r}")
        self.fmt = fmt
        self._decoder: Decoder | None = decoder(fmt) if fmt in COMPRESSED else None
        self.body_bytes = 0
        self.format: WavFormat | None = WavFormat(sample_rate) if fmt == "pcm" else None
        self._head: bytearray | None = bytearray() if fmt == "wav" else None  # bytes until the header is parsed
        self.header_len = 0  # bytes of WAV header before the PCM
        self._left: int | None = None  # data bytes the header declared and not yet seen (None: to the end)
        self._odd = b""  # a trailing partial frame
        self._md5 = hashlib.md5()
        self.pcm_bytes = 0
        self.samples = 0
        self.audible_at: int | None = None  # sample index where the first audible window ends
        self._window = np.zeros(0)  # samples since the last whole window, while none was audible

    @property
    def md5(self) -> str:
        return self._md5.hexdigest()

    @property
    def sample_rate(self) -> int:
        if self._decoder is not None:
            return self._decoder.sample_rate
        return self.format.sample_rate if self.format is not None else 0

    @property
    def facts(self) -> Facts | None:
        """What a compressed body declared (priming, padding, rate); None for wav and pcm."""
        return self._decoder.facts if self._decoder is not None else None

    @property
    def bitrate_bps(self) -> float:
        """Encoded bits per second of decoded audio (container included); NaN before any audio."""
        return self.body_bytes * 8 / self.audio_s if self.audio_s > 0 else float("nan")

    def close(self) -> bool:
        """The body ended: take what the decoder held back; True when that completed the first audible window."""
        if self._decoder is None:
            return False
        return self._decoded(self._decoder.close())

    def _decoded(self, x: np.ndarray) -> bool:
        if not len(x):
            return False
        self._md5.update(to_pcm16(x))
        self.pcm_bytes += 2 * len(x)
        start = self.samples
        self.samples += len(x)
        if self.audible_at is not None:
            return False
        return self._detect(x.astype(np.float64), start)

    @property
    def audio_s(self) -> float:
        return self.samples / self.sample_rate if self.sample_rate else 0.0

    def feed(self, data: bytes) -> bool:
        """Add a piece; True when it completed the first audible window."""
        self.body_bytes += len(data)
        if self._decoder is not None:
            return self._decoded(self._decoder.feed(data))
        if self._head is not None:
            self._head += data
            head = parse_wav_header(bytes(self._head), SOURCE, final=False)
            if head is None:
                return False
            self.format, self.header_len, self._left = head.format, head.data_offset, head.data_bytes
            data = bytes(self._head[head.data_offset:])
            self._head = None
        if self._left is not None:
            data = data[: self._left]
            self._left -= len(data)
        frame = self.format.frame_bytes
        data = self._odd + data
        cut = len(data) - len(data) % frame
        data, self._odd = data[:cut], data[cut:]
        if not data:
            return False
        self._md5.update(data)
        self.pcm_bytes += len(data)
        start = self.samples
        self.samples += len(data) // frame
        if self.audible_at is not None:
            return False
        return self._detect(data, start)

    def _detect(self, data: bytes | np.ndarray, start: int) -> bool:
        """Look for the first audible window in the held samples plus `data` (which begins at sample `start`)."""
        held = np.concatenate([self._window, self.format.decode(data) if isinstance(data, bytes) else data])
        begin = start - len(self._window)  # a window boundary: the held samples are less than one window
        end = first_audible(held, self.sample_rate)
        if end is not None:
            self.audible_at, self._window = begin + end, np.zeros(0)
            return True
        n = window_samples(self.sample_rate)
        self._window = held[len(held) // n * n:]
        return False


class SSEDecoder:
    """`text/event-stream` of speech.audio.delta events -> audio bytes (error events raise)."""

    def __init__(self):
        self._buf = b""
        self.done = False

    def feed(self, data: bytes) -> bytes:
        """Decoded audio bytes carried by the complete events in `data` (plus earlier leftovers)."""
        self._buf += data
        out = []
        while True:
            end = self._buf.find(b"\n\n")
            if end < 0:
                return b"".join(out)
            event, self._buf = self._buf[:end], self._buf[end + 2:]
            payload = b"".join(line[5:].strip() for line in event.split(b"\n") if line.startswith(b"data:"))
            if not payload:
                continue
            try:
                msg = json.loads(payload)
            except ValueError:
                raise AudioFormatError(f"{SOURCE}: SSE event is not JSON") from None
            kind = msg.get("type")
            if kind == "speech.audio.delta":
                out.append(base64.b64decode(msg.get("audio", "")))
            elif kind == "speech.audio.done":
                self.done = True
            elif kind == "error":
                err = msg.get("error") or {}
                raise StreamErrorEvent(str(err.get("message") or err))
