"""uvicorn's h11 protocol with a deadline for each request's head (the slowloris defence).

What uvicorn and h11 give, and what this adds:

- **Header size**: h11's `max_incomplete_event_size` (uvicorn's `h11_max_incomplete_event_size`)
  refuses a head that is still incomplete past that many bytes, so a trickled head cannot grow
  without bound; `serve` sets it to `max_header_bytes`. A head that arrives whole in one read is
  not measured by h11, so the service middleware also refuses any head over the limit (431).
- **Header timeout**: uvicorn has none. `timeout_keep_alive` closes a connection idle between
  requests, but it is cancelled by the first byte that arrives, so a client that sends one header
  byte every few seconds keeps a connection (and a file descriptor) forever. Here each
  connection gets `header_timeout_s` for its request head, counted from when it opened or from
  the end of its previous response; a head still incomplete then gets a 408 and the connection
  is closed. Once a head is complete the timer is off; the body has its own deadline in the
  middleware (`body_timeout_s`), where it can answer a JSON error.
- A request h11 cannot parse (a malformed request line, a head over the size limit) gets
  uvicorn's 400 in the service's JSON error shape instead of its plain-text one.
- **Lingering close** (RFC 9112 §9.6): after one of these error responses the connection is
  half-closed (FIN after the response) and what the client still sends is read and discarded
  until it closes or `LINGER_S` passes. Closing at once makes the kernel answer the client's
  next bytes with a reset, and a reset can discard the response before the client has read it:
  a trickling client then saw its connection reset instead of its 408.
- uvicorn is told to use h11 explicitly, so these limits hold whichever HTTP libraries happen
  to be installed (with httptools present, "auto" would pick a parser that ignores them).
"""

from __future__ import annotations

import asyncio
import json
import logging

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("vvbench.server")
LINGER_S = 2.0


def _error_response(status: bytes, message: str, param: str | None, code: str) -> bytes:
    """A whole HTTP/1.1 error response with the JSON error body, closing the connection."""
    body = json.dumps({"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}).encode()
    head = b"HTTP/1.1 %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % (status, len(body))
    return head + body


class HeadDeadlineProtocol(H11Protocol):
    """H11Protocol that closes a connection whose request head takes longer than `header_timeout_s`."""

    header_timeout_s: float = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_timer: asyncio.TimerHandle | None = None
        self._linger: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        if self._linger is not None:
            self._linger.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._linger is not None:
            return  # answered and half-closed: what the client still sends is discarded
        super().data_received(data)

    def shutdown(self) -> None:
        if self._linger is not None:
            self.transport.close()
            return
        super().shutdown()

    def _answer_and_close(self, response: bytes) -> None:
        """Write a whole response, then close without losing it (the lingering close above)."""
        self.transport.write(response)
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self._linger = self.loop.call_later(LINGER_S, self.transport.close)
        else:
            self.transport.close()

    def handle_events(self) -> None:
        super().handle_events()
        # A complete head moves the client out of IDLE (to SEND_BODY, or DONE without a body).
        if self.conn.their_state is not h11.IDLE:
            self._disarm_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm_head_timer()  # the next request on this connection gets its own deadline

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        timer = getattr(self, "_head_timer", None)
        if timer is not None:
            timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
        log.info("closing the connection from %s: no complete request head within %g s", client, self.header_timeout_s)
        self._answer_and_close(_error_response(b"408 Request Timeout", "the request headers did not arrive in time",
                                               "headers", "header_timeout"))

    def send_400_response(self, msg: str) -> None:
        self._disarm_head_timer()
        # h11 is in its ERROR state here, so it cannot frame a response; write it whole and close.
        self._answer_and_close(_error_response(b"400 Bad Request", f"{msg.rstrip('.')}: the request line or headers "
                                               "are malformed or too large", None, "invalid_http"))


def head_deadline_protocol(header_timeout_s: float) -> type[HeadDeadlineProtocol]:
    """A protocol class (what uvicorn's `Config(http=...)` takes) with this header timeout."""
    return type("HeadDeadlineProtocol", (HeadDeadlineProtocol,), {"header_timeout_s": float(header_timeout_s)})
