"""OpenAI-style errors: every 4xx/5xx body is `{"error": {"message", "type", "param", "code"}}`.

`APIError` is what handlers raise; the exception handlers below turn it, the runtime's own errors
(`InputError` -> 400 naming its parameter, `CapacityError` -> 503 with `Retry-After`,
`ConfigError` -> 400, `SynthesisFailed` -> 500 saying what failed inside the engine, which
goes on serving), FastAPI's validation errors (malformed JSON, wrong types, missing or
unknown fields -> 400 naming the field, worded by `vvbench.core.validation` like every other
validation message, an unknown field with the body's allowed ones) and Starlette's routing
errors (404, 405 with `Allow`) into that shape. Validation problems are 400 rather than
FastAPI's 422, as OpenAI's API answers them; the OpenAPI document is rewritten to match (see
`app.py`).
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from vvbench.core.errors import CapacityError, ConfigError, EngineError, InputError, RequestCancelled, SynthesisFailed
from vvbench.core.validation import describe

log = logging.getLogger("vvbench.server")

INVALID = "invalid_request_error"
UNAVAILABLE = "service_unavailable_error"


class ErrorDetail(BaseModel):
    """The body of an error, as OpenAI's API writes it."""

    message: str = Field(description="what went wrong, for a person")
    type: str = Field(description="error class: invalid_request_error, authentication_error, rate_limit_error, service_unavailable_error, server_error")
    param: str | None = Field(None, description="the request parameter at fault (dotted for nested fields), when there is one")
    code: str | None = Field(None, description="a stable machine-readable code")


class ErrorResponse(BaseModel):
    """Every error response of the service."""

    error: ErrorDetail


class APIError(Exception):
    """An error answered to the client with `status`, the OpenAI error body and extra headers."""

    def __init__(self, status: int, message: str, *, type: str = INVALID, param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}


def retry_after(seconds: float) -> dict[str, str]:
    """A `Retry-After` header (whole seconds, at least 1)."""
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


def unavailable(message: str, code: str, retry_after_s: float = 1.0) -> APIError:
    """A 503 with Retry-After (queue full, memory guard, loading, draining, timed out)."""
    return APIError(503, message, type=UNAVAILABLE, code=code, headers=retry_after(retry_after_s))


def error_json(status: int, message: str, *, type: str = INVALID, param: str | None = None,
               code: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    """The JSON response for one error."""
    body = {"error": {"message": message, "type": type, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def error_for(exc: Exception) -> APIError:
    """Map the runtime's errors (and APIError itself) to the error a client gets."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, InputError):
        return APIError(400, str(exc), param=exc.param, code="invalid_value")
    if isinstance(exc, CapacityError):
        return unavailable(str(exc), "queue_full", exc.retry_after_s)
    if isinstance(exc, ConfigError):
        return APIError(400, str(exc), code="invalid_config")
    if isinstance(exc, RequestCancelled):  # timed out (request_timeout_s), or the engine is shutting down
        return unavailable(str(exc), "request_timeout" if "timed out" in str(exc) else "cancelled", 5.0)
    if isinstance(exc, SynthesisFailed):  # this request failed inside the engine; a retry may well work
        return APIError(500, str(exc), type="server_error", code="synthesis_failed")
    if isinstance(exc, EngineError):
        return unavailable(str(exc), "engine_unavailable", 5.0)
    return APIError(500, "internal error", type="server_error", code="internal_error")


_CODES = {"missing": "missing_required_parameter", "extra_forbidden": "unknown_parameter"}


def _body_model(request: Request) -> type[BaseModel] | None:
    """The pydantic model of the route's JSON body, when it has one (for listing allowed parameters)."""
    field = getattr(request.scope.get("route"), "body_field", None)
    ann = getattr(getattr(field, "field_info", None), "annotation", None)
    return ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None


def _describe(err: dict[str, Any], body_model: type[BaseModel] | None) -> tuple[str | None, str, str]:
    """(param, message, code) for one pydantic/FastAPI validation error (`vvbench.core.validation`)."""
    kind = err.get("type", "")
    loc = tuple(err.get("loc", ()))
    if kind == "json_invalid":
        return "body", f"the body is not valid JSON: {err.get('ctx', {}).get('error', err.get('msg'))}", "invalid_json"
    if kind == "missing" and loc in (("body",), ()):
        return "body", "a JSON object body is required", "missing_body"
    if len(loc) <= 1 and loc[:1] == ("body",):
        return "body", f"the body must be a JSON object: {err.get('msg')}", "invalid_body"
    where = loc[0] if loc and loc[0] in ("body", "path", "query", "header") else None
    problem = describe({**err, "loc": loc[1:] if where else loc}, body_model if where == "body" else None,
                       unknown="unknown parameter")
    return problem.path or None, str(problem), _CODES.get(kind, "invalid_value")


async def _validation_handler(request: Request, exc: RequestValidationError) -> JSONResponse:
    model = _body_model(request)
    described = [_describe(e, model) for e in exc.errors()] or [("body", "invalid request", "invalid_value")]
    param, _, code = described[0]
    message = "; ".join(dict.fromkeys(m for _, m, _ in described))
    return error_json(400, message, param=param, code=code)


async def _http_handler(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    codes = {404: "not_found", 405: "method_not_allowed", 408: "body_timeout", 413: "body_too_large"}
    message = exc.detail if isinstance(exc.detail, str) else "request failed"
    if exc.status_code == 404 and message == "Not Found":
        message = f"no route for {request.method} {request.url.path}"
    param = "body" if exc.status_code in (408, 413) else None
    code = codes.get(exc.status_code)
    if exc.status_code == 400 and message == "There was an error parsing the body":
        # FastAPI's words when json.loads fails other than by JSONDecodeError; the cause says how.
        message, param, code = _unparsable(exc.__cause__), "body", "invalid_json"
    return error_json(exc.status_code, message, param=param, code=code, headers=getattr(exc, "headers", None))


def _unparsable(cause: BaseException | None) -> str:
    if isinstance(cause, UnicodeDecodeError):
        return f"the body is not valid UTF-8 (byte {cause.start})"
    if isinstance(cause, RecursionError):
        return "the body's JSON is nested too deeply"
    return "the body could not be parsed as JSON"


async def _api_handler(request: Request, exc: Exception) -> JSONResponse:
    err = error_for(exc)
    if err.status >= 500:
        log.error("%s %s failed: %s", request.method, request.url.path, exc)
    return error_json(err.status, err.message, type=err.type, param=err.param, code=err.code, headers=err.headers)


async def _unexpected_handler(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error in %s %s", request.method, request.url.path)
    return error_json(500, "internal error", type="server_error", code="internal_error")


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that give every error the OpenAI shape."""
    app.add_exception_handler(RequestValidationError, _validation_handler)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_handler)  # type: ignore[arg-type]
    for cls in (APIError, InputError, CapacityError, ConfigError, RequestCancelled, EngineError):
        app.add_exception_handler(cls, _api_handler)
    app.add_exception_handler(Exception, _unexpected_handler)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries declaring the error shape for each status."""
    what = {
        400: "bad input: the error names the parameter", 401: "missing or wrong API key (Bearer)",
        403: "not enabled on this service (the message names the flag that enables it)",
        404: "no such job or chunk", 409: "the job is not in a state that allows this yet",
        413: "request body too large", 429: "over the rate limit; see Retry-After",
        503: "over capacity, over the memory guard, loading or draining; see Retry-After",
    }
    return {s: {"model": ErrorResponse, "description": what.get(s, "error")} for s in statuses}
