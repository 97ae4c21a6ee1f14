"""An independent clock for the load worker's timing: `tcpdump -i lo` of the same connections.

`Capture(port)` runs Debian's `tcpdump` (nanosecond stamps, whole packets) on the loopback
interface for one server port while a run goes, in its own process, stopped by PID. `exchanges`
reads the capture back without vvbench's HTTP reader: it reassembles each TCP connection's two
byte streams from the packets (by sequence number), splits them into requests and responses,
undoes the chunked framing itself, and times every byte by the packet that carried it. Per
request it gives the packet times of the request's first byte, of the first body byte, of the
byte that completed the first audible window (by the one definition of audible, through
`vvbench.load.audio.AudioStream` fed packet by packet) and of the last body byte — the figures
a row holds, taken by the kernel's packet tap and not by the worker.

Why tcpdump: it is a separate process with its own kernel clock path (the packet tap at
transmit), so neither a stall of the worker nor a bug in its reader can move it; the fake
server's send log would miss what the network did, and a relay would add its own reads.
`available()` says whether capture is permitted here (root, or CAP_NET_RAW); tests skip otherwise.
"""

from __future__ import annotations

import bisect
import json
import shutil
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from vvbench.load.audio import AudioStream, SSEDecoder


def available() -> str | None:
    """None when tcpdump can capture on lo here, else why not."""
    if shutil.which("tcpdump") is None:
        return "tcpdump is not installed"
    probe = subprocess.Popen(["tcpdump", "-i", "lo", "-Z", "root", "-w", "/dev/null", "udp port 9"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    time.sleep(0.5)
    if probe.poll() is not None:
        return f"tcpdump cannot capture on lo: {probe.communicate()[1].strip()[:200]}"
    probe.terminate()
    probe.communicate(timeout=5)
    return None


class Capture:
    """`with Capture(port) as cap: ...` then `cap.path` is the pcap file (the capture has ended)."""

    def __init__(self, port: int):
        self.dir = Path(tempfile.mkdtemp(prefix="pcapclock-"))
        self.path = self.dir / "lo.pcap"
        self.port = port
        self.proc: subprocess.Popen | None = None
        self.stderr = ""

    def __enter__(self) -> Capture:
        self.proc = subprocess.Popen(
            ["tcpdump", "-i", "lo", "-n", "-U", "--immediate-mode", "-Z", "root", "-s", "0", "-B", "65536", "--time-stamp-precision=nano",
             "-w", str(self.path),
             f"tcp port {self.port}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
        deadline = time.monotonic() + 10
        while not self.path.exists() or self.path.stat().st_size < 24:  # -U: the file header is written once listening
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError(f"tcpdump did not start: {self.proc.communicate()[1][:300]}")
            time.sleep(0.05)
        time.sleep(0.2)
        return self

    def __exit__(self, *exc) -> None:
        # tcpdump flushes its file on SIGTERM, but what still sits in the kernel's capture ring is
        # lost: immediate mode hands packets over one by one, and this grace lets it take the last
        time.sleep(0.5)
        self.proc.terminate()
        try:
            self.stderr = self.proc.communicate(timeout=10)[1]
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.stderr = self.proc.communicate()[1]

    @property
    def dropped(self) -> int:
        """Packets the kernel dropped from the capture (tcpdump's own count)."""
        for line in self.stderr.splitlines():
            if "dropped by kernel" in line:
                return int(line.split()[0])
        return 0

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class Exchange:
    """One request and its answer as the packets saw them (epoch seconds, NaN where absent)."""

    client_port: int
    t_request: float
    t_first_byte: float
    t_audible: float
    t_last_byte: float
    status: int
    chars: int  # characters of the request's input text (to match it with its row)

    @property
    def ttfa_s(self) -> float:
        return self.t_audible - self.t_request

    @property
    def e2e_s(self) -> float:
        return self.t_last_byte - self.t_request


class _Stream:
    """One direction of a TCP connection: its bytes and the time of the packet that carried each.

    Segments are kept by sequence number and put in order at the end: the packet socket can hand
    tcpdump packets of one stream out of order when they were sent from different CPUs.
    """

    def __init__(self):
        self.isn: int | None = None
        self.segments: list[tuple[int, float, bytes]] = []
        self._data: bytearray | None = None
        self.starts: list[int] = []  # byte offset where each packet's new data begins
        self.times: list[float] = []

    def add(self, t: float, seq: int, syn: bool, payload: bytes) -> None:
        if syn:
            self.isn = seq + 1
        elif payload:
            self.segments.append((seq, t, payload))

    @property
    def data(self) -> bytearray:
        if self._data is None:
            self._data = bytearray()
            isn = self.isn if self.isn is not None else min((s for s, _, _ in self.segments), default=0)
            for offset, t, payload in sorted(((s - isn) % 2**32, t, p) for s, t, p in self.segments):
                if offset + len(payload) <= len(self._data) or offset > len(self._data):  # a retransmission, or a hole
                    continue
                self.starts.append(len(self._data))
                self.times.append(t)
                self._data += payload[len(self._data) - offset:]
        return self._data

    def time_of(self, offset: int) -> float:
        """Time of the packet that carried byte `offset`."""
        return self.times[bisect.bisect_right(self.starts, offset) - 1]


def _packets(path: Path):
    raw = path.read_bytes()
    magic = struct.unpack("<I", raw[:4])[0]
    scale = 1e-9 if magic == 0xA1B23C4D else 1e-6
    link = struct.unpack("<I", raw[20:24])[0]
    skip = {1: 14, 113: 16, 276: 20}[link]
    i = 24
    while i + 16 <= len(raw):
        sec, frac, caplen, _ = struct.unpack("<IIII", raw[i:i + 16])
        frame = raw[i + 16:i + 16 + caplen]
        i += 16 + caplen
        ip = frame[skip:]
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 6:
            continue
        ihl = (ip[0] & 15) * 4
        total = struct.unpack(">H", ip[2:4])[0]
        tcp = ip[ihl:total]
        sport, dport, seq = struct.unpack(">HHI", tcp[:8])
        flags = tcp[13]
        payload = tcp[(tcp[12] >> 4) * 4:]
        yield sec + frac * scale, sport, dport, seq, bool(flags & 0x02), payload


def _requests(stream: _Stream) -> list[tuple[float, dict]]:
    """(time of the first byte, JSON body or {}) of each request on the client's stream."""
    out, i, data = [], 0, bytes(stream.data)
    while (end := data.find(b"\r\n\r\n", i)) >= 0:
        head = data[i:end].decode("latin-1").lower()
        length = 0
        for line in head.split("\r\n")[1:]:
            if line.startswith("content-length:"):
                length = int(line.split(":")[1])
        body = data[end + 4:end + 4 + length]
        try:
            info = json.loads(body) if body else {}
        except ValueError:
            info = {}
        out.append((stream.time_of(i), info if isinstance(info, dict) else {}))
        i = end + 4 + length
    return out


def _responses(stream: _Stream, requests: list[tuple[float, dict]], port: int) -> list[Exchange]:
    out, i, data = [], 0, bytes(stream.data)
    for t_req, info in requests:
        end = data.find(b"\r\n\r\n", i)
        if end < 0:
            break
        lines = data[i:end].decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        heads = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
        try:
            spans, i = _body_spans(data, end + 4, heads)  # (stream offset, payload bytes) in order
        except ValueError:  # the answer was cut (a request cancelled when the run ended): no exchange
            break
        fmt = info.get("response_format", "wav")
        audio = AudioStream(fmt if fmt in ("wav", "pcm") else "wav") if info.get("stream") else None
        sse = SSEDecoder() if info.get("stream_format") == "sse" else None
        t_first = t_audible = t_last = float("nan")
        for offset, payload in spans:
            for a, b in _by_packet(stream, offset, len(payload)):
                t = stream.time_of(a)
                if t_first != t_first:
                    t_first = t
                t_last = t
                piece = payload[a - offset:b - offset]
                if audio is not None and t_audible != t_audible and audio.feed(sse.feed(piece) if sse else piece):
                    t_audible = t
        out.append(Exchange(port, t_req, t_first, t_audible, t_last, status, len(info.get("input", ""))))
    return out


def _by_packet(stream: _Stream, offset: int, n: int):
    """[a, b) stream offsets of the parts of bytes offset..offset+n that came in one packet each."""
    a, end = offset, offset + n
    while a < end:
        k = bisect.bisect_right(stream.starts, a)
        b = min(end, stream.starts[k]) if k < len(stream.starts) else end
        yield a, b
        a = b


def _body_spans(data: bytes, i: int, heads: dict) -> tuple[list[tuple[int, bytes]], int]:
    if "chunked" in heads.get("transfer-encoding", ""):
        spans = []
        while True:
            eol = data.index(b"\r\n", i)
            size = int(data[i:eol].split(b";")[0], 16)
            i = eol + 2
            if size == 0:
                return spans, data.index(b"\r\n\r\n", i - 2) + 4 if data[i:i + 2] != b"\r\n" else i + 2
            spans.append((i, data[i:i + size]))
            i += size + 2
    n = int(heads.get("content-length", "0"))
    return [(i, data[i:i + n])] if n else [], i + n


def exchanges(path: Path, server_port: int) -> list[Exchange]:
    """Every request/answer on connections to `server_port` in the capture, in request order."""
    streams: dict[tuple[int, int], _Stream] = {}
    for t, sport, dport, seq, syn, payload in _packets(path):
        if server_port not in (sport, dport):
            continue
        stream = streams.setdefault((sport, dport), _Stream())
        if payload or syn:
            stream.add(t, seq, syn, payload)
    out = []
    for (sport, dport), up in streams.items():
        if dport != server_port or not up.data:
            continue
        down = streams.get((server_port, sport))
        if down is not None:
            out += _responses(down, _requests(up), sport)
    return sorted(out, key=lambda e: e.t_request)


def errors(rows, captured: list[Exchange]):
    """Per successful row: its TTFA and E2E minus the packet clock's (seconds), matched by start time and text length.

    A DataFrame with request_id, clock, warmup, ttfa_err_s, e2e_err_s, end (the row's recorded
    end, epoch) and clock_end (the packets'); each exchange matches one row at most, and a row
    without a captured exchange fails loudly.
    """
    import numpy as np
    import pandas as pd

    starts = np.array([e.t_request for e in captured])
    used = np.zeros(len(captured), dtype=bool)
    out = []
    for r in rows[rows["status"] == "ok"].sort_values("t_start").itertuples():
        cost = np.abs(starts - r.t_start) + np.array([0.0 if e.chars == r.text_chars else 1e9 for e in captured])
        cost[used] = np.inf  # one exchange per row: a missing capture must not borrow a neighbour's
        k = int(np.argmin(cost))
        used[k] = True
        e = captured[k]
        if cost.min() > 2.0:  # a row's start off by more than this is not a timing error but a missing capture
            raise AssertionError(f"{r.request_id}: no captured request of its length within 2 s of its start")
        out.append({"request_id": r.request_id, "clock": r.clock, "warmup": r.warmup,
                    "ttfa_err_s": r.ttfa_s - e.ttfa_s, "e2e_err_s": r.e2e_s - e.e2e_s,
                    "end": r.t_start + r.e2e_s, "clock_end": e.t_last_byte})
    return pd.DataFrame(out)
