"""HTTP limits of a real `vvbench serve` on a real socket: slowloris, slow bodies, heads h11 parses.

One server with short deadlines (`--header-timeout-s 2 --body-timeout-s 2`) so that each case
takes seconds. What each timing case waits for: the server's 408 or its closing the socket,
read with a socket timeout well past the deadline; a case fails when a connection is still open
then, or was answered before its deadline.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import pytest

HEADER_TIMEOUT_S = 2.0
BODY_TIMEOUT_S = 2.0
LATE_S = 3.0  # a deadline is met when the connection is closed by deadline + this (the loop may be busy)


@pytest.fixture(scope="module")
def limited(serve_factory):
    return serve_factory.start("--header-timeout-s", str(HEADER_TIMEOUT_S), "--body-timeout-s", str(BODY_TIMEOUT_S),
                               "--max-batch", "2", name="limits")


def _address(server) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").split(":")
    return host, int(port)


def _read_until_closed(sock: socket.socket, limit_s: float) -> bytes:
    """Everything the server sends until it closes the connection (TimeoutError past `limit_s`)."""
    sock.settimeout(limit_s)
    data = b""
    while True:
        more = sock.recv(65536)
        if not more:
            return data
        data += more


def _json_error(reply: bytes) -> dict:
    head, _, body = reply.partition(b"\r\n\r\n")
    assert b"application/json" in head.lower(), reply[:300]
    return json.loads(body)["error"]


class Trickler(threading.Thread):
    """A slowloris connection: a request head sent one byte every `every_s`, never finished."""

    def __init__(self, address, every_s: float = 0.25, run_s: float = 20.0):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(address, timeout=10)
        self.every_s, self.run_s = every_s, run_s
        self.t_open = time.monotonic()
        self.t_closed: float | None = None
        self.reply = b""

    def run(self) -> None:
        head = b"GET /v1/stats HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10_000
        try:
            for byte in head:
                self.sock.sendall(bytes([byte]))
                self.sock.settimeout(self.every_s)
                try:
                    more = self.sock.recv(4096)
                except TimeoutError:
                    more = None
                if more is not None:  # the server answered or closed: the attack is over for us
                    self.reply = more + (_read_until_closed(self.sock, 5) if more else b"")
                    break
                if time.monotonic() - self.t_open > self.run_s:
                    return
        except OSError:
            pass  # reset by the server while we were still writing
        self.t_closed = time.monotonic()
        self.sock.close()


def test_a_client_still_sending_after_its_408_can_read_it(limited):
    """The lingering close: after the 408 the server half-closes and discards, so the client's writes do not reset the reply away."""
    sock = socket.create_connection(_address(limited), timeout=10)
    try:
        sock.sendall(b"GET /v1/stats HTTP/1.1\r\nHost: x\r\nX-Slow: a")
        time.sleep(HEADER_TIMEOUT_S + 1.0)  # the 408 arrives meanwhile, unread
        for _ in range(10):  # a client still writing its request (a closed socket would answer with a reset, then EPIPE)
            sock.sendall(b"a" * 100)
            time.sleep(0.05)
        reply = _read_until_closed(sock, 5)
    finally:
        sock.close()
    assert reply.split(b"\r\n", 1)[0] == b"HTTP/1.1 408 Request Timeout", reply[:80]
    assert _json_error(reply)["code"] == "header_timeout"


