"""HTTP/1.1 over a plain socket, every received piece stamped with when it arrived.

Why not `http.client`: its buffered reader hides which `recv` delivered a byte, so a timestamp
can only be taken when user code gets to the bytes. Here each `recv` is one piece with one
time, and the response (status line, headers, `Content-Length`, chunked or close-delimited
body) is parsed from those pieces, so every body byte knows the piece it came in.

The clock: with `SO_TIMESTAMPNS` (Linux), `recvmsg` returns the time the kernel received the
data (`clock = "kernel"`); elsewhere, or when the option is refused, or for data that arrived
before it was set, the piece is timed when it was read (`"read"`). The request's send is
stamped the same way (`SO_TIMESTAMPING`, the driver's transmit time of its last byte:
`Connection.sent_at`), so a row on the kernel clock does not depend on when its thread got to
run either side of the send. Measured on Linux 6.18 over
loopback (see docs/benchmarking.md, "The clock"): segments queued unread in a TCP socket are
merged and carry the stamp of the *latest* one, however few bytes a `recvmsg` asks for. So a
kernel stamp is the true arrival of the last byte a read returns, and of every byte in it only
if nothing else arrived before the read: the reader must read promptly. `vvbench.load.users`
therefore runs each request on a thread of its own (off the event loop), where a read is late
only by the time it waits for the GIL.

The socket is `_socket.socket`, the C type that gevent never patches: it blocks the calling
thread only, which is what a request thread wants (and what a plain test wants). The caller
owns a deadline; every wait is bounded by it (`RequestTimeout`).
"""

from __future__ import annotations

import _socket
import platform
import struct
import sys
import time

READ_BYTES = 64 * 1024
HEAD_MAX = 64 * 1024
KERNEL, READ = "kernel", "read"
_TIMESPEC = struct.Struct("@ll")  # the kernel's struct timespec of SO_TIMESTAMPNS (its "old" form: two longs)


def _so_timestampns() -> int | None:
    """Linux's SO_TIMESTAMPNS (Python does not export it): 35 on the generic ABI, None elsewhere."""
    if not sys.platform.startswith("linux") or not hasattr(_socket.socket, "recvmsg"):
        return None
    machine = platform.machine().lower()
    if machine.startswith(("alpha", "parisc", "hppa", "sparc", "mips")):
        return None  # these define their own socket option numbers; read times there
    return getattr(_socket, "SO_TIMESTAMPNS", 35)


SO_TIMESTAMPNS = _so_timestampns()
SO_TIMESTAMPING = 37 if SO_TIMESTAMPNS is not None else None  # the same ABI test: Linux generic
# transmit stamps from the driver, reported in software, keyed by byte offset, without the packet
_TX_FLAGS = (1 << 1) | (1 << 4) | (1 << 7) | (1 << 11)  # TX_SOFTWARE | SOFTWARE | OPT_ID | OPT_TSONLY
_EXTENDED_ERR = struct.Struct("=IBBBBII")  # struct sock_extended_err: errno, origin, type, code, pad, info, data
_ORIGIN_TIMESTAMPING = 4
_ANCILLARY = _socket.CMSG_SPACE(_TIMESPEC.size) if SO_TIMESTAMPNS is not None else 0


class RequestTimeout(Exception):
    """The request's own deadline passed."""


class ProtocolError(OSError):
    """The server's answer is not HTTP/1.1 this reader understands."""


class Closed(ConnectionError):
    """The server closed the connection before the response was complete."""


def _stamp(ancillary) -> float | None:
    for level, kind, data in ancillary:
        if level == _socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            sec, nsec = _TIMESPEC.unpack(data[:_TIMESPEC.size])
            return sec + nsec / 1e9
    return None


