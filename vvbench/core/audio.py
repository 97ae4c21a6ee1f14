"""WAV and raw PCM in and out, and what "audible" means: one definition of each for the project.

- **Sample rate**: `SAMPLE_RATE` (24 kHz) is what the runtime produces, and what OpenAI's `pcm`
  format means; a default rate anywhere in vvbench is this constant.
- **Scale**: integer full scale is 2**(bits - 1), 32768 for 16-bit, in both directions. Reading
  divides by it; writing multiplies by it, rounds to nearest and clips to the int16 range. A
  power of two divides exactly in any float width, so int16 v reads as exactly v / 32768 and
  writes back to v, every int16 value has its float in [-1, 1), and the audibility line means
  the same on every width. The cost: +1.0 clips to 32767, one step short of full scale. 8-bit
  WAV is unsigned around 128. Float WAV values are kept as they are, so a float file that
  passes ±1 shows up as clipped.
- **Writing**: 16-bit little-endian PCM, the service's format. `wav_header(rate, None)` writes the
  streaming sizes (0xFFFFFFFF) for a body whose length is unknown when it starts; files go
  through `vvbench.core.files`, so a reader never sees half of one.
- **Reading**: one RIFF chunk walk, `parse_wav_header`, for the load generator (a body arriving in
  pieces of any size: with `final=False` it answers None until the header is complete) and for
  whole files (`decode_wav`, `read_audio`). It reads PCM 8/16/24/32-bit, float 32/64-bit and
  WAVE_FORMAT_EXTENSIBLE wrappers of those. A streaming header (data size 0xFFFFFFFF, or 0 as
  some servers write it before any audio) reads whatever data follows; a data chunk cut short
  reads what is there (the audio checks' duration check names a truncation).
  Rates above `MAX_SAMPLE_RATE` (384 kHz, the highest rate audio hardware uses) are refused,
  from a header or a `--rate`; `read_audio` reads regular files only (a device such as
  `/dev/zero` never ends). Several channels are read on the first one: a TTS service answers mono, and averaging
  channels would hide a clipped one. Anything unreadable is an `AudioFormatError` (an
  `InputError`, so the CLI prints one line) that names its source.
- **Audible**: the first non-overlapping 20 ms window, aligned at sample 0, whose RMS is above
  -50 dBFS (RMS against full scale 1.0): `AUDIBLE_WINDOW_S`, `AUDIBLE_DBFS`, `first_audible`, and
  `AUDIBLE` for messages and metric descriptions. The load generator's time to first audible
  audio and the monitor's silence check (as its defaults) both use it.

numpy only, no torch: the service, the monitor and the load generator all share it.
"""

from __future__ import annotations

import stat
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vvbench.core.errors import InputError
from vvbench.core.files import replacing

SAMPLE_RATE = 24_000  # Hz: the runtime's output, and OpenAI's `pcm` response format
MAX_SAMPLE_RATE = 384_000
STREAMING_SIZE = 0xFFFFFFFF  # RIFF/data size of a WAV whose length is unknown when it is sent
FORMAT_PCM, FORMAT_FLOAT, FORMAT_EXTENSIBLE = 1, 3, 0xFFFE
PCM16_FULL_SCALE = 32768.0

AUDIBLE_WINDOW_S = 0.020
AUDIBLE_DBFS = -50.0
AUDIBLE = f"{AUDIBLE_WINDOW_S * 1000:g} ms window above {AUDIBLE_DBFS:g} dBFS"

_SUPPORTED = {FORMAT_PCM: (8, 16, 24, 32), FORMAT_FLOAT: (32, 64)}


class AudioFormatError(InputError):
    """Bytes that are not the audio they claim to be; the message names where they came from."""


