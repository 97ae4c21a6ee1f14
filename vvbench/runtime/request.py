"""What a client hands the engine and what it gets back: requests, audio chunks, handles.

A `RequestHandle` is the client's side of one synthesis: iterate its chunks (blocking, or
`async for` from an asyncio loop), cancel it, read its timings. The engine thread pushes chunks
into the handle's channel; nothing here touches torch.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import os
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import numpy as np

from vvbench.core.audio import SAMPLE_RATE
from vvbench.core.errors import EngineError, RequestCancelled, VVBenchError

_ids = itertools.count(1)


class RequestState(str, enum.Enum):
    QUEUED = "queued"
    PREFILL = "prefill"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (RequestState.DONE, RequestState.FAILED, RequestState.CANCELLED)


@dataclass
class SynthesisRequest:
    """One synthesis: the text, who speaks it, its seed, and per-request knobs (None: engine's).

    `priority`: lower runs first (the service gives short interactive requests 0 and long-form
    jobs 1). `start_frame` resumes a request part-way (long-form jobs after a restart): frames
    before it are computed but not delivered, so the audio is identical to an uninterrupted run.
    `max_input_chars` and `timeout_s` override the engine's knobs for this request (the service's
    long-form jobs have their own, larger input limit, and no timeout).
    """

    text: str
    voice: str = "alloy"
    seed: int | None = None
    speed: float = 1.0
    diffusion_steps: int | None = None
    cfg_scale: float | None = None
    first_chunk_frames: int | None = None
    chunk_frames: int | None = None
    priority: int = 0
    start_frame: int = 0
    max_input_chars: int | None = None
    timeout_s: float | None = None
    request_id: str = field(default_factory=lambda: f"req-{os.getpid()}-{next(_ids)}")

    def resolved_seed(self) -> int:
        if self.seed is None:
            self.seed = int.from_bytes(os.urandom(4), "little")
        return self.seed


@dataclass
class AudioChunk:
    """A piece of a stream's audio: float32 samples in [-1, 1] at `sample_rate`, mono."""

    index: int
    audio: np.ndarray
    start_frame: int
    frames: int
    final: bool
    sample_rate: int = SAMPLE_RATE

    @property
    def duration_s(self) -> float:
        return len(self.audio) / self.sample_rate


_END = object()


class RequestHandle:
    """The client's side of a request: chunks, cancel, state and timings."""

    def __init__(self, request: SynthesisRequest, *, n_frames: int, samples_per_frame: int, sample_rate: int):
        self.request = request
        self.id = request.request_id
        self.n_frames = n_frames
        self.samples_per_frame = samples_per_frame
        self.sample_rate = sample_rate
        self.state = RequestState.QUEUED
        self.error: VVBenchError | None = None
        self.t_submit = time.monotonic()
        self.t_first_chunk: float | None = None
        self.t_done: float | None = None
        self.frames_done = 0
        self.stage_s: dict[str, float] = {"queue": 0.0}
        self._items: deque = deque()
        self._cond = threading.Condition()
        self._waker: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None
        self._cancel = threading.Event()

    # -- engine side ----------------------------------------------------------------------
    def _push(self, item: object) -> None:
        with self._cond:
            self._items.append(item)
            self._cond.notify_all()
            waker = self._waker
        if waker is not None:
            loop, event = waker
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # the consumer's loop has closed; nobody is listening
                pass

    def _deliver(self, chunk: AudioChunk) -> None:
        if self.t_first_chunk is None:
            self.t_first_chunk = time.monotonic()
        self._push(chunk)

    def _finish(self, state: RequestState, error: VVBenchError | None = None) -> None:
        if self.state.finished:
            return
        self.state = state
        self.error = error
        self.t_done = time.monotonic()
        self._push(_END)

    # -- client side ----------------------------------------------------------------------
    @property
    def expected_audio_s(self) -> float:
        return self.n_frames * self.samples_per_frame / self.sample_rate

    @property
    def progress(self) -> float:
        return 1.0 if self.state is RequestState.DONE else self.frames_done / max(1, self.n_frames)

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def cancel(self) -> None:
        """Ask the engine to drop this request; its slot is freed at the next frame boundary."""
        self._cancel.set()

    def _raise_if_failed(self) -> None:
        if self.state is RequestState.CANCELLED:
            raise self.error or RequestCancelled(f"request {self.id} was cancelled")
        if self.state is RequestState.FAILED:
            raise self.error or EngineError(f"request {self.id} failed")

    def chunks(self, timeout: float | None = None) -> Iterator[AudioChunk]:
        """Yield chunks as they are produced; raise if the request fails or is cancelled.

        A handle has one consumer: a chunk is handed out once and then dropped, so a long-form
        request never holds its whole audio in memory.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._cond:
                while not self._items:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        raise TimeoutError(f"no audio from request {self.id} within {timeout} s")
                    self._cond.wait(left)
                item = self._items.popleft()
            if item is _END:
                self._raise_if_failed()
                return
            yield item

    async def achunks(self) -> AsyncIterator[AudioChunk]:
        """`async for` over the chunks from an asyncio event loop (the service); one consumer."""
        event = asyncio.Event()
        with self._cond:
            self._waker = (asyncio.get_running_loop(), event)
        try:
            while True:
                with self._cond:
                    item = self._items.popleft() if self._items else None
                    if item is None:
                        event.clear()  # under the lock: a push after this sets it again
                if item is None:
                    await event.wait()
                    continue
                if item is _END:
                    self._raise_if_failed()
                    return
                yield item
        finally:
            with self._cond:
                self._waker = None

    def audio(self, timeout: float | None = None) -> np.ndarray:
        """All the audio, once the request has finished (blocking)."""
        parts = [c.audio for c in self.chunks(timeout)]
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    def timings(self) -> dict[str, float]:
        """Seconds per stage this request spent (queue, prefill, lm, diffusion, decode, ...)."""
        out = dict(self.stage_s)
        if self.t_first_chunk is not None:
            out["first_chunk"] = self.t_first_chunk - self.t_submit
        if self.t_done is not None:
            out["total"] = self.t_done - self.t_submit
        return out