def test_slowloris_connections_are_closed_after_the_header_timeout_and_normal_requests_stay_fast(limited):
    address = _address(limited)
    attackers = [Trickler(address) for _ in range(20)]
    for t in attackers:
        t.start()
    healthz_s, speech = [], []
    with httpx.Client(base_url=limited.url, timeout=30) as c:
        t_end = time.monotonic() + HEADER_TIMEOUT_S + LATE_S
        while time.monotonic() < t_end:
            t0 = time.monotonic()
            assert c.get("/healthz").status_code == 200
            healthz_s.append(time.monotonic() - t0)
            if len(speech) < 2:
                t0 = time.monotonic()
                resp = c.post("/v1/audio/speech", json={"input": "Still served.", "stream": False})
                speech.append((resp.status_code, time.monotonic() - t0))
            time.sleep(0.1)
    for t in attackers:
        t.join(timeout=10)
    lived = [t.t_closed - t.t_open for t in attackers if t.t_closed is not None]
    assert len(lived) == 20, f"{20 - len(lived)} slowloris connections still open"
    assert min(lived) >= HEADER_TIMEOUT_S - 0.1 and max(lived) <= HEADER_TIMEOUT_S + LATE_S, lived
    assert all(b" 408 " in t.reply.split(b"\r\n", 1)[0] for t in attackers), [t.reply[:40] for t in attackers]
    assert _json_error(attackers[0].reply)["code"] == "header_timeout"
    assert max(healthz_s) < 1.0, healthz_s
    assert [code for code, _ in speech] == [200, 200] and max(s for _, s in speech) < 10.0, speech


def test_a_connection_that_sends_nothing_is_closed(limited):
    with socket.create_connection(_address(limited), timeout=10) as sock:
        t0 = time.monotonic()
        reply = _read_until_closed(sock, HEADER_TIMEOUT_S + LATE_S)
        assert HEADER_TIMEOUT_S - 0.1 <= time.monotonic() - t0 and reply.startswith(b"HTTP/1.1 408")


def test_the_next_request_on_a_kept_alive_connection_has_its_own_head_deadline(limited):
    with socket.create_connection(_address(limited), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _read_response(sock).startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # the second head never ends
        t0 = time.monotonic()
        reply = _read_until_closed(sock, HEADER_TIMEOUT_S + LATE_S)
        assert time.monotonic() - t0 <= HEADER_TIMEOUT_S + LATE_S and reply.startswith(b"HTTP/1.1 408"), reply[:100]


def test_a_body_shorter_than_its_content_length_gets_408(limited):
    with socket.create_connection(_address(limited), timeout=10) as sock:
        sock.sendall(b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{\"input\": ")
        t0 = time.monotonic()
        reply = _read_until_closed(sock, BODY_TIMEOUT_S + LATE_S)
        assert time.monotonic() - t0 >= BODY_TIMEOUT_S - 0.1
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
    err = _json_error(reply)
    assert err["param"] == "body" and err["code"] == "body_timeout"


@pytest.mark.parametrize("request_bytes, status, param, code", [
    # a head that arrives whole is not measured by h11: the service refuses it
    (b"GET /v1/stats HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", b"431", "headers", "headers_too_large"),
    # a head still incomplete past the limit is h11's: the same JSON shape
    (b"GET /v1/stats HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000, b"400", None, "invalid_http"),
    (b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
     b"Content-Length: 18\r\n\r\n12\r\n{\"input\": \"hello\"}\r\n0\r\n\r\n", b"400", "headers", "ambiguous_body_length"),
    (b"GET /v1/stats/ HTTP/1.1\r\nHost: evil.example\r\n\r\n", b"404", None, "not_found"),
    (b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n", b"404", None, "not_found"),  # / is the page
    (b"NONSENSE\r\n\r\n", b"400", None, "invalid_http"),
], ids=["70KB-head", "trickled-20KB-head", "te-and-cl", "trailing-slash-evil-host", "unknown-path", "garbage"])
def test_heads_on_a_real_socket(limited, request_bytes, status, param, code):
    with socket.create_connection(_address(limited), timeout=10) as sock:
        sock.sendall(request_bytes)
        reply = _read_response(sock)
    head = reply.split(b"\r\n\r\n", 1)[0].lower()
    assert reply.startswith(b"HTTP/1.1 " + status), reply[:200]
    assert b"\r\nlocation:" not in head
    err = _json_error(reply)
    assert err["param"] == param and err["code"] == code, err


def _read_response(sock: socket.socket) -> bytes:
    """One whole response: the head, then Content-Length bytes of body (or until the server closes)."""
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        if not more:
            return data
        data += more
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
    while len(body) < length:
        more = sock.recv(65536)
        if not more:
            break
        body += more
    return head + b"\r\n\r\n" + body
