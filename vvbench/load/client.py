"""Sending one streaming speech request over a user's `Session`, timing every piece of the body.

Speech over plain HTTP goes through `vvbench.load.wire` and `http1`: our own HTTP/1.1 reader over a raw
socket, so each `recv` is one piece with one time — the kernel's arrival stamp where the
platform gives one (`Outcome.clock = "kernel"`), else the time it was read (`"read"`). Every
figure is that time minus `t_start`: the kernel's transmit stamp of the request where there is
one, else the epoch time just before it was sent (the clock shared by the run). The wire blocks its thread only: the Locust users run it on a thread of
its own, off the event loop (`vvbench.load.users`), so that nothing the loop does can delay a
read. Over HTTPS, and for jobs (`vvbench.load.jobs`), `http.client` on a keep-alive connection
reads the body with `read1(READ_BYTES)` and times each piece with `perf_counter` when it is
read (`clock = "read"`).

Audio: `vvbench.load.audio.AudioStream` decodes each piece as it arrives (compressed formats
too), so time to first audible audio is the arrival of the piece that made the first audible
window decodable — for mp3, Opus and FLAC later than on PCM by the codec's delay and its frame
and page granularity; what a decoder holds back to the end of the body counts at the last piece.

Choices: a keep-alive connection the server closed while idle is retried once on a fresh one
(the request had not been answered); the per-request timeout bounds the whole exchange;
`chunks` counts bursts of body pieces (a piece more than `BURST_GAP_S` after the previous one
starts a new burst), i.e. the server's chunks as the network delivered them. A row's clock is
`kernel` only when its send and every piece of its answer carried a kernel stamp.
"""

from __future__ import annotations

import http.client
import json
import math
import socket
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from vvbench import __version__
from vvbench.core.audio import AUDIBLE, SAMPLE_RATE, AudioFormatError
from vvbench.load import http1, wire
from vvbench.load.audio import AudioStream, SSEDecoder, StreamErrorEvent
from vvbench.load.mix import RequestSpec
from vvbench.load.wire import RequestTimeout

READ_BYTES = 16 * 1024
BURST_GAP_S = 0.002
ERROR_BODY_BYTES = 64 * 1024


@dataclass
class Outcome:
    """What one request saw; `vvbench.load.records.build_row` turns it into a row."""

    t_start: float = math.nan
    status: str = "ok"
    http_status: int | None = None
    error: str | None = None
    headers_s: float = math.nan
    ttfb_s: float = math.nan
    ttfa_s: float = math.nan
    e2e_s: float = math.nan
    bytes: int = 0
    chunks: int = 0
    seed: int | None = None
    server_queue_s: float = math.nan
    codec_delay: int | None = None  # the answer's X-Codec-Delay header (samples), for bodies that cannot declare it
    stream: AudioStream | None = None
    arrivals: list[tuple[float, int]] = field(default_factory=list)
    clock: str = wire.READ

    def fail(self, status: str, error: str) -> Outcome:
        self.status, self.error = status, error[:500]
        return self


