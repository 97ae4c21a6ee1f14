"""Decoding the compressed `response_format`s with PyAV: incrementally (the load client) and whole files.

`decoder(fmt)` gives an incremental decoder for `mp3`, `opus`, `aac` or `flac`: `feed(piece)`
takes body bytes in pieces of any size and returns the samples that piece made decodable
(float32, first channel, full scale ±1), `close()` returns what the end of the body releases.
Fed one byte at a time or all at once, a stream gives the same samples (within the codec's own
determinism: these decoders are bit-exact), and the same samples as `decode_file`, which demuxes
the whole body with `av.open` (the path a player takes).

- **mp3, aac (ADTS)**: raw frame streams, split into frames by libavcodec's parser
  (`CodecContext.parse`) and decoded frame by frame. A frame becomes decodable when the parser
  releases it; for mp3 that is when the next frame's first bytes arrive (or the end of the body).
  An mp3 that starts with a Xing/Info frame carrying a LAME tag declares its encoder delay and
  padding: that frame is not audio, and — as FFmpeg's mp3 demuxer does — the decoder drops
  delay + 529 samples (the decoder's own delay) at the start and padding − 529 at the end (held
  back until the body ends). ADTS declares no priming (AAC encoders prime 1024 samples, which
  stay in the decoded signal and are reported as unknown).
- **opus**: an Ogg page reader of our own (small and deterministic: a packet is decodable when
  the page that completes it has arrived) feeding libavcodec's Opus decoder, which decodes at
  48 kHz. `OpusHead` declares the pre-skip, which the decoder drops at the start; the last page's
  granule position trims the end (RFC 7845: granule − pre-skip samples in all). Page CRCs are not
  checked: the transport already is. FFmpeg's Ogg muxer writes a final granule one pre-skip past
  its input, and FFmpeg's demuxer trims by its own count, so `decode_file` can end up to one
  pre-skip (312 samples, 6.5 ms) shorter than the RFC reading; the samples they share are equal.
- **flac**: the `fLaC` marker and metadata blocks are read here (STREAMINFO gives the rate and is
  the decoder's extradata); a frame ends where the next valid frame header begins (FLAC frames
  carry no length), so a frame is decodable when the next one's header has arrived, the last at
  the end. libavcodec's FLAC parser is not used: fed small pieces, it cut frames wrongly.

`Facts` are what the body declares: the decoded rate, the codec's priming and padding in decoded
samples (None where the container does not say), and the codec name. `read_audio_file` reads
any file `vvbench check-audio` is given: WAV and raw PCM through `vvbench.core.audio`, every
other format through `decode_file`. Errors are `AudioFormatError`s naming their source.

PyAV is imported with this module, on the importing thread, never lazily on a request thread:
in a load worker (gevent-patched locks), a first `import av` raced by many request threads at
once deadlocked two of 100 concurrent opus streams, which then held the worker past its end.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from vvbench.core.audio import AudioFormatError, decode_wav, from_pcm16, read_audio_bytes

COMPRESSED = ("mp3", "opus", "aac", "flac")
MP3_DECODER_DELAY = 529  # samples libavcodec's mp3 decoder adds (FFmpeg's mp3 demuxer trims them with a LAME delay)
_EMPTY = np.zeros(0, dtype=np.float32)


@dataclass
class Facts:
    """What a compressed body declares about itself (None: not declared)."""

    codec: str
    sample_rate: int = 0
    priming_samples: int | None = None
    padding_samples: int | None = None


def _channel0(frame) -> np.ndarray:
    """A decoded AudioFrame -> float32 samples of its first channel (full scale ±1)."""
    x = frame.to_ndarray()
    if frame.format.is_planar:
        x = x[0]
    else:
        x = x.reshape(-1)[:: len(frame.layout.channels)]
    if x.dtype == np.int16:
        return x.astype(np.float32) / 32768.0
    if x.dtype == np.int32:
        return (x.astype(np.float64) / 2147483648.0).astype(np.float32)
    return x.astype(np.float32, copy=False)


class _Trim:
    """Drops `start` samples at the start and withholds the last `end` until the body ends (then drops them)."""

    def __init__(self):
        self.start = 0
        self.end = 0
        self._held = _EMPTY

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.start:
            cut = min(self.start, len(x))
            x, self.start = x[cut:], self.start - cut
        if not self.end:
            return x
        x = np.concatenate([self._held, x])
        keep = max(0, len(x) - self.end)
        self._held = x[keep:]
        return x[:keep]


class Decoder:
    """An incremental decoder (module docstring): `feed(piece)` and `close()` return float32 samples."""

    fmt = ""

    def __init__(self):
        self.facts = Facts(codec=self.fmt)
        self._trim = _Trim()
        self._ctx = None

    @property
    def sample_rate(self) -> int:
        return self.facts.sample_rate

    def feed(self, data: bytes) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> np.ndarray:
        raise NotImplementedError

    def _decode(self, packet) -> np.ndarray:
        try:
            frames = self._ctx.decode(packet)
        except av.error.FFmpegError as exc:
            raise AudioFormatError(f"response body: not valid {self.fmt} ({exc})") from None
        out = [_channel0(f) for f in frames]
        if frames and not self.facts.sample_rate:
            self.facts.sample_rate = frames[0].sample_rate
        return self._trim(np.concatenate(out)) if out else _EMPTY


class _Parsed(Decoder):
    """A raw frame stream split by libavcodec's parser (mp3, ADTS aac)."""

    codec = ""

    def __init__(self):
        super().__init__()
        self._ctx = av.CodecContext.create(self.codec, "r")
        self._first = True

    def _packets(self, data: bytes | None) -> np.ndarray:
        try:
            packets = self._ctx.parse(data)
        except av.error.FFmpegError as exc:
            raise AudioFormatError(f"response body: not valid {self.fmt} ({exc})") from None
        out = []
        for p in packets:
            if self._first:
                self._first = False
                if self._header(bytes(p)):
                    continue
            out.append(self._decode(p))
        return np.concatenate(out) if out else _EMPTY

    def _header(self, frame: bytes) -> bool:
        """Read what the first frame declares; True when it is a header frame, not audio."""
        return False

    def feed(self, data: bytes) -> np.ndarray:
        return self._packets(data) if data else _EMPTY

    def close(self) -> np.ndarray:
        out = [self._packets(None), self._decode(None)]
        return np.concatenate(out)


