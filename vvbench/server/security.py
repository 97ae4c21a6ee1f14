"""Route dependencies: the API key (Bearer, as the openai client sends it), the admin gate and the rate limit.

`/admin/*` changes the service, so it is never open by accident: with an API key it needs the
key; without one it answers 403 saying how to enable it (`--api-key`, or `--open-admin` on a
loopback bind), unless the service was started with `open_admin`. `/v1/*` needs the key when
one is configured and is open otherwise.

The key check runs first, so a flood of unauthenticated requests gets 401s without spending a
key's tokens; the rate limit is keyed by the presented key, or by the client address when the
service has no key. The key is compared in constant time. Both are FastAPI dependencies, so the
OpenAPI document declares the bearer scheme on exactly the routes that need it (and only when a
key is configured).
"""

from __future__ import annotations

import hmac

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from vvbench.server.errors import APIError, retry_after

_bearer = HTTPBearer(auto_error=False, description="the service's API key (--api-key / VVBENCH_API_KEY)")


def _client_key(request: Request, token: str | None) -> str:
    if token:
        return "key:" + token
    client = request.client
    return "addr:" + (client.host if client else "unknown")


async def require_key(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
    """401 unless the request carries `Authorization: Bearer <key>` with the configured key."""
    service = request.app.state.service
    expected = service.settings.api_key
    presented = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(presented.encode(), expected.encode()):
        service.count_rejection("unauthorized")
        what = "missing API key" if credentials is None else "invalid API key"
        raise APIError(401, f"{what}: send Authorization: Bearer <key>", type="authentication_error",
                       code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})


async def rate_limit(request: Request) -> None:
    """429 with Retry-After when the caller's token bucket is empty."""
    service = request.app.state.service
    if service.limiter is None:
        return
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") and service.settings.api_key else None
    allowed, wait_s = service.limiter.check(_client_key(request, token))
    if not allowed:
        service.count_rejection("rate_limited")
        raise APIError(429, f"rate limit of {service.limiter.rate:g} requests/s (burst {service.limiter.burst}) exceeded",
                       type="rate_limit_error", code="rate_limit_exceeded", headers=retry_after(wait_s))


async def admin_enabled(request: Request) -> None:
    """403 when the service has no API key and admin was not opened explicitly."""
    service = request.app.state.service
    if not service.settings.open_admin:
        service.count_rejection("admin_disabled")
        raise APIError(403, "/admin is off: start the service with --api-key KEY (and send it as Bearer), "
                       "or with --open-admin on a loopback address", type="permission_error", code="admin_disabled")


def guards(api_key: str | None) -> list:
    """The dependencies for /v1 routes."""
    deps = [Depends(require_key)] if api_key else []
    return deps + [Depends(rate_limit)]


def admin_guards(api_key: str | None) -> list:
    """The dependencies for /admin routes: the key when there is one, else the explicit opening."""
    return [Depends(require_key) if api_key else Depends(admin_enabled), Depends(rate_limit)]