@dataclass(frozen=True)
class WavFormat:
    """How samples are stored: rate, channels, bits per sample and FORMAT_PCM or FORMAT_FLOAT."""

    sample_rate: int = SAMPLE_RATE
    channels: int = 1
    bits: int = 16
    tag: int = FORMAT_PCM

    @property
    def frame_bytes(self) -> int:
        return self.channels * self.bits // 8

    def decode(self, data: bytes) -> np.ndarray:
        """Sample bytes -> float64 samples of the first channel (integer full scale ±1, whole frames only)."""
        width = self.bits // 8
        data = data[: len(data) // self.frame_bytes * self.frame_bytes]
        if self.tag == FORMAT_FLOAT:
            x = np.frombuffer(data, dtype=f"<f{width}").astype(np.float64)
        elif self.bits == 8:
            x = (np.frombuffer(data, dtype=np.uint8).astype(np.float64) - 128.0) / 128.0
        elif self.bits == 24:
            raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
            value = raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)
            x = np.where(value >= 1 << 23, value - (1 << 24), value) / float(1 << 23)
        else:
            x = np.frombuffer(data, dtype=f"<i{width}").astype(np.float64) / float(1 << (self.bits - 1))
        return x[:: self.channels]


@dataclass(frozen=True)
class WavHeader:
    """A parsed RIFF/WAVE header: the format, where the samples start, and how many bytes they take."""

    format: WavFormat
    data_offset: int
    data_bytes: int | None  # None: a streaming size, read to the end


def to_pcm16(audio: np.ndarray) -> bytes:
    """Float samples (full scale ±1) -> 16-bit little-endian PCM: ×32768, rounded, clipped to the int16 range."""
    a = np.asarray(audio, dtype=np.float64) * PCM16_FULL_SCALE
    return np.clip(np.round(a), -32768, 32767).astype("<i2").tobytes()


def from_pcm16(data: bytes) -> np.ndarray:
    """16-bit little-endian mono PCM bytes -> float64 samples (÷32768; a trailing odd byte is dropped)."""
    return WavFormat().decode(data)