def lame_delays(frame: bytes) -> tuple[int, int] | None:
    """(encoder delay, padding) in samples from an mp3 Xing/Info frame's LAME tag; None when it has none."""
    for tag in (b"Xing", b"Info"):
        at = frame.find(tag, 4, 64)
        if at >= 0:
            break
    else:
        return None
    (flags,) = struct.unpack(">I", frame[at + 4:at + 8])
    lame = at + 8 + 4 * bool(flags & 1) + 4 * bool(flags & 2) + 100 * bool(flags & 4) + 4 * bool(flags & 8)
    raw = frame[lame + 21:lame + 24]
    if len(raw) < 3 or frame[lame:lame + 4] not in (b"LAME", b"Lavf", b"Lavc"):
        return None
    value = int.from_bytes(raw, "big")
    return value >> 12, value & 0xFFF


def id3_size(head: bytes) -> int | None:
    """Bytes of a leading ID3v2 tag (0: none; None: too few bytes to tell)."""
    if len(head) < 10:
        return None if b"ID3".startswith(head[:3]) else 0
    if head[:3] != b"ID3":
        return 0
    footer = 10 if head[5] & 0x10 else 0
    return 10 + footer + sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(head[6:10]))


class Mp3Decoder(_Parsed):
    fmt, codec = "mp3", "mp3float"

    def __init__(self):
        super().__init__()
        self._head: bytearray | None = bytearray()  # bytes until a leading ID3v2 tag (metadata) is skipped

    def feed(self, data: bytes) -> np.ndarray:
        if self._head is not None:
            self._head += data
            size = id3_size(bytes(self._head[:10]))
            if size is None or len(self._head) < size:
                return _EMPTY
            data, self._head = bytes(self._head[size:]), None
        return super().feed(data)

    def close(self) -> np.ndarray:
        if self._head:
            data, self._head = bytes(self._head), None
            super().feed(data)
        return super().close()

    def _header(self, frame: bytes) -> bool:
        delays = lame_delays(frame)
        if delays is None:
            return frame.find(b"Xing", 4, 64) >= 0 or frame.find(b"Info", 4, 64) >= 0
        delay, padding = delays
        self.facts.priming_samples, self.facts.padding_samples = delay, padding
        self._trim.start = delay + MP3_DECODER_DELAY
        self._trim.end = max(0, padding - MP3_DECODER_DELAY)
        return True


