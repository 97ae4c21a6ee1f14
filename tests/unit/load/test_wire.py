"""The raw HTTP/1.1 reader (vvbench.load.wire and http1): framing from pieces of any size, and arrival stamps that do not depend on when it reads.

The servers here are plain sockets on loopback written by the test, so the bytes and the moments
they leave are exactly known.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from vvbench.load import http1, wire

HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: audio/pcm\r\n\r\n"


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def body_of(pieces: list[bytes]) -> bytes:
    decoder = http1.ChunkedDecoder()
    out = b"".join(decoder.feed(p) for p in pieces)
    assert decoder.done
    return out


def test_chunked_framing_is_the_same_in_any_split():
    raw = chunk(b"abc") + chunk(b"x" * 300) + b"5;ext=1\r\nhello\r\n" + b"0\r\nTrailer: t\r\n\r\n" + b"NEXT RESPONSE"
    whole = body_of([raw])
    assert whole == b"abc" + b"x" * 300 + b"hello"
    assert body_of([raw[i:i + 1] for i in range(len(raw))]) == whole
    assert body_of([raw[:7], raw[7:8], raw[8:311], raw[311:]]) == whole


def test_bad_chunk_size_is_a_protocol_error():
    with pytest.raises(http1.ProtocolError):
        http1.ChunkedDecoder().feed(b"zz\r\n")


class OneShotServer:
    """Accept one connection, read the request, then send `plan` = [(delay_s, bytes), ...], recording when."""

    def __init__(self, plan):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.plan, self.sent = plan, []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        conn, _ = self.sock.accept()
        with conn:
            buf = b""
            while b"\r\n\r\n" not in buf:
                buf += conn.recv(4096)
            self.got = time.time()
            for delay, data in self.plan:
                time.sleep(delay)
                self.sent.append(time.time())
                conn.sendall(data)
            time.sleep(0.5)


def exchange(server: OneShotServer, kernel_stamps: bool, read_after_s: float):
    conn = wire.Connection("127.0.0.1", server.port, 5, kernel_stamps)
    deadline = time.perf_counter() + 10
    conn.send(http1.request_bytes("POST", "/v1/audio/speech", "x", {}, b"{}"), deadline)
    resp = http1.Response(conn, deadline)
    time.sleep(read_after_s)  # a reader that is late, as a stalled loop would be
    pieces = list(resp.pieces(deadline))
    conn.close()
    server.thread.join(5)
    resp.sent_at = conn.sent_at
    return resp, pieces


@pytest.mark.skipif(wire.SO_TIMESTAMPNS is None, reason="no kernel receive stamps on this platform")
def test_kernel_stamp_is_the_arrival_not_the_read():
    server = OneShotServer([(0.0, HEAD), (0.05, chunk(b"\x01\x02" * 100) + b"0\r\n\r\n")])
    resp, pieces = exchange(server, kernel_stamps=True, read_after_s=0.4)
    assert resp.status == 200 and resp.head_clock == wire.KERNEL
    assert b"".join(p for p, _, _ in pieces) == b"\x01\x02" * 100
    (_, t, clock), = pieces
    assert clock == wire.KERNEL
    assert abs(t - server.sent[1]) < 0.005, "the stamp is when the bytes arrived, 0.4 s before they were read"
    assert resp.sent_at is not None and 0 <= server.got - resp.sent_at < 0.005  # the request's transmit stamp


def test_without_kernel_stamps_the_rows_time_is_the_read():
    server = OneShotServer([(0.0, HEAD), (0.05, chunk(b"\x01\x02" * 100) + b"0\r\n\r\n")])
    _, pieces = exchange(server, kernel_stamps=False, read_after_s=0.4)
    (_, t, clock), = pieces
    assert clock == wire.READ
    assert t - server.sent[1] > 0.3  # read late, timed late: what `clock = "read"` warns about


@pytest.mark.skipif(wire.SO_TIMESTAMPNS is None, reason="no kernel receive stamps on this platform")
def test_segments_read_together_carry_the_stamp_of_the_latest():
    # The platform fact the design rests on (wire's module docstring): TCP merges queued segments
    # and keeps the newest stamp, so a late reader cannot learn when the earlier ones came.
    server = OneShotServer([(0.0, HEAD), (0.05, chunk(b"a" * 50)), (0.15, chunk(b"b" * 50) + b"0\r\n\r\n")])
    _, pieces = exchange(server, kernel_stamps=True, read_after_s=0.5)
    stamps = {round(t, 4) for _, t, _ in pieces}
    assert len(stamps) == 1 and abs(stamps.pop() - server.sent[2]) < 0.005


def test_content_length_and_keep_alive():
    body = b'{"error": {"message": "queue full"}}'
    server = OneShotServer([(0.0, b"HTTP/1.1 503 Busy\r\nContent-Length: %d\r\nRetry-After: 1\r\n\r\n" % len(body) + body)])
    conn = wire.Connection("127.0.0.1", server.port, 5)
    deadline = time.perf_counter() + 5
    conn.send(http1.request_bytes("GET", "/", "x", {}, None), deadline)
    resp = http1.Response(conn, deadline)
    assert resp.status == 503 and resp.getheader("retry-after") == "1" and not resp.will_close
    assert resp.read(deadline, 1000) == body and resp.complete
    conn.close()


def test_a_deadline_bounds_every_wait():
    server = OneShotServer([(2.0, HEAD)])
    conn = wire.Connection("127.0.0.1", server.port, 5)
    deadline = time.perf_counter() + 0.3
    conn.send(http1.request_bytes("GET", "/", "x", {}, None), deadline)
    t0 = time.perf_counter()
    with pytest.raises(wire.RequestTimeout):
        http1.Response(conn, deadline)
    assert time.perf_counter() - t0 < 1.0
    conn.close()