def wav_header(sample_rate: int, n_samples: int | None = None, channels: int = 1, *,
               bits: int = 16, tag: int = FORMAT_PCM) -> bytes:
    """A 44-byte WAV header; `n_samples=None` (frames, not bytes) writes the streaming (unknown length) sizes."""
    block = channels * bits // 8
    if n_samples is None:
        data_size, riff_size = STREAMING_SIZE, STREAMING_SIZE
    else:
        data_size = n_samples * block
        riff_size = 36 + data_size
    return (
        b"RIFF" + struct.pack("<I", riff_size) + b"WAVE"
        + b"fmt " + struct.pack("<IHHIIHH", 16, tag, channels, sample_rate, sample_rate * block, block, bits)
        + b"data" + struct.pack("<I", data_size)
    )


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write mono float audio as a 16-bit PCM WAV file, atomically (`vvbench.core.files.replacing`)."""
    pcm = to_pcm16(audio)
    with replacing(path) as tmp:
        tmp.write_bytes(wav_header(sample_rate, len(pcm) // 2) + pcm)


def _could_be(data: bytes, at: int, magic: bytes) -> bool:
    """Whether the bytes present at `at` agree with `magic` (so far: a short prefix may still become it)."""
    have = data[at:at + len(magic)]
    return have == magic[: len(have)]


def _read_fmt(chunk: bytes, source: str) -> WavFormat:
    tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", chunk[:16])
    if tag == FORMAT_EXTENSIBLE:
        if len(chunk) < 26:
            raise AudioFormatError(f"{source}: truncated fmt chunk (WAVE_FORMAT_EXTENSIBLE without its sub-format)")
        tag = struct.unpack("<H", chunk[24:26])[0]  # the sub-format GUID's first field is the format tag
    if bits not in _SUPPORTED.get(tag, ()):
        raise AudioFormatError(f"{source}: unsupported WAV sample format (format tag {tag}, {bits} bits); "
                               "PCM 8/16/24/32-bit and float 32/64-bit are read")
    if not channels or not 0 < rate <= MAX_SAMPLE_RATE:
        raise AudioFormatError(f"{source}: fmt chunk declares {channels} channels at {rate} Hz "
                               f"(rates up to {MAX_SAMPLE_RATE} Hz are read)")
    return WavFormat(rate, channels, bits, tag)


def parse_wav_header(data: bytes, source: str = "<audio>", *, final: bool = True) -> WavHeader | None:
    """Walk the RIFF chunks of `data` up to the start of the samples; see the module docstring.

    `final=False` is for a body still arriving: None means "not enough bytes yet", and only bytes
    that can no longer become a WAV header raise. `final=True` (a whole file) raises for anything
    missing. Errors are `AudioFormatError` naming `source`.
    """

    def incomplete(what: str) -> None:
        if final:
            raise AudioFormatError(f"{source}: {what}")

    if not (_could_be(data, 0, b"RIFF") and _could_be(data, 8, b"WAVE")):
        raise AudioFormatError(f"{source}: not a RIFF/WAVE file")
    if len(data) < 12:
        return incomplete("not a RIFF/WAVE file (shorter than its 12-byte header)")
    pos, fmt = 12, None
    while len(data) >= pos + 8:
        cid, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        body = pos + 8
        if cid == b"data":
            if fmt is None:
                raise AudioFormatError(f"{source}: data chunk before a valid fmt chunk")
            # streaming writers leave the size at 0xFFFFFFFF or at 0 (a header written before any audio)
            return WavHeader(fmt, body, None if size in (0, STREAMING_SIZE) else size)
        if cid == b"fmt ":
            if size < 16:
                raise AudioFormatError(f"{source}: truncated fmt chunk ({size} bytes, 16 needed)")
            if len(data) < body + size:
                return incomplete(f"truncated fmt chunk ({len(data) - body} of {size} bytes)")
            fmt = _read_fmt(data[body:body + size], source)
        pos = body + size + (size & 1)
    return incomplete("no data chunk")


def decode_wav(raw: bytes, source: str = "<audio>") -> tuple[np.ndarray, int]:
    """Whole RIFF/WAVE bytes -> (float64 samples of the first channel, sample rate)."""
    head = parse_wav_header(raw, source)
    end = len(raw) if head.data_bytes is None else min(len(raw), head.data_offset + head.data_bytes)
    return head.format.decode(raw[head.data_offset:end]), head.format.sample_rate


def read_audio_bytes(path: str | Path) -> bytes:
    """The bytes of an audio file; InputError of one line for a missing, unreadable or non-regular file."""
    name = str(path)
    try:
        if not stat.S_ISREG(Path(path).stat().st_mode):
            raise InputError(f"{name}: not a regular file (a device, pipe or directory); give an audio file")
        return Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"{name}: cannot read: {exc.strerror or exc}") from None


def read_audio(path: str | Path, rate: int | None = None) -> tuple[np.ndarray, int]:
    """Read a WAV file, or raw 16-bit little-endian mono PCM when `rate` is given and the file is no WAV.

    Returns (float64 samples, sample rate). Raises `InputError` naming the file when it cannot be
    read or decoded.
    """
    name = str(path)
    if rate is not None and not 0 < rate <= MAX_SAMPLE_RATE:
        raise InputError(f"{name}: the sample rate must be between 1 and {MAX_SAMPLE_RATE} Hz, got {rate}")
    raw = read_audio_bytes(path)
    if raw[:4] == b"RIFF":
        return decode_wav(raw, name)
    if rate is None:
        raise AudioFormatError(f"{name}: not a WAV file; give its sample rate (--rate N) to read it as raw "
                               "16-bit little-endian PCM")
    return from_pcm16(raw), int(rate)


def audible(rms, threshold_dbfs: float = AUDIBLE_DBFS):
    """True where an RMS level (full scale 1.0; a number or an array) is above the audibility line."""
    return np.asarray(rms) > 10 ** (threshold_dbfs / 20)


def window_samples(rate: int, window_s: float = AUDIBLE_WINDOW_S) -> int:
    """Samples in one analysis window at `rate` Hz (at least 1)."""
    return max(1, round(window_s * rate))


def window_rms(x: np.ndarray, n: int, *, partial: bool = False) -> np.ndarray:
    """RMS of each non-overlapping `n`-sample window from sample 0; `partial` keeps a last window at least half full."""
    x = np.asarray(x, dtype=np.float64)
    full = len(x) // n
    rms = np.sqrt(np.mean(np.square(x[: full * n].reshape(full, n)), axis=1)) if full else np.zeros(0)
    tail = x[full * n:]
    if partial and len(tail) >= n / 2:
        rms = np.append(rms, np.sqrt(np.mean(np.square(tail))))
    return rms


def first_audible(samples: np.ndarray, rate: int) -> int | None:
    """The sample index where the first audible window ends (module docstring), or None if no whole window is."""
    n = window_samples(rate)
    hits = np.flatnonzero(audible(window_rms(samples, n)))
    return int(hits[0] + 1) * n if hits.size else None