class AacDecoder(_Parsed):
    fmt, codec = "aac", "aac"


def _opus_head(packet: bytes) -> tuple[int, int]:
    """(pre-skip, input rate) of an OpusHead packet (RFC 7845 section 5.1)."""
    if len(packet) < 19 or packet[:8] != b"OpusHead":
        raise AudioFormatError("response body: an Ogg stream that does not start with OpusHead (not Ogg Opus)")
    pre_skip, rate = struct.unpack("<HI", packet[10:16])
    return pre_skip, rate


class OggPages:
    """Ogg pages -> (packet, granule of the page that completed it, end of stream) as the bytes arrive."""

    def __init__(self):
        self._buf = bytearray()
        self._partial = bytearray()

    def feed(self, data: bytes) -> list[tuple[bytes, int, bool]]:
        self._buf += data
        out = []
        while len(self._buf) >= 27:
            if self._buf[:4] != b"OggS":
                raise AudioFormatError("response body: not an Ogg stream (no OggS page)")
            nsegs = self._buf[26]
            if len(self._buf) < 27 + nsegs:
                break
            lacing = self._buf[27:27 + nsegs]
            size = 27 + nsegs + sum(lacing)
            if len(self._buf) < size:
                break
            flags = self._buf[5]
            (granule,) = struct.unpack("<q", self._buf[6:14])
            body, pos = memoryview(self._buf)[27 + nsegs:size], 0
            if not flags & 1:  # not a continued packet: drop a fragment a lost page left behind
                self._partial = bytearray()
            done = []
            for seg in lacing:
                self._partial += body[pos:pos + seg]
                pos += seg
                if seg < 255:
                    done.append(bytes(self._partial))
                    self._partial = bytearray()
            del body
            del self._buf[:size]
            out.extend((p, granule, bool(flags & 4) and i == len(done) - 1) for i, p in enumerate(done))
        return out


class OpusDecoder(Decoder):
    fmt = "opus"

    def __init__(self):
        super().__init__()
        self._pages = OggPages()
        self._packets = 0
        self._decoded = 0  # samples emitted after the pre-skip

    def feed(self, data: bytes) -> np.ndarray:
        out = []
        for packet, granule, eos in self._pages.feed(data):
            self._packets += 1
            if self._packets == 1:
                pre_skip, _ = _opus_head(packet)
                self._ctx = av.CodecContext.create("opus", "r")
                self._ctx.extradata = packet
                self.facts.priming_samples = pre_skip  # libavcodec's decoder drops it (from the extradata)
                continue
            if self._packets == 2:  # OpusTags
                continue
            x = self._decode(av.Packet(packet))
            if eos and granule >= 0:
                end = max(0, granule - (self.facts.priming_samples or 0))
                x = x[: max(0, end - self._decoded)]
            self._decoded += len(x)
            out.append(x)
        return np.concatenate(out) if out else _EMPTY

    def close(self) -> np.ndarray:
        if self._packets and self._packets < 2:
            raise AudioFormatError("response body: an Ogg Opus stream with no audio packets")
        return _EMPTY


def _crc8_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = ((c << 1) ^ 0x07) & 0xFF if c & 0x80 else (c << 1) & 0xFF
        table.append(c)
    return table


_CRC8 = _crc8_table()


