"""Runs persisted long-form jobs on the engine, at most `max_job_streams` at a time.

Each job is one engine request for its whole text (the engine keeps one context for the whole
script, so a multi-speaker podcast keeps its speakers), submitted with the job's stored seed and
resolved knobs, with `first_chunk_frames = chunk_frames = job chunk size` so every chunk but the
last is the same length, at priority 1 under short-first, and without a timeout. Chunks are
persisted as they arrive (`JobStore.add_chunk`). A job interrupted by a restart is resubmitted
with `start_frame = chunks_ready * chunk_frames`: the engine recomputes the frames before it and
delivers only the rest, so the finished audio is bit-identical to an uninterrupted run.

A job whose caches do not fit the engine's memory budget next to running work waits in the
engine's queue (it reads `queued`) until they do; one that can never fit fails with the engine's
message (the jobs route refuses such a job before storing it, when the engine is up).

Scheduling is a loop woken by new jobs and finished ones (and every second, to retry jobs that
met a full queue or the memory guard). Stopping cancels the running requests and leaves their
jobs queued for the next start; persisted chunks are kept.
"""

from __future__ import annotations

import asyncio
import logging
import math

from vvbench.core.audio import SAMPLE_RATE, to_pcm16
from vvbench.core.errors import CapacityError, RequestCancelled, VVBenchError
from vvbench.runtime.request import RequestHandle, RequestState, SynthesisRequest
from vvbench.server.admission import request_priority
from vvbench.server.jobstore import JobRecord, JobStore, config_fingerprint
from vvbench.server.schemas import JobState

log = logging.getLogger("vvbench.server.jobs")

STOP_WAIT_S = 5.0


