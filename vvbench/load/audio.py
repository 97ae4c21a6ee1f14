"""Incremental parsing of a streamed audio body, and detection of the first audible audio.

`AudioStream` is fed the body as it arrives, in pieces of any size (a WAV header or a 16-bit
sample may be split across pieces), and keeps: samples received, PCM bytes, an MD5 of the PCM
(the audio only, never the header), and where the first audible 20 ms window ends.

Audible: the first non-overlapping 20 ms window (aligned at sample 0) whose RMS is above
-50 dBFS (RMS relative to full scale 1.0). The window is known to be audible when its last
sample has arrived, so time to first audible audio is the arrival time of the piece completing
that window. After it is found, samples are only counted and hashed, not decoded (cheap).

Formats: `wav` (RIFF header, possibly a streaming header with unknown sizes, then PCM16 mono or
the first channel of several), `pcm` (raw 16-bit little-endian mono at a given rate), and SSE
(`speech.audio.delta` events carrying base64 audio of either format; an `error` event ends the
stream with its message).
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct

import numpy as np

WINDOW_S = 0.020
AUDIBLE_DBFS = -50.0
_AUDIBLE_RMS = 10 ** (AUDIBLE_DBFS / 20)


class AudioFormatError(ValueError):
    """The body is not the audio format it claims to be."""


class StreamErrorEvent(Exception):
    """The server reported an error inside the stream (an SSE `error` event)."""


class AudioStream:
    """Feed body pieces; read samples, md5, and the first audible sample index (module docstring)."""

    def __init__(self, fmt: str, sample_rate: int = 24_000):
        if fmt not in ("wav", "pcm"):
            raise ValueError(f"unknown audio format {fmt!r}")
        self.fmt = fmt
        self.sample_rate = sample_rate if fmt == "pcm" else 0
        self.channels = 1
        self._head = b"" if fmt == "wav" else None  # bytes before the data chunk, until parsed
        self.header_len = 0  # bytes of WAV header before the PCM
        self._odd = b""  # a trailing partial frame
        self._md5 = hashlib.md5()
        self.pcm_bytes = 0
        self.samples = 0
        self.audible_at: int | None = None  # sample index where the first audible window ends
        self._window: list[np.ndarray] = []
        self._window_fill = 0

    @property
    def md5(self) -> str:
        return self._md5.hexdigest()

    @property
    def audio_s(self) -> float:
        return self.samples / self.sample_rate if self.sample_rate else 0.0

    def feed(self, data: bytes) -> bool:
        """Add a piece; True when it completed the first audible window."""
        if self._head is not None:
            self._head += data
            data = self._parse_header()
            if self._head is not None:
                return False
        frame = 2 * self.channels
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

    def _detect(self, data: bytes, start: int) -> bool:
        x = np.frombuffer(data, dtype="<i2")
        if self.channels > 1:
            x = x[:: self.channels]
        win = max(1, round(WINDOW_S * self.sample_rate))
        pos = 0
        while pos < len(x):
            take = min(win - self._window_fill, len(x) - pos)
            self._window.append(x[pos:pos + take])
            self._window_fill += take
            pos += take
            if self._window_fill == win:
                w = np.concatenate(self._window).astype(np.float64) / 32768.0
                self._window, self._window_fill = [], 0
                if np.sqrt(np.mean(w * w)) > _AUDIBLE_RMS:
                    self.audible_at = start + pos
                    return True
        return False

    def _parse_header(self) -> bytes:
        """Consume the RIFF header from `_head`; return PCM bytes after it (or b"" while incomplete)."""
        h = self._head
        if len(h) < 12:
            return b""
        if h[:4] != b"RIFF" or h[8:12] != b"WAVE":
            raise AudioFormatError("body is not a RIFF/WAVE stream")
        pos = 12
        while len(h) >= pos + 8:
            cid, size = h[pos:pos + 4], struct.unpack("<I", h[pos + 4:pos + 8])[0]
            if cid == b"data":
                if not self.sample_rate:
                    raise AudioFormatError("WAV data chunk before its fmt chunk")
                self._head = None
                self.header_len = pos + 8
                return h[pos + 8:]
            if len(h) < pos + 8 + size:
                return b""
            if cid == b"fmt ":
                fmt, channels, rate, _, _, bits = struct.unpack("<HHIIHH", h[pos + 8:pos + 24])
                if fmt != 1 or bits != 16:
                    raise AudioFormatError(f"only 16-bit PCM WAV is supported (format {fmt}, {bits} bits)")
                self.sample_rate, self.channels = rate, max(1, channels)
            pos += 8 + size + (size & 1)
        return b""


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
                raise AudioFormatError("SSE event is not JSON") from None
            kind = msg.get("type")
            if kind == "speech.audio.delta":
                out.append(base64.b64decode(msg.get("audio", "")))
            elif kind == "speech.audio.done":
                self.done = True
            elif kind == "error":
                err = msg.get("error") or {}
                raise StreamErrorEvent(str(err.get("message") or err))
