"""Ogg pages for one Opus stream (RFC 3533 framing, RFC 7845 mapping), written when the caller says.

Why not FFmpeg's Ogg muxer through PyAV: it closes a page only when the page reaches its
`page_duration` (1 s by default) or at the end, and PyAV cannot send it the empty flush packet
(`mux()` takes packets only). A stream would then leave in one-second bursts, or, with a short
`page_duration`, pay 27+ bytes of page header for every 20 ms packet (≈ 11 kbit/s on a 32 kbit/s
stream). Here `page()` closes a page over whatever packets were added since the last one, so a
streamed response sends one page per synthesised chunk.

The first page holds `OpusHead` (the encoder's extradata, with its pre-skip), the second
`OpusTags`; both are their own pages as RFC 7845 requires. A page's granule position is the
number of 48 kHz samples its packets and all before them decode to (the pre-skip included,
since the encoder's first output samples are that delay); the last page
(end of stream) carries pre-skip + the true input length, so a decoder trims the encoder's
final padding and the decoded length equals the input's.
"""

from __future__ import annotations

import struct

_CAPTURE = b"OggS"
_BOS, _EOS = 0x02, 0x04
_MAX_SEGMENTS = 255


def _crc_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        r = i << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) if r & 0x80000000 else (r << 1)
        table.append(r & 0xFFFFFFFF)
    return tuple(table)


_TABLE = _crc_table()


def ogg_crc(data: bytes) -> int:
    """Ogg's CRC-32: polynomial 0x04C11DB7, not reflected, initial value and final xor 0."""
    crc = 0
    table = _TABLE
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ table[(crc >> 24) ^ byte]
    return crc


def _lacing(size: int) -> bytes:
    """A packet's segment table entries: 255s then the remainder (a 0 ends a multiple of 255)."""
    return b"\xff" * (size // 255) + bytes([size % 255])


class OggOpusWriter:
    """Builds Ogg pages of one logical stream; `add()` packets, `page()` emits them (see module docstring)."""

    def __init__(self, opus_head: bytes, *, serial: int = 1, vendor: bytes = b"vvbench"):
        if opus_head[:8] != b"OpusHead":
            raise ValueError("opus_head must be an OpusHead packet (the libopus encoder's extradata)")
        self.pre_skip = struct.unpack("<H", opus_head[10:12])[0]
        self.serial = serial
        self.sequence = 0
        self.granule = 0  # 48 kHz samples decodable from the packets added so far (pre-skip included)
        self._packets: list[bytes] = []
        tags = b"OpusTags" + struct.pack("<I", len(vendor)) + vendor + struct.pack("<I", 0)
        self.headers = self._page([opus_head], 0, _BOS) + self._page([tags], 0, 0)

    def add(self, packet: bytes, samples_48k: int) -> None:
        """Queue one Opus packet that decodes to `samples_48k` samples."""
        self._packets.append(bytes(packet))
        self.granule += samples_48k

    def page(self, *, last: bool = False, end_granule: int | None = None) -> bytes:
        """Pages over the queued packets (more than one if over 255 segments); b"" if none and not `last`.

        `last` marks the end of the stream; `end_granule` (pre-skip + input samples) trims the padding.
        """
        out = []
        granule = self.granule if end_granule is None else end_granule
        packets, self._packets = self._packets, []
        while packets:
            group, segments = [], 0
            while packets and segments + len(packets[0]) // 255 + 1 <= _MAX_SEGMENTS:
                segments += len(packets[0]) // 255 + 1
                group.append(packets.pop(0))
            if not group:  # one packet longer than a page: Opus packets never are (at most 1275 bytes per frame)
                raise ValueError("an Opus packet too large for one Ogg page")
            out.append(self._page(group, granule, _EOS if last and not packets else 0))
        if last and not out:
            out.append(self._page([], granule, _EOS))
        return b"".join(out)

    def _page(self, packets: list[bytes], granule: int, flags: int) -> bytes:
        table = b"".join(_lacing(len(p)) for p in packets)
        head = struct.pack("<4sBBqIIIB", _CAPTURE, 0, flags, granule, self.serial, self.sequence, 0, len(table))
        page = bytearray(head + table + b"".join(packets))
        struct.pack_into("<I", page, 22, ogg_crc(bytes(page)))
        self.sequence += 1
        return bytes(page)