def flac_header_len(buf, i: int) -> int | None:
    """Length of a valid FLAC frame header at `buf[i]` (0: none there; None: too few bytes to tell)."""
    if len(buf) < i + 4:
        return None
    b1, b2, b3 = buf[i + 1], buf[i + 2], buf[i + 3]
    if buf[i] != 0xFF or b1 & 0xFE != 0xF8 or b2 >> 4 == 0 or b2 & 0xF == 15 or b3 >> 4 > 10 or b3 & 1 or (b3 >> 1) & 7 == 3:
        return 0
    if len(buf) < i + 5:
        return None
    lead = 0
    while lead < 8 and buf[i + 4] & (0x80 >> lead):
        lead += 1
    if lead == 1 or lead > 7:
        return 0
    n = 4 + max(1, lead)
    n += {6: 1, 7: 2}.get(b2 >> 4, 0) + {12: 1, 13: 2, 14: 2}.get(b2 & 0xF, 0)
    if len(buf) < i + n + 1:
        return None
    crc = 0
    for b in buf[i:i + n]:
        crc = _CRC8[crc ^ b]
    return n + 1 if crc == buf[i + n] else 0


class FlacDecoder(Decoder):
    """FLAC: metadata read here, frames split at the next valid frame header (module docstring).

    A frame ends where the next header starts: a sync code with the first frame's blocking
    strategy and rate code, a well-formed coded number and a matching CRC-8 (libavcodec's own
    parser decides the same way, but cut differently by piece size here).
    """

    fmt = "flac"

    def __init__(self):
        super().__init__()
        self._buf = bytearray()
        self._meta = True
        self._scan = 2  # where the search for the next frame header resumes
        self._sync = b""  # the first frame's bytes 1-2 with the per-frame bits masked

    def feed(self, data: bytes) -> np.ndarray:
        self._buf += data
        if self._meta and not self._metadata():
            return _EMPTY
        out = []
        while True:
            end = self._next_frame()
            if end is None:
                break
            out.append(self._frame(end))
        return np.concatenate(out) if out else _EMPTY

    def close(self) -> np.ndarray:
        if self._meta:
            if not self._buf:  # an empty body: no audio (the client says so), not a broken one
                return _EMPTY
            raise AudioFormatError("response body: a FLAC stream that ends inside its metadata")
        out = [self._frame(len(self._buf))] if self._buf else []
        out.append(self._decode(None))
        return np.concatenate(out)

    def _frame(self, end: int) -> np.ndarray:
        packet = av.Packet(bytes(self._buf[:end]))
        del self._buf[:end]
        self._scan = 2
        return self._decode(packet)

    def _next_frame(self) -> int | None:
        """Where the frame at the buffer's start ends, when the next header has arrived."""
        buf = self._buf
        if len(buf) < 4:
            return None
        if not self._sync:
            if flac_header_len(buf, 0) == 0:
                raise AudioFormatError("response body: FLAC audio does not start with a frame header")
            self._sync = bytes([buf[1], buf[2] & 0x0F])
        i = self._scan
        while True:
            i = buf.find(b"\xff", i)
            if i < 0:
                self._scan = max(2, len(buf) - 1)
                return None
            if len(buf) < i + 3:
                self._scan = i
                return None
            if buf[i + 1] == self._sync[0] and buf[i + 2] & 0x0F == self._sync[1]:
                n = flac_header_len(buf, i)
                if n is None:
                    self._scan = i
                    return None
                if n:
                    return i
            i += 1

    def _metadata(self) -> bool:
        """Read the fLaC marker and metadata blocks once they have all arrived; True when they have."""
        head = self._buf
        if len(head) >= 4 and head[:4] != b"fLaC":
            raise AudioFormatError("response body: not a FLAC stream (no fLaC marker)")
        pos, info = 4, None
        while True:
            if len(head) < pos + 4:
                return False
            kind, size = head[pos] & 0x7F, int.from_bytes(head[pos + 1:pos + 4], "big")
            if len(head) < pos + 4 + size:
                return False
            if kind == 0:
                info = bytes(head[pos + 4:pos + 4 + size])
            last = head[pos] & 0x80
            pos += 4 + size
            if last:
                break
        if info is None or len(info) < 18:
            raise AudioFormatError("response body: a FLAC stream without STREAMINFO")
        self._ctx = av.CodecContext.create("flac", "r")
        self._ctx.extradata = info
        self.facts.sample_rate = int.from_bytes(info[10:13], "big") >> 4
        del self._buf[:pos]
        self._meta = False
        return True