class Session:
    """One keep-alive HTTP connection to a base URL (per user; not shared between greenlets)."""

    def __init__(self, base_url: str, api_key: str | None = None, connect_timeout_s: float = 10.0, kernel_stamps: bool = True):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.https = parts.scheme == "https"
        self.host, self.port = parts.hostname, parts.port or (443 if self.https else 80)
        self.prefix = parts.path.rstrip("/")
        self.connect_timeout_s = connect_timeout_s
        self.headers = {"User-Agent": f"vvbench/{__version__}", "Accept": "*/*"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self.kernel_stamps = kernel_stamps
        self._conn: http.client.HTTPConnection | None = None
        self._wire: wire.Connection | None = None

    @property
    def uses_wire(self) -> bool:
        """Speech goes through `vvbench.load.wire` (plain HTTP), which must run off the event loop."""
        return not self.https

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._wire is not None:
            self._wire.close()
            self._wire = None

    def abort(self) -> None:
        """Unblock a request running on another thread (its read returns at once; it then fails)."""
        if self._wire is not None:
            self._wire.abort()

    def exchange(self, method: str, path: str, body: bytes | None, deadline: float) -> tuple[http1.Response, float]:
        """Send over the wire connection; return (response with headers read, epoch time just before the send)."""
        headers = dict(self.headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        data = http1.request_bytes(method, self.prefix + path, f"{self.host}:{self.port}", headers, body)
        for attempt in (0, 1):
            reused = self._wire is not None
            if self._wire is None:
                self._wire = wire.Connection(self.host, self.port, self.connect_timeout_s, self.kernel_stamps)
            t_epoch = time.time()
            try:
                self._wire.send(data, deadline)
                return http1.Response(self._wire, deadline), t_epoch
            except (http1.Closed, BrokenPipeError, ConnectionResetError) as exc:
                self.close()
                if not reused or attempt or not getattr(exc, "nothing", True):
                    raise
        raise AssertionError("unreachable")

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
            self._conn = cls(self.host, self.port, timeout=self.connect_timeout_s)
        return self._conn

    def send(self, method: str, path: str, body: bytes | None, deadline: float) -> tuple[http.client.HTTPResponse, float, float]:
        """Send; return (response with headers read, perf_counter at send, epoch at send)."""
        headers = dict(self.headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        for attempt in (0, 1):
            reused = self._conn is not None
            conn = self._connection()
            t_epoch, t0 = time.time(), time.perf_counter()
            try:
                conn.request(method, self.prefix + path, body=body, headers=headers)
                set_timeout(conn, deadline)
                return conn.getresponse(), t0, t_epoch
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if not reused or attempt:
                    raise
        raise AssertionError("unreachable")

    def timeout(self, deadline: float) -> None:
        if self._conn is not None:
            set_timeout(self._conn, deadline)


def set_timeout(conn: http.client.HTTPConnection, deadline: float) -> None:
    left = deadline - time.perf_counter()
    if left <= 0:
        raise RequestTimeout()
    if conn.sock is not None:
        conn.sock.settimeout(left)


def error_message(resp: http.client.HTTPResponse) -> str:
    """`HTTP <status>: <the error body's message>` of an error answer (its body read, up to 64 KiB)."""
    return _error_text(resp.status, resp.read(ERROR_BODY_BYTES))


def _error_text(status: int, raw: bytes) -> str:
    try:
        err = json.loads(raw).get("error")
        msg = err.get("message") if isinstance(err, dict) else err
    except (ValueError, AttributeError):
        msg = raw[:200].decode("utf-8", "replace")
    return f"HTTP {status}: {msg}" if msg else f"HTTP {status}"


def _server_queue_s(header: str | None) -> float:
    for part in (header or "").split(","):
        name, _, rest = part.strip().partition(";")
        if name == "queue" and "dur=" in rest:
            try:
                return float(rest.split("dur=")[1].split(";")[0]) / 1000
            except ValueError:
                return math.nan
    return math.nan


def read_body(session: Session, resp, t0: float, deadline: float, on_piece) -> None:
    """Read the body in pieces, calling on_piece(data, t_since_send); raise on a truncated body."""
    while not resp.isclosed():
        session.timeout(deadline)
        data = resp.read1(READ_BYTES)
        if not data:
            break
        on_piece(data, time.perf_counter() - t0)
        if resp.length == 0:
            resp.read()  # read1 never closes a Content-Length body; read() does, freeing the connection
    if resp.length:  # Content-Length not reached: the server closed early
        raise http.client.IncompleteRead(b"", resp.length)


def classify(out: Outcome, exc: BaseException) -> Outcome:
    """The outcome of a request that raised `exc`: its status (`timeout`, `truncated`, ...) and error."""
    if isinstance(exc, (RequestTimeout, socket.timeout, TimeoutError)):
        return out.fail("timeout", "request timed out")
    if isinstance(exc, StreamErrorEvent):
        return out.fail("stream_error", f"server error event: {exc}")
    if isinstance(exc, AudioFormatError):
        return out.fail("bad_audio", str(exc))
    if isinstance(exc, (http.client.IncompleteRead, http1.Closed)) and out.http_status is not None:
        return out.fail("truncated", "connection closed before the body was complete")
    if not isinstance(exc, (OSError, http.client.HTTPException)):
        return out.fail("client_error", f"{type(exc).__name__}: {exc}")
    if out.http_status is None:
        return out.fail("connect_error", f"{type(exc).__name__}: {exc}")
    return out.fail("truncated", f"{type(exc).__name__}: {exc}")


def finish(out: Outcome, stream: AudioStream) -> Outcome:
    """The outcome of a complete answer: `no_audio` when it carried no samples or never became audible."""
    out.stream = stream
    if stream.samples == 0:
        return out.fail("no_audio", "response carried no audio samples")
    if stream.audible_at is None:
        return out.fail("no_audio", f"no {AUDIBLE}: the listener heard silence")
    return out


def speech(session: Session, spec: RequestSpec, pcm_rate: int = SAMPLE_RATE) -> Outcome:
    """POST /v1/audio/speech with stream=true and time every piece of the answer."""
    payload = {"model": "vvbench", "input": spec.text, "voice": spec.voice, "response_format": spec.response_format,
               "speed": spec.speed, "stream": True, "stream_format": spec.stream_format}
    if spec.seed is not None:
        payload["seed"] = spec.seed
    out = Outcome(t_start=time.time(), seed=spec.seed)
    stream = AudioStream(spec.response_format, pcm_rate)
    sse = SSEDecoder() if spec.stream_format == "sse" else None
    deadline = time.perf_counter() + spec.timeout_s
    last = [-1.0]

    def piece(data: bytes, t: float) -> None:
        if math.isnan(out.ttfb_s):
            out.ttfb_s = t
        out.bytes += len(data)
        out.e2e_s = t
        if t - last[0] > BURST_GAP_S:
            out.chunks += 1
        last[0] = t
        before = stream.samples
        if stream.feed(sse.feed(data) if sse else data) and math.isnan(out.ttfa_s):
            out.ttfa_s = t
        if stream.samples > before:
            out.arrivals.append((t, stream.samples))

    body = json.dumps(payload).encode()
    try:
        if session.uses_wire:
            _speech_wire(session, body, deadline, out, piece)
        else:
            _speech_http(session, body, deadline, out, piece)
        ended(out, stream)
    except _Answered:
        return out
    except Exception as exc:  # noqa: BLE001 - every failure becomes the row's status
        session.close()
        out.stream = stream
        return classify(out, exc)
    return finish(out, stream)


def ended(out: Outcome, stream: AudioStream) -> None:
    """The body is complete: what the decoder held back arrived with the last piece (at `e2e_s`)."""
    before = stream.samples
    if stream.close() and math.isnan(out.ttfa_s):
        out.ttfa_s = out.e2e_s
    if stream.samples > before:
        if out.arrivals and out.arrivals[-1][0] == out.e2e_s:
            out.arrivals[-1] = (out.e2e_s, stream.samples)
        else:
            out.arrivals.append((out.e2e_s, stream.samples))


class _Answered(Exception):
    """The server answered with an error status (the outcome already says so)."""


def _answer(out: Outcome, status: int, seed: str | None, timing: str | None, default_seed: int | None,
            codec_delay: str | None = None) -> None:
    out.http_status = status
    out.codec_delay = _int(codec_delay, None)
    out.seed = _int(seed, default_seed)
    out.server_queue_s = _server_queue_s(timing)


def _speech_wire(session: Session, body: bytes, deadline: float, out: Outcome, piece) -> None:
    resp, out.t_start = session.exchange("POST", "/v1/audio/speech", body, deadline)
    sent_at = resp.conn.sent_at
    clocks = {resp.head_clock, wire.KERNEL if sent_at is not None else wire.READ}
    if sent_at is not None:  # the kernel's transmit stamp: when the request left, not when this thread ran
        out.t_start = sent_at
    out.headers_s = resp.head_at - out.t_start
    _answer(out, resp.status, resp.getheader("X-Seed"), resp.getheader("Server-Timing"), out.seed,
            resp.getheader("X-Codec-Delay"))
    if resp.status != 200:
        out.fail("rejected" if resp.status in (429, 503) else "http_error",
                 _error_text(resp.status, resp.read(deadline, ERROR_BODY_BYTES)))
        if resp.will_close:
            session.close()
        raise _Answered()
    for data, t, clock in resp.pieces(deadline):
        clocks.add(clock)
        piece(data, t - out.t_start)
    out.clock = wire.KERNEL if clocks == {wire.KERNEL} else wire.READ
    if resp.will_close:
        session.close()


def _speech_http(session: Session, body: bytes, deadline: float, out: Outcome, piece) -> None:
    resp, t0, out.t_start = session.send("POST", "/v1/audio/speech", body, deadline)
    out.headers_s = time.perf_counter() - t0
    _answer(out, resp.status, resp.getheader("X-Seed"), resp.getheader("Server-Timing"), out.seed,
            resp.getheader("X-Codec-Delay"))
    if resp.status != 200:
        out.fail("rejected" if resp.status in (429, 503) else "http_error", error_message(resp))
        raise _Answered()
    read_body(session, resp, t0, deadline, piece)
    if resp.will_close:
        session.close()


def _int(raw: str | None, default: int | None) -> int | None:
    try:
        return int(raw) if raw is not None else default
    except ValueError:
        return default
