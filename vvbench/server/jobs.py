"""Long-form jobs: `POST /v1/jobs`, status, chunks, whole audio, delete.

Choices: a job's input may be up to `max_job_chars` (default 86,000: 90 minutes of speech) — the
separate, larger limit is the point of a job; over it is a 400 naming `input`, as for speech. A
job whose KV caches the engine's memory budget could never hold is a 400 naming `input` with code
`exceeds_memory_budget`, before anything is stored; one that fits the budget but not what
running work leaves waits in the queue (`vvbench.runtime.memory_budget`). A job's seed is drawn at
creation when the client sends none, and its diffusion steps and CFG scale are resolved then, so
a resumed job computes exactly what it started computing. Ids look like `job_` + 32 hex digits;
a malformed id is a 400 naming `job_id`, an unknown one a 404. A chunk index past the job's last
chunk is a 404 naming `index`; a chunk not computed yet, or the whole audio of a job not done, is
a 409 (with Retry-After while the job may still finish). `DELETE` cancels an unfinished job and
removes its row and files; it answers with the state the job had (`cancelled` if unfinished).
A job's `response_format` is `wav` (the default, not OpenAI's speech default mp3) or `pcm`: chunks
are downloadable one by one and join into gapless audio, which compressed chunks, each with its
own encoder delay and padding, would not (see `schemas.JobRequest`).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import StreamingResponse

from vvbench.core.audio import SAMPLE_RATE, wav_header
from vvbench.core.errors import InputError
from vvbench.runtime.request import RequestState
from vvbench.runtime.text import plan_prosody
from vvbench.server.admission import request_priority
from vvbench.server.errors import APIError, error_responses, retry_after, unavailable
from vvbench.server.jobstore import JobRecord, config_fingerprint
from vvbench.server.schemas import JobDeleted, JobList, JobRequest, JobState, JobStatus
from vvbench.server.speech import check_input, resolve_voice
from vvbench.server.streaming import MEDIA_TYPES

router = APIRouter()

JOB_ID = Path(pattern=r"^job_[0-9a-f]{32}$", description="a job id (job_ + 32 hex digits)")
_AUDIO = {"description": "audio of the job's format (WAV or raw PCM16)",
          "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}},
                      "audio/pcm": {"schema": {"type": "string", "format": "binary"}}}}


def _status(rec: JobRecord, runner) -> JobStatus:
    state = rec.job_state
    frames = rec.frames_done
    handle = runner.live(rec.id) if runner is not None else None
    if handle is not None and state is JobState.RUNNING:
        if handle.state is RequestState.QUEUED:
            state = JobState.QUEUED  # handed to the engine, still waiting for a slot
        frames = max(frames, handle.frames_done)
    progress = 1.0 if state is JobState.DONE else min(1.0, frames / max(1, rec.n_frames))
    spf = rec.samples_per_frame
    return JobStatus(
        id=rec.id, state=state, progress=progress, chunks_ready=rec.chunks_ready, chunks_total=rec.chunks_total,
        audio_s=rec.frames_done * spf / SAMPLE_RATE, expected_audio_s=rec.n_frames * spf / SAMPLE_RATE,
        created_at=rec.created_at, updated_at=rec.updated_at, started_at=rec.started_at, finished_at=rec.finished_at,
        error=rec.error, model=rec.model, voice=rec.voice, seed=rec.seed, speed=rec.speed,
        response_format=rec.response_format, input_chars=len(rec.input), chunk_frames=rec.chunk_frames,
    )


def _get(request: Request, job_id: str) -> JobRecord:
    rec = request.app.state.service.jobs.store.get(job_id)
    if rec is None:
        raise APIError(404, f"no job {job_id}", param="job_id", code="job_not_found")
    return rec


def _new_record(service, body: JobRequest, voice: str) -> JobRecord:
    config = service.engine.config if service.engine is not None else service.config
    preset = config.preset_spec
    seed = body.seed if body.seed is not None else int.from_bytes(os.urandom(4), "little")
    plan = plan_prosody(body.input, speed=body.speed, sample_rate=SAMPLE_RATE, voice=voice)
    n_frames = plan.n_frames(preset.samples_per_frame)
    has_diffusion = preset.diffusion is not None
    now = time.time()
    return JobRecord(
        id=f"job_{uuid.uuid4().hex}", state=JobState.QUEUED.value, model=body.model, input=body.input, voice=voice,
        speed=body.speed, seed=seed, response_format=body.response_format,
        diffusion_steps=config.steps_for(len(body.input)) if has_diffusion else None,
        cfg_scale=config.effective_cfg_scale() if has_diffusion else None,
        n_frames=n_frames, samples_per_frame=preset.samples_per_frame,
        chunk_frames=service.settings.chunk_frames_for(preset.frame_rate_hz),
        created_at=now, updated_at=now, fingerprint=config_fingerprint(config),
    )


async def _check_memory(service, rec: JobRecord) -> None:
    """400 when the engine's memory budget can never hold the job (skipped while the engine loads:
    the runner then fails the job with the same message)."""
    engine = service.engine
    if engine is None:
        return
    background = request_priority(service.settings.short_first, job=True) > 0
    try:
        await asyncio.to_thread(engine.check_fits, rec.input, rec.n_frames, background=background)
    except InputError as exc:
        service.count_rejection("memory_budget")
        raise APIError(400, str(exc), param="input", code="exceeds_memory_budget") from None


@router.post("/v1/jobs", status_code=202, response_model=JobStatus, operation_id="createJob",
             responses=error_responses(400, 401, 413, 429, 503), summary="Start a long-form synthesis job")
async def create_job(body: JobRequest, request: Request, response: Response) -> JobStatus:
    """Accept a job (persisted before the answer), to be synthesised in the background."""
    service = request.app.state.service
    if service.draining:
        raise unavailable("the service is shutting down; retry on another instance", "draining", 5)
    failure = service.engine_failure()
    if failure is not None:  # an accepted job would fail at once; after a restart it could run
        raise unavailable(f"{failure}; the service needs a restart", "engine_unavailable", 30)
    check_input(body.input, service.settings.max_job_chars, "max_job_chars")
    voice = resolve_voice(body.voice_name())
    runner = service.jobs
    counts = runner.store.counts()
    if counts["queued"] + counts["running"] >= service.settings.max_jobs:
        service.count_rejection("job_queue_full")
        raise unavailable(f"{service.settings.max_jobs} jobs are already waiting", "job_queue_full", 30)
    rec = await asyncio.to_thread(_new_record, service, body, voice)
    await _check_memory(service, rec)
    await asyncio.to_thread(runner.store.create, rec)
    service.record_model(body.model)
    runner.notify()
    response.headers["Location"] = f"/v1/jobs/{rec.id}"
    response.headers["X-Seed"] = str(rec.seed)
    return _status(rec, runner)


@router.get("/v1/jobs", response_model=JobList, operation_id="listJobs", responses=error_responses(400, 401, 429))
async def list_jobs(request: Request, limit: int = Query(100, ge=1, le=1000, description="at most this many, newest first")) -> JobList:
    """Recent jobs, newest first."""
    runner = request.app.state.service.jobs
    return JobList(data=[_status(r, runner) for r in runner.store.recent(limit)])


@router.get("/v1/jobs/{job_id}", response_model=JobStatus, operation_id="getJob", responses=error_responses(400, 401, 404, 429))
async def get_job(request: Request, job_id: str = JOB_ID) -> JobStatus:
    """A job's state, progress (0-1), chunks ready and audio seconds so far."""
    return _status(_get(request, job_id), request.app.state.service.jobs)


