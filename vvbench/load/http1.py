"""HTTP/1.1 answers parsed from `vvbench.load.wire` pieces: status line, headers, body framing.

A `Response` reads its head from a `wire.Connection`, then yields the body piece by piece
(`pieces()`: payload bytes with the arrival time and clock of the `recv` that brought them), for
`Content-Length`, chunked (`ChunkedDecoder`, fed pieces of any size) and close-delimited bodies;
`request_bytes` writes a request. Kept apart from the socket so that the framing is tested from
byte strings alone.
"""

from __future__ import annotations

from vvbench.load.wire import Connection

HEAD_MAX = 64 * 1024


class ProtocolError(OSError):
    """The server's answer is not HTTP/1.1 this reader understands."""


class Closed(ConnectionError):
    """The server closed the connection before the response was complete."""


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
