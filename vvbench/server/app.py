"""`create_app`: the FastAPI application around one engine.

Lifespan: open the job store, start loading and warming the engine in the background (the port
answers meanwhile; see `service.py`), start the job runner once ready; on shutdown persist jobs
and close the engine. The OpenAPI document is rewritten so that it tells the truth about errors:
FastAPI's 422 entries are removed (validation errors are 400 with the OpenAI error shape, which
every route declares) and 404/405/413 are declared where they can happen. OpenAPI links say how
the job operations chain (a created job's `id` is what GET, DELETE, its chunks and its audio
take; a deleted one can be read again), so that clients and stateful fuzzers can follow them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from fastapi import FastAPI

from vvbench import __version__
from vvbench.runtime.config import RuntimeConfig
from vvbench.server import jobs, ops, page, speech
from vvbench.server.engine import SpeechEngine
from vvbench.server.errors import ErrorResponse, install_error_handlers
from vvbench.server.jobrunner import JobRunner
from vvbench.server.jobstore import JobStore
from vvbench.server.metrics import ServiceMetrics
from vvbench.server.middleware import ServiceMiddleware
from vvbench.server.security import admin_guards, guards
from vvbench.server.service import Service
from vvbench.server.settings import ServiceSettings, check_exposure

log = logging.getLogger("vvbench.server")

DESCRIPTION = (
    "Reference TTS service of vvbench: OpenAI-compatible `/v1/audio/speech` (plus `seed` and `stream`), "
    "long-form jobs persisted across restarts, admission control, health, readiness and metrics. "
    "Every error is `{\"error\": {\"message\", \"type\", \"param\", \"code\"}}`."
)


def create_app(config: RuntimeConfig, data_dir: str | Path | None = None, api_key: str | None = None,
               settings: ServiceSettings | None = None, engine: SpeechEngine | None = None) -> FastAPI:
    """Build the app. `settings` carries every service option; `data_dir`/`api_key` override it.

    `engine` (any `SpeechEngine`, e.g. a real `Engine` built by the caller) replaces the one the
    service would build from `config`; the caller keeps it and closes it (see `server.engine`).
    """
    settings = settings or ServiceSettings()
    overrides = {k: v for k, v in (("data_dir", data_dir), ("api_key", api_key)) if v is not None}
    if overrides:
        settings = settings.model_copy(update=overrides)
    config = engine.config if engine is not None else config
    check_exposure(settings, config.faults.any_set())
    service = Service(config, settings, engine)
    service.metrics = ServiceMetrics(service)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        store = JobStore(settings.data_dir)
        service.jobs = JobRunner(service, store)
        starter = asyncio.create_task(service.start(), name="vvbench-start")
        try:
            yield
        finally:
            service.begin_drain()
            if not starter.done():
                await asyncio.wait({starter}, timeout=600)
            await service.stop()
            store.close()
            log.info("stopped")

    # redirect_slashes off: Starlette's trailing-slash 307 builds its Location from the client's
    # Host header; an unknown path is a 404 JSON error instead.
    app = FastAPI(title="vvbench TTS service", version=__version__, description=DESCRIPTION, lifespan=lifespan,
                  redirect_slashes=False)
    app.state.service = service
    install_error_handlers(app)
    app.add_middleware(ServiceMiddleware, service=service)
    app.include_router(ops.probes)
    app.include_router(page.router)  # the page at / holds no data: open like the probes
    deps = guards(settings.api_key)
    for router in (speech.router, jobs.router, ops.api):
        app.include_router(router, dependencies=deps)
    app.include_router(ops.admin, dependencies=admin_guards(settings.api_key))
    _rewrite_openapi(app)
    return app


def _rewrite_openapi(app: FastAPI) -> None:
    original = app.openapi

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        comps = schema.setdefault("components", {}).setdefault("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            comps.pop(name, None)
        comps.setdefault("ErrorResponse", ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}"))
        ref = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}}
        for item in schema.get("paths", {}).values():
            for method, op in item.items():
                responses = op.setdefault("responses", {})
                responses.pop("422", None)
                responses.setdefault("404", {"description": "no such route or resource", **ref})
                responses.setdefault("405", {"description": "method not allowed", **ref})
                if method in ("post", "put", "patch"):
                    responses.setdefault("400", {"description": "bad input", **ref})
                    responses.setdefault("413", {"description": "request body too large", **ref})
        _add_job_links(schema)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _add_job_links(schema: dict) -> None:
    """OpenAPI links from a job's id (in createJob's and deleteJob's answers) to the operations that take it."""
    by_id = {op.get("operationId"): op for item in schema.get("paths", {}).values() for op in item.values()
             if isinstance(op, dict)}
    job_id = {"job_id": "$response.body#/id"}
    targets = {"getJob": job_id, "getJobAudio": job_id, "getJobChunk": {**job_id, "index": 0}, "deleteJob": job_id}
    for source, status, names in (("createJob", "202", ("getJob", "getJobAudio", "getJobChunk", "deleteJob")),
                                  ("deleteJob", "200", ("getJob", "deleteJob"))):
        response = by_id.get(source, {}).get("responses", {}).get(status)
        if response is not None:
            response["links"] = {name[0].upper() + name[1:]: {"operationId": name, "parameters": targets[name]}
                                 for name in names if name in by_id}