class JobRunner:
    """Submits queued jobs to the engine and persists their chunks (see the module docstring)."""

    def __init__(self, service, store: JobStore):
        self.service = service
        self.store = store
        self.engine = None
        self._tasks: dict[str, asyncio.Task] = {}
        self._handles: dict[str, RequestHandle] = {}
        self._withdrawn: set[str] = set()  # jobs being deleted: never scheduled again
        self._wake = asyncio.Event()
        self._paused = False
        self._scheduler: asyncio.Task | None = None

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self, engine) -> None:
        """Resume unfinished jobs and start scheduling."""
        self.engine = engine
        requeued = self.store.requeue_running()
        pending = self.store.unfinished()
        if pending:
            log.info("%d unfinished jobs (%d were running) will resume", len(pending), requeued)
        now_fp = config_fingerprint(engine.config)
        for rec in pending:
            if rec.fingerprint != now_fp and rec.frames_done:
                log.warning("job %s was started with %s and resumes with %s: its audio may not match an "
                            "uninterrupted run", rec.id, rec.fingerprint, now_fp)
        self._scheduler = asyncio.create_task(self._schedule(), name="vvbench-jobs")

    def notify(self) -> None:
        """Something changed (new job, finished job): look at the queue now."""
        self._wake.set()

    def pause(self) -> None:
        """Start no more jobs (draining); running ones go on until `stop`."""
        self._paused = True

    async def stop(self) -> None:
        """Cancel running job requests and leave their jobs queued for the next start."""
        self._paused = True
        if self._scheduler is not None:
            self._scheduler.cancel()
        for handle in list(self._handles.values()):
            handle.cancel()
        tasks = list(self._tasks.values())
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=STOP_WAIT_S)
            for task in late:  # the engine is not answering (hung): stop waiting for it
                task.cancel()
        n = self.store.requeue_running()
        if n:
            log.info("%d running jobs left queued; they resume on the next start", n)

    async def remove(self, job_id: str) -> JobRecord | None:
        """Delete a job: cancel its running request, wait until it stopped writing, drop its row and files.

        Returns the job as it was once its request had stopped (it may have finished meanwhile).
        The job is withdrawn first, so it is never scheduled again while its row still exists:
        the consumer's end wakes the scheduler, which would otherwise submit the unfinished job
        anew and leave a request running for a job that no longer exists (a ghost slot).
        """
        self._withdrawn.add(job_id)
        try:
            handle = self._handles.get(job_id)
            task = self._tasks.get(job_id)
            if handle is not None:
                handle.cancel()
            if task is not None:
                _, late = await asyncio.wait({task}, timeout=STOP_WAIT_S)
                for t in late:
                    t.cancel()
            rec = self.store.get(job_id)
            await asyncio.to_thread(self.store.delete, job_id)
            return rec
        finally:
            self._withdrawn.discard(job_id)

    # -- what the routes read -------------------------------------------------------------
    def live(self, job_id: str) -> RequestHandle | None:
        return self._handles.get(job_id)

    def counts(self) -> dict:
        out = self.store.counts()
        out["streams"] = len(self._tasks)
        return out

    # -- scheduling -----------------------------------------------------------------------
    async def _schedule(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self._fill()
            except Exception:  # noqa: BLE001 - keep scheduling; the next tick retries
                log.exception("job scheduling failed")
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=1.0)
            except asyncio.TimeoutError:
                pass

    async def _fill(self) -> None:
        if self._paused or self.engine is None:
            return
        limit = self.service.settings.job_streams(self.engine.config.max_batch)
        if len(self._tasks) >= limit:
            return
        for rec in self.store.unfinished():
            if len(self._tasks) >= limit:
                return
            if rec.id in self._tasks or rec.id in self._withdrawn:
                continue
            if self.service.memory_over():
                return
            try:
                # submit plans the whole text (about 0.3 s per 100k characters): off the event loop
                handle = await asyncio.to_thread(self.engine.submit, self._request(rec))
            except CapacityError:
                return  # the queue is full: try again on the next tick
            except VVBenchError as exc:
                log.warning("job %s cannot run: %s", rec.id, exc)
                self.store.set_state(rec.id, JobState.FAILED, error=str(exc))
                continue
            if rec.id in self._withdrawn or self.store.get(rec.id) is None:
                handle.cancel()  # deleted while it was being submitted: let the engine free the slot
                continue
            self.store.set_state(rec.id, JobState.RUNNING)
            self._handles[rec.id] = handle
            self._tasks[rec.id] = asyncio.create_task(self._consume(rec, handle), name=f"job-{rec.id}")

    def _request(self, rec: JobRecord) -> SynthesisRequest:
        start = min(rec.n_frames, rec.chunks_ready * rec.chunk_frames)
        if start:
            log.info("job %s resumes at frame %d of %d (chunk %d)", rec.id, start, rec.n_frames, rec.chunks_ready)
        priority = request_priority(self.service.settings.short_first, job=True)
        return SynthesisRequest(
            text=rec.input, voice=rec.voice, seed=rec.seed, speed=rec.speed,
            diffusion_steps=rec.diffusion_steps, cfg_scale=rec.cfg_scale,
            first_chunk_frames=rec.chunk_frames, chunk_frames=rec.chunk_frames,
            priority=priority, start_frame=start, max_input_chars=max(len(rec.input), 1),
            timeout_s=math.inf, request_id=f"{rec.id}@{start}",
        )

    async def _consume(self, rec: JobRecord, handle: RequestHandle) -> None:
        metrics = self.service.metrics
        try:
            async for chunk in handle.achunks():
                index = chunk.start_frame // rec.chunk_frames
                pcm = to_pcm16(chunk.audio)
                ok = await asyncio.to_thread(self.store.add_chunk, rec.id, index, chunk.frames, pcm, final=chunk.final)
                if not ok:
                    handle.cancel()
                    return
                if metrics is not None:
                    metrics.job_audio.inc(chunk.duration_s)
            if handle.state is RequestState.DONE:
                log.info("job %s done (%.1f s of audio)", rec.id, rec.n_frames * rec.samples_per_frame / SAMPLE_RATE)
                if metrics is not None:
                    metrics.observe_synthesis("job", "ok", None, handle.timings().get("total", 0.0), 0.0)
        except RequestCancelled:
            pass  # DELETE removes the job; a shutdown leaves it queued to resume
        except VVBenchError as exc:
            log.error("job %s failed: %s", rec.id, exc)
            self.store.set_state(rec.id, JobState.FAILED, error=str(exc))
            if metrics is not None:
                metrics.observe_synthesis("job", "failed", None, handle.timings().get("total", 0.0), 0.0)
        finally:
            self._tasks.pop(rec.id, None)
            self._handles.pop(rec.id, None)
            self.notify()