class Connection:
    """One keep-alive TCP connection; `recv()` gives (bytes, arrival epoch s, clock of that time)."""

    def __init__(self, host: str, port: int, connect_timeout_s: float, kernel_stamps: bool = True):
        err: OSError | None = None
        for family, kind, proto, _, addr in _socket.getaddrinfo(host, port, 0, _socket.SOCK_STREAM):
            sock = _socket.socket(family, kind, proto)
            try:
                sock.settimeout(connect_timeout_s)
                sock.connect(addr)
            except OSError as exc:
                sock.close()
                err = exc
                continue
            self.sock = sock
            break
        else:
            raise err or OSError(f"cannot resolve {host}:{port}")
        self.sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        self.stamping = self.tx_stamping = False
        if kernel_stamps and SO_TIMESTAMPNS is not None:
            try:
                self.sock.setsockopt(_socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
                self.stamping = True
                self.sock.setsockopt(_socket.SOL_SOCKET, SO_TIMESTAMPING, _TX_FLAGS)
                self.tx_stamping = True
            except OSError:
                pass
        self.sent_bytes = 0
        self._tx_key: int | None = None  # byte offset whose transmit stamp is awaited
        self.sent_at: float | None = None  # the kernel's transmit stamp of the last request's last byte
        self.closed = False

    def settimeout(self, deadline: float) -> None:
        left = deadline - time.perf_counter()
        if left <= 0:
            raise RequestTimeout()
        self.sock.settimeout(left)

    def send(self, data: bytes, deadline: float) -> None:
        """Send a request; with transmit stamps, `sent_at` becomes the kernel's time its last byte left."""
        self.settimeout(deadline)
        self.sent_at = None
        self.sock.sendall(data)
        self.sent_bytes += len(data)
        if self.tx_stamping:
            self._tx_key = self.sent_bytes - 1
            self._collect_tx()

    def _collect_tx(self) -> None:
        """Drain the error queue of transmit stamps (never blocks). Done before every read too: a
        pending stamp makes the socket poll as ready, so a blocking read would spin until data came."""
        self.sock.settimeout(0)  # non-blocking: with a timeout, Python would first wait for ordinary data
        while True:
            try:
                _, ancillary, _, _ = self.sock.recvmsg(1, 512, _socket.MSG_ERRQUEUE | _socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.tx_stamping = False
                return
            stamp = key = None
            for level, kind, raw in ancillary:
                if level == _socket.SOL_SOCKET and kind == SO_TIMESTAMPING and len(raw) >= _TIMESPEC.size:
                    sec, nsec = _TIMESPEC.unpack(raw[:_TIMESPEC.size])
                    stamp = sec + nsec / 1e9
                elif len(raw) >= _EXTENDED_ERR.size:
                    err = _EXTENDED_ERR.unpack(raw[:_EXTENDED_ERR.size])
                    if err[1] == _ORIGIN_TIMESTAMPING:
                        key = err[6]
            if stamp and key is not None and key == (self._tx_key or 0) % 2**32:
                self.sent_at, self._tx_key = stamp, None

    def recv(self, deadline: float) -> tuple[bytes, float, str]:
        """The next piece (b"" at EOF), when it arrived (epoch s) and by which clock."""
        if self._tx_key is not None:
            self._collect_tx()
        self.settimeout(deadline)
        try:
            if self.stamping:
                data, ancillary, _, _ = self.sock.recvmsg(READ_BYTES, _ANCILLARY)
                stamp = _stamp(ancillary)
                if stamp is not None:
                    return data, stamp, KERNEL
            else:
                data = self.sock.recv(READ_BYTES)
        except TimeoutError:
            raise RequestTimeout() from None
        return data, time.time(), READ

    def abort(self) -> None:
        """Make a read blocked in another thread return at once (the run is stopping)."""
        try:
            self.sock.shutdown(_socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.sock.close()


class ChunkedDecoder:
    """`Transfer-Encoding: chunked` fed in pieces of any size -> the payload bytes in them."""

    def __init__(self):
        self._line = b""
        self._left = 0  # payload bytes of the current chunk not yet seen
        self._state = "size"  # size | data | crlf | trailer | done
        self.done = False

    def feed(self, data: bytes) -> bytes:
        """The payload carried by `data`; sets `done` at the end of the body (bytes after it are ignored)."""
        out = []
        i = 0
        while i < len(data) and not self.done:
            if self._state == "data":
                take = min(self._left, len(data) - i)
                out.append(data[i:i + take])
                i += take
                self._left -= take
                if not self._left:
                    self._state = "crlf"
                continue
            end = data.find(b"\n", i)
            if end < 0:
                self._line += data[i:]
                if len(self._line) > HEAD_MAX:
                    raise ProtocolError("chunk line too long")
                break
            line, self._line = (self._line + data[i:end]).rstrip(b"\r"), b""
            i = end + 1
            self._line_done(line)
        return b"".join(out)

    def _line_done(self, line: bytes) -> None:
        if self._state == "crlf":
            if line:
                raise ProtocolError("chunk not followed by CRLF")
            self._state = "size"
        elif self._state == "size":
            try:
                self._left = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise ProtocolError(f"bad chunk size {line[:20]!r}") from None
            self._state = "data" if self._left else "trailer"
        elif self._state == "trailer" and not line:
            self._state, self.done = "done", True


class Response:
    """An answer's status line and headers, read from `conn`; its body read with `pieces()`.

    `Closed` with `nothing=True` when the connection ended before any byte of the answer (a
    keep-alive connection the server had closed while idle: the request was not answered).
    """

    def __init__(self, conn: Connection, deadline: float):
        self.conn = conn
        buf = b""
        while (end := buf.find(b"\r\n\r\n")) < 0:
            data, t, clock = conn.recv(deadline)
            if not data:
                exc = Closed("connection closed before the response headers")
                exc.nothing = not buf
                raise exc
            buf += data
            if len(buf) > HEAD_MAX:
                raise ProtocolError("response headers too long")
        self.head_at, self.head_clock = t, clock
        lines = buf[:end].decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        try:
            self.status = int(rest[:3])
        except ValueError:
            raise ProtocolError(f"bad status line {lines[0][:60]!r}") from None
        if not version.startswith("HTTP/1."):
            raise ProtocolError(f"bad status line {lines[0][:60]!r}")
        self.headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        self._first = (buf[end + 4:], t, clock)
        chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        length = self.headers.get("content-length")
        self._chunks = ChunkedDecoder() if chunked else None
        self._left = int(length) if length is not None and not chunked else None
        self.will_close = (version == "HTTP/1.0" or "close" in self.headers.get("connection", "").lower()
                           or (self._chunks is None and self._left is None))
        self.complete = self.status in (204, 304) or self._left == 0

    def getheader(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def pieces(self, deadline: float):
        """Yield (payload bytes, arrival epoch s, clock) per received piece until the body is complete.

        Raises `Closed` when the connection ends first (for a close-delimited body, that end is
        the body's end).
        """
        data, t, clock = self._first
        while not self.complete:
            if data:
                payload = self._frame(data)
                if payload:
                    yield payload, t, clock
                if self.complete:
                    break
            data, t, clock = self.conn.recv(deadline)
            if not data:
                if self._chunks is None and self._left is None:
                    self.complete = True
                    break
                raise Closed("connection closed before the body was complete")

    def _frame(self, data: bytes) -> bytes:
        if self._chunks is not None:
            payload = self._chunks.feed(data)
            self.complete = self._chunks.done
            return payload
        if self._left is not None:
            payload = data[: self._left]
            self._left -= len(payload)
            self.complete = self._left == 0
            return payload
        return data

    def read(self, deadline: float, limit: int) -> bytes:
        """The rest of the body, up to `limit` bytes kept (the rest is read and dropped)."""
        out = bytearray()
        for payload, _, _ in self.pieces(deadline):
            out += payload[: max(0, limit - len(out))]
        return bytes(out)


def request_bytes(method: str, target: str, host: str, headers: dict[str, str], body: bytes | None) -> bytes:
    """An HTTP/1.1 request with `Host`, the headers and a `Content-Length` body."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", *(f"{k}: {v}" for k, v in headers.items())]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")
