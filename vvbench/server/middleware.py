"""One pure-ASGI middleware: request ids, request-head checks, body limits, HTTP metrics.

- Every request gets an id (`X-Request-Id` on every response; the synthesis id is the same) and
  a start time in `scope["state"]`, which the speech route uses for time to first audio.
- Bodies: a `Content-Length` over the limit is refused (413) before a byte of the body is read;
  a chunked body is counted as it is read and refused as soon as it passes the limit, so a huge
  body is never buffered. The limit is the longest accepted input as escaped JSON plus 64 KiB
  (`ServiceSettings.max_body_bytes`).
- Heads: a request line plus headers over `max_header_bytes` is refused (431; h11 measures only
  heads still incomplete, see `protocol.py`); a request with both `Transfer-Encoding` and
  `Content-Length` is refused (400): proxies and servers disagree on which one frames the body,
  which is how requests are smuggled past a proxy.
- Body deadline: the body must be complete within `body_timeout_s` of the head; a body shorter
  than its Content-Length, or trickled, gets a 408 and the connection is closed. Reads after the
  body (the disconnect listener of a streamed response) are not timed.
- Metrics: status and duration (to the last byte, streaming included) per route template.
Pure ASGI rather than `BaseHTTPMiddleware`, which would buffer and break streaming responses.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid

from starlette.exceptions import HTTPException


class BodyTooLarge(HTTPException):
    """Raised while reading a body that passed the limit (FastAPI re-raises HTTPExceptions as is)."""

    def __init__(self, limit: int):
        super().__init__(413, f"request body is larger than {limit} bytes")


class BodyTimeout(HTTPException):
    """Raised while reading a body that did not arrive within the body deadline."""

    def __init__(self, timeout_s: float):
        super().__init__(408, f"the request body did not arrive within {timeout_s:g} s", headers={"Connection": "close"})


def _error_body(message: str, code: str, param: str) -> bytes:
    return json.dumps({"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}).encode()


def _head_bytes(scope) -> int:
    """Bytes of the request line's target and the headers, as sent (names, values, separators)."""
    target = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
    return target + sum(len(k) + len(v) + 4 for k, v in scope.get("headers", []))


def _head_problem(scope, max_header_bytes: int) -> tuple[int, str, str] | None:
    """(status, message, code) when the request head is refused, else None."""
    size = _head_bytes(scope)
    if size > max_header_bytes:
        return 431, f"the request headers are {size} bytes; the limit is {max_header_bytes}", "headers_too_large"
    names = {k.lower() for k, _ in scope.get("headers", [])}
    if b"transfer-encoding" in names and b"content-length" in names:
        return 400, "a request may not carry both Transfer-Encoding and Content-Length", "ambiguous_body_length"
    return None


class ServiceMiddleware:
    """See the module docstring."""

    def __init__(self, app, service):
        self.app = app
        self.service = service

    def _limit(self) -> int:
        engine = self.service.engine
        chars = engine.config.max_input_chars if engine is not None else self.service.config.max_input_chars
        return self.service.settings.max_body_bytes(chars)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.monotonic()
        request_id = f"req_{uuid.uuid4().hex[:24]}"
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["t_start"] = t0
        limit = self._limit()
        status = {"code": 500, "started": False, "done": False}
        metrics = self.service.metrics

        def finish() -> None:
            if status["done"] or metrics is None:
                return
            status["done"] = True
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            metrics.observe_http(path, scope.get("method", ""), status["code"], time.monotonic() - t0)

        async def send_wrapper(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                status["started"] = True
                headers = list(message.get("headers", []))
                if not any(k.lower() == b"x-request-id" for k, _ in headers):
                    headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                finish()

        settings = self.service.settings
        problem = _head_problem(scope, settings.max_header_bytes)
        if problem is not None:
            await self._reject(send_wrapper, *problem, param="headers")
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            message = f"request body is larger than {limit} bytes" if declared.isdigit() else "invalid Content-Length"
            await self._reject(send_wrapper, 413 if declared.isdigit() else 400, message,
                               "body_too_large" if declared.isdigit() else "invalid_content_length")
            return

        received = 0
        body_done = False
        body_deadline = t0 + settings.body_timeout_s

        async def receive_wrapper():
            nonlocal received, body_done
            if body_done:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, body_deadline - time.monotonic()))
            except asyncio.TimeoutError:
                raise BodyTimeout(settings.body_timeout_s) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
                body_done = not message.get("more_body", False)
            else:
                body_done = True
            return message

        try:
            await self.app(scope, receive_wrapper, send_wrapper)
        except (BodyTooLarge, BodyTimeout) as exc:
            if status["started"]:
                raise
            code = "body_too_large" if exc.status_code == 413 else "body_timeout"
            await self._reject(send_wrapper, exc.status_code, exc.detail, code)
        finally:
            finish()

    @staticmethod
    async def _reject(send, status: int, message: str, code: str, param: str = "body") -> None:
        body = _error_body(message, code, param)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