_DECODERS = {"mp3": Mp3Decoder, "opus": OpusDecoder, "aac": AacDecoder, "flac": FlacDecoder}


def decoder(fmt: str) -> Decoder:
    """A fresh incremental decoder for a compressed format (ValueError for another name)."""
    if fmt not in _DECODERS:
        raise ValueError(f"no incremental decoder for {fmt!r} (compressed formats: {', '.join(COMPRESSED)})")
    return _DECODERS[fmt]()


def sniff(data: bytes) -> str | None:
    """The compressed format a body's first bytes announce (None: none of them)."""
    if data[:4] == b"OggS":
        return "opus"
    if data[:4] == b"fLaC":
        return "flac"
    if data[:3] == b"ID3":
        return "mp3"
    if len(data) >= 2 and data[0] == 0xFF and data[1] & 0xF6 == 0xF0:
        return "aac"  # ADTS: sync 0xFFF, layer 0
    if len(data) >= 2 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0 and data[1] & 0x06:
        return "mp3"  # MPEG audio frame sync with a layer
    return None


def decode_file(source: str | Path | bytes, name: str | None = None) -> tuple[np.ndarray, int, Facts]:
    """Decode a whole compressed file with PyAV's demuxer: (float32 samples of channel 0, rate, facts)."""
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    name = name or ("audio bytes" if isinstance(source, bytes) else str(source))
    fmt = sniff(data)
    facts = _declared(data, fmt)
    try:
        with av.open(io.BytesIO(data), "r") as container:
            if not container.streams.audio:
                raise AudioFormatError(f"{name}: no audio stream")
            stream = container.streams.audio[0]
            parts = [_channel0(f) for f in container.decode(stream)]
            rate = stream.codec_context.sample_rate or stream.rate
            facts.codec = stream.codec_context.name
    except av.error.FFmpegError as exc:
        raise AudioFormatError(f"{name}: cannot decode ({' '.join(str(exc).split())[:160]})") from None
    facts.sample_rate = int(rate)
    return (np.concatenate(parts) if parts else _EMPTY), int(rate), facts


def _declared(data: bytes, fmt: str | None) -> Facts:
    """Priming and padding a whole body declares, read the way the incremental decoders read them."""
    facts = Facts(codec=fmt or "")
    if fmt == "opus":
        packets = OggPages().feed(data[:4096])
        if packets:
            facts.priming_samples = _opus_head(packets[0][0])[0]
    elif fmt == "mp3":
        start = id3_size(data[:10]) or 0
        delays = lame_delays(data[start:start + 2048])
        if delays is not None:
            facts.priming_samples, facts.padding_samples = delays
    return facts


def read_audio_file(path: str | Path, rate: int | None = None) -> tuple[np.ndarray, int, str]:
    """Any audio file `check-audio` takes -> (float64 samples, rate, format name); InputError naming the file.

    WAV by its RIFF header, mp3/opus/aac/flac by their first bytes (decoded whole with PyAV),
    and otherwise raw 16-bit little-endian PCM when `rate` is given. With `rate`, a file that
    starts with only an mp3/ADTS frame sync is read compressed when its suffix names the format
    (`.mp3`, `.aac`), else as PCM (PCM bytes can match a frame sync by chance).
    """
    name = str(path)
    raw = read_audio_bytes(path)
    if raw[:4] == b"RIFF":
        samples, sr = decode_wav(raw, name)
        return samples, sr, "wav"
    fmt = sniff(raw)
    strong = raw[:4] in (b"OggS", b"fLaC") or raw[:3] == b"ID3"  # a frame sync alone may be PCM that happens to match
    if fmt is not None and (rate is None or strong or Path(path).suffix.lower().lstrip(".") == fmt):
        samples, sr, _ = decode_file(raw, name)
        return samples.astype(np.float64), sr, fmt
    if rate is None:
        raise AudioFormatError(f"{name}: not WAV, mp3, Ogg Opus, AAC (ADTS) or FLAC; give its sample rate "
                               "(--rate N) to read it as raw 16-bit little-endian PCM")
    return from_pcm16(raw), int(rate), "pcm"
