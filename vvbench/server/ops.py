"""Operations endpoints: health, readiness, metrics, stats, hot reconfiguration, voices, models.

- `/healthz`: 200 while the process is alive and the engine is not hung or dead; 503 when
  `stats()["hung"]` (the hang fault), when work waits and the engine made no progress for
  `health_stall_s`, or when the engine thread stopped or failed to start — so a watchdog's
  probes catch a stuck engine, not just a dead process.
- `/readyz`: 503 until the model is loaded and the warm-up request finished, and again while
  draining (SIGTERM) or once the engine's loop has stopped on a failure.
- With an API key configured, `/healthz`, `/readyz` and `/metrics` stay open (probes and
  Prometheus scrapes carry no credentials; the service binds loopback by default and these
  expose no request content); everything under `/v1` and `/admin` needs the key.
- `POST /admin/config` applies hot knobs (a JSON object of knob -> value, faults nested under
  `faults`); a restart-only knob is a 400 naming it. Values are validated strictly, as request
  bodies are (`"5"` is not a number), against the same finite bounds as flags and files. Fault
  knobs are a 403 naming `--allow-faults` unless the service was started with it. Admin itself
  needs the API key, or `--open-admin` (see `security.py`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request, Response
from fastapi.responses import JSONResponse

from vvbench.artifacts.stats import ServiceStats
from vvbench.core.errors import ConfigError
from vvbench.runtime.config import HOT_KNOBS, RuntimeConfig, merge, validate_config
from vvbench.runtime.voices import VOICES
from vvbench.server.errors import APIError, error_responses
from vvbench.server.schemas import Health, VoiceInfo, VoiceList

probes = APIRouter()
api = APIRouter()
admin = APIRouter()

_OPENAI_VOICES = {"alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse", "marin", "cedar"}
_HEALTH_503 = {503: {"model": Health, "description": "unhealthy / not ready"}}


@probes.get("/healthz", response_model=Health, responses=_HEALTH_503, operation_id="healthz")
async def healthz(request: Request):
    """Process alive and engine not hung (see the module docstring)."""
    ok, why = request.app.state.service.health()
    return JSONResponse({"status": "ok" if ok else "unhealthy", "detail": why}, status_code=200 if ok else 503)


@probes.get("/readyz", response_model=Health, responses=_HEALTH_503, operation_id="readyz")
async def readyz(request: Request):
    """Model loaded and warmed, and not draining."""
    service = request.app.state.service
    failure = service.load_error or service.engine_failure()
    if failure:
        return JSONResponse({"status": "failed", "detail": failure}, status_code=503)
    if service.draining:
        return JSONResponse({"status": "draining", "detail": "shutting down"}, status_code=503)
    if not service.ready:
        return JSONResponse({"status": "loading", "detail": "model loading or warming up"}, status_code=503,
                            headers={"Retry-After": "1"})
    return {"status": "ready", "detail": None}


@probes.get("/metrics", response_class=Response, operation_id="metrics",
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text format"}})
async def metrics(request: Request) -> Response:
    """Prometheus metrics (text exposition format)."""
    body = request.app.state.service.metrics.exposition()
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


@api.get("/v1/stats", response_model=ServiceStats, response_model_exclude_none=False, operation_id="stats",
         responses=error_responses(401, 429))
async def stats(request: Request) -> ServiceStats:
    """Engine stats (queue depth, active streams, batch sizes, per-stage seconds, memory, config) plus `service` counters."""
    service = request.app.state.service
    out: dict[str, Any] = service.engine.stats() if service.engine is not None else {"config": service.config.model_dump(mode="json")}
    out["service"] = service.service_stats()
    return ServiceStats.model_validate(out)


@api.get("/v1/voices", response_model=VoiceList, operation_id="listVoices", responses=error_responses(401, 429))
async def voices() -> VoiceList:
    """Voices this service accepts (OpenAI's names are built-in speakers; vv-* are the runtime's own)."""
    return VoiceList(data=[VoiceInfo(id=name, kind="openai" if name in _OPENAI_VOICES else "runtime") for name in VOICES])


@api.get("/v1/models", operation_id="listModels", responses=error_responses(401, 429))
async def models(request: Request) -> dict[str, Any]:
    """The one model this service runs (OpenAI's list shape); any `model` name is accepted in requests."""
    service = request.app.state.service
    return {"object": "list", "data": [{"id": service.config.preset, "object": "model", "owned_by": "vvbench"}]}


_PATCH = Body(..., description="hot knobs to change, e.g. {\"batch_window_ms\": 10, \"faults\": {\"noise_db\": -30}}; "
              "hot knobs: " + ", ".join(sorted(HOT_KNOBS)),
              openapi_examples={"window": {"value": {"batch_window_ms": 10}}})


@admin.post("/admin/config", operation_id="reconfigure", responses=error_responses(400, 401, 403, 429, 503))
async def reconfigure(request: Request, patch: dict[str, Any] = _PATCH) -> dict[str, Any]:
    """Apply hot knobs to the running engine; answers the whole new config."""
    service = request.app.state.service
    engine = service.require_engine()
    unknown = sorted(k for k in patch if k not in RuntimeConfig.model_fields)
    if unknown:
        raise APIError(400, f"{', '.join(unknown)}: unknown knob; knobs: {', '.join(RuntimeConfig.model_fields)}",
                       param=unknown[0], code="unknown_knob")
    cold = sorted(k for k in patch if k not in HOT_KNOBS)
    if cold:
        raise APIError(400, f"{', '.join(cold)}: needs a restart; hot knobs: {', '.join(sorted(HOT_KNOBS))}",
                       param=",".join(cold), code="restart_required")
    if "faults" in patch and not service.settings.allow_faults:
        service.count_rejection("faults_disabled")
        raise APIError(403, "faults: fault knobs are refused unless the service is started with --allow-faults",
                       type="permission_error", param="faults", code="faults_disabled")
    try:
        validate_config(merge(engine.config.model_dump(mode="json"), patch), strict=True)
        new = engine.reconfigure(patch)
    except ConfigError as exc:
        named = str(exc).split(":", 1)[0].split(".")[0]  # messages start with the dotted knob path
        raise APIError(400, str(exc), param=named if named in patch else next(iter(patch), None),
                       code="invalid_value") from None
    return {"config": new.model_dump(mode="json"), "changed": sorted(patch)}
