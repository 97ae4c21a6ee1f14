"""One pure-ASGI middleware: request ids, body-size limit, HTTP metrics.

- Every request gets an id (`X-Request-Id` on every response; the synthesis id is the same) and
  a start time in `scope["state"]`, which the speech route uses for time to first audio.
- Bodies: a `Content-Length` over the limit is refused (413) before a byte of the body is read;
  a chunked body is counted as it is read and refused as soon as it passes the limit, so a huge
  body is never buffered. The limit is the longest accepted input as escaped JSON plus 64 KiB
  (`ServiceSettings.max_body_bytes`).
- Metrics: status and duration (to the last byte, streaming included) per route template.
Pure ASGI rather than `BaseHTTPMiddleware`, which would buffer and break streaming responses.
"""

from __future__ import annotations

import json
import time
import uuid

from starlette.exceptions import HTTPException


class BodyTooLarge(HTTPException):
    """Raised while reading a body that passed the limit (FastAPI re-raises HTTPExceptions as is)."""

    def __init__(self, limit: int):
        super().__init__(413, f"request body is larger than {limit} bytes")


def _error_body(status: int, message: str, code: str) -> bytes:
    return json.dumps({"error": {"message": message, "type": "invalid_request_error", "param": "body", "code": code}}).encode()


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

        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            message = f"request body is larger than {limit} bytes" if declared.isdigit() else "invalid Content-Length"
            await self._reject(send_wrapper, 413 if declared.isdigit() else 400, message,
                               "body_too_large" if declared.isdigit() else "invalid_content_length")
            return

        received = 0

        async def receive_wrapper():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        try:
            await self.app(scope, receive_wrapper, send_wrapper)
        except BodyTooLarge as exc:
            if status["started"]:
                raise
            await self._reject(send_wrapper, 413, exc.detail, "body_too_large")
        finally:
            finish()

    @staticmethod
    async def _reject(send, status: int, message: str, code: str) -> None:
        body = _error_body(status, message, code)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