@router.get("/v1/jobs/{job_id}/chunks/{index}", response_class=Response, operation_id="getJobChunk",
            responses={200: _AUDIO, **error_responses(400, 401, 404, 409, 429)})
async def get_chunk(request: Request, job_id: str = JOB_ID,
                    index: int = Path(ge=0, le=100_000_000, description="chunk index, from 0")) -> Response:
    """One persisted chunk, as a complete WAV (or raw PCM for pcm jobs)."""
    rec = _get(request, job_id)
    if index >= rec.chunks_total:
        raise APIError(404, f"job {job_id} has {rec.chunks_total} chunks (0..{rec.chunks_total - 1})", param="index", code="chunk_not_found")
    if index >= rec.chunks_ready:
        headers = retry_after(5) if not rec.job_state.finished else None
        raise APIError(409, f"chunk {index} is not ready ({rec.chunks_ready} of {rec.chunks_total} ready; job {rec.state})",
                       param="index", code="chunk_not_ready", headers=headers)
    store = request.app.state.service.jobs.store
    pcm = await asyncio.to_thread(store.read_chunk, job_id, index)
    body = wav_header(SAMPLE_RATE, len(pcm) // 2) + pcm if rec.response_format == "wav" else pcm
    return Response(body, media_type=MEDIA_TYPES[rec.response_format], headers={"X-Seed": str(rec.seed)})


@router.get("/v1/jobs/{job_id}/audio", response_class=Response, operation_id="getJobAudio",
            responses={200: _AUDIO, **error_responses(400, 401, 404, 409, 429)})
async def get_audio(request: Request, job_id: str = JOB_ID) -> Response:
    """The whole audio of a finished job (409 until it is done)."""
    rec = _get(request, job_id)
    if rec.job_state is not JobState.DONE:
        headers = None if rec.job_state.finished else retry_after(10)
        raise APIError(409, f"job {job_id} is {rec.state}; its audio is available once it is done",
                       param="job_id", code="job_not_done", headers=headers)
    store = request.app.state.service.jobs.store
    sizes = await asyncio.to_thread(store.chunk_sizes, job_id, rec.chunks_ready)
    head = wav_header(SAMPLE_RATE, sum(sizes) // 2) if rec.response_format == "wav" else b""

    def body():
        yield head
        for i in range(rec.chunks_ready):
            yield store.read_chunk(job_id, i)

    return StreamingResponse(body(), media_type=MEDIA_TYPES[rec.response_format],
                             headers={"Content-Length": str(len(head) + sum(sizes)), "X-Seed": str(rec.seed)})


@router.delete("/v1/jobs/{job_id}", response_model=JobDeleted, operation_id="deleteJob",
               responses=error_responses(400, 401, 404, 429))
async def delete_job(request: Request, job_id: str = JOB_ID) -> JobDeleted:
    """Cancel the job if unfinished, and delete it and its audio."""
    rec = _get(request, job_id)
    rec = await request.app.state.service.jobs.remove(job_id) or rec  # it may have finished meanwhile
    state = rec.job_state if rec.job_state.finished else JobState.CANCELLED
    return JobDeleted(id=job_id, state=state)
