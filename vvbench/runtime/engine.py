"""The engine: continuous batching at frame granularity around the reference model.

One background thread owns the model. Each iteration it (1) expires, cancels and admits
requests — new requests join the running batch at the next frame boundary, an idle engine waits
up to `batch_window_ms` for more arrivals before stepping a new batch, and a request is admitted
only when its KV caches fit the memory budget (`vvbench.runtime.memory_budget`: one that could
never fit is refused at submission, one that fits later waits in the queue); (2) prefills the
prompts of newly admitted streams in chunks, highest priority first, within a time budget
(`vvbench.runtime.prefill`), so a long-form prompt never stalls the running streams for long;
(3) steps every stream whose prompt is in by one frame; (4) hands out chunks
(`first_chunk_frames`, then every `chunk_frames`) and frees finished slots and their memory.
A new stream's prompt and caches are built outside the engine's lock, so `stats()` (and the
service's `/healthz`) never wait on the allocation of a long job's caches.

Clients use `submit()` -> `RequestHandle` (iterate chunks, cancel), `stats()`, `reconfigure()`
for the hot knobs, and `close()`. Bad input raises `InputError`, a full queue `CapacityError`.

Failure isolation: an exception while admitting a request, prefilling it, delivering its frame
or finishing it fails that request alone (`SynthesisFailed`, saying why); one in a batched step
fails the streams of that step, which shared its tensors. The loop goes on, unless
`MAX_FAILED_STEPS` steps fail in a row: then the model itself is broken (a CUDA fault is sticky),
and the loop stops as it does on any exception that escapes it — every waiting and running
request ends with `EngineError` at once (none hangs), `alive` turns False for `/healthz`, and
new requests are refused.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

import numpy as np
import torch

from vvbench.core.audio import SAMPLE_RATE
from vvbench.core.errors import CapacityError, ConfigError, EngineError, InputError, RequestCancelled, SynthesisFailed
from vvbench.runtime.checks import check_request
from vvbench.runtime.config import HOT_KNOBS, RuntimeConfig, merge, validate_config
from vvbench.runtime.faults import FaultInjector
from vvbench.runtime.loader import LoadedModel, load_model
from vvbench.runtime.memory_budget import build_budget, request_need_bytes, reserve_bytes
from vvbench.runtime.prefill import PrefillBudget
from vvbench.runtime.prompt import PromptBuilder
from vvbench.runtime.request import RequestHandle, RequestState, SynthesisRequest
from vvbench.runtime.stepper import STAGES, FrameStepper
from vvbench.runtime.stream import Stream
from vvbench.runtime.synth import StreamSynth
from vvbench.runtime.text import plan_prosody

log = logging.getLogger("vvbench.engine")

MAX_FAILED_STEPS = 3


class Engine:
    """Continuous-batching TTS engine over the reference model (see module docstring)."""

    def __init__(self, config: RuntimeConfig | None = None, *, start: bool = True,
                 memory_budget_bytes: int | None = None):
        self.config = config or RuntimeConfig()
        for note in self.config.notes():
            log.warning(note)
        if self.config.threads:
            torch.set_num_threads(self.config.threads)
        self.loaded: LoadedModel = load_model(self.config)
        self.preset = self.loaded.preset
        self.device = self.loaded.device
        self.prompts = PromptBuilder(self.loaded)
        self.stepper = FrameStepper(self.loaded, slots=self.config.max_batch, batch_invariant=self.config.batch_invariant)
        self.faults = FaultInjector(self.device)
        self.memory = build_budget(self.loaded, self.config, memory_budget_bytes)
        self._prefill_budget = PrefillBudget()
        self._lock = threading.Condition()
        self._pending: list[tuple[int, int, Stream | None, RequestHandle]] = []
        self._seq = 0
        self._slots: list[Stream | None] = [None] * self.config.max_batch
        self._starting: dict[int, RequestHandle] = {}  # slots whose stream is being built
        self._held_for_memory = 0
        self._stop = False
        self._failure: str | None = None
        self._started_at = time.time()
        self._last_progress = time.monotonic()
        self._counts: Counter = Counter()
        self._batch_sizes: Counter = Counter()
        self._stage_s: dict[str, float] = {k: 0.0 for k in STAGES}
        self._frames = 0
        self._steps = 0
        self._failed_steps = 0  # in a row
        self._prefill_tokens = 0
        self._max_iteration_s = 0.0
        self._thread = threading.Thread(target=self._run, name="vvbench-engine", daemon=True)
        if start:
            self._thread.start()

    # -- client API -----------------------------------------------------------------------
    def plan(self, text: str, speed: float = 1.0, voice: str = "alloy"):
        """The prosody plan of a text (duration, frames) without running anything."""
        return plan_prosody(text, speed=speed, sample_rate=SAMPLE_RATE, voice=voice)

    def submit(self, request: SynthesisRequest) -> RequestHandle:
        """Queue a request; returns its handle. Raises InputError or CapacityError."""
        cfg = self.config
        voice = check_request(request, cfg.max_input_chars)
        text = request.text
        seed = request.resolved_seed()
        plan = plan_prosody(text, speed=request.speed, sample_rate=SAMPLE_RATE, voice=voice.name)
        n_frames = plan.n_frames(self.preset.samples_per_frame)
        if request.start_frame < 0 or request.start_frame > n_frames:
            raise InputError(f"start_frame must be within 0..{n_frames}", param="start_frame")
        need = self.memory_need(text, n_frames)
        self.memory.check(need, background=request.priority > 0)
        handle = RequestHandle(request, n_frames=n_frames, samples_per_frame=self.preset.samples_per_frame, sample_rate=SAMPLE_RATE)
        handle._need = need  # type: ignore[attr-defined]
        with self._lock:
            if self._stop:
                raise EngineError(self._failure or "engine is closed")
            if len(self._pending) >= cfg.max_queue:
                raise CapacityError(f"queue is full ({cfg.max_queue} waiting)", retry_after_s=self._retry_after_s())
            self._seq += 1
            self._pending.append((request.priority, self._seq, None, handle))
            self._pending.sort(key=lambda p: (p[0], p[1]))
            handle._plan = plan  # type: ignore[attr-defined]
            handle._voice = voice  # type: ignore[attr-defined]
            handle._seed = seed  # type: ignore[attr-defined]
            self._lock.notify_all()
        return handle

    def memory_need(self, text: str, n_frames: int) -> int:
        """Bytes a request for `text` with `n_frames` planned frames holds while it runs (KV caches, prompt)."""
        return request_need_bytes(self.loaded, self.preset.voice_prompt_tokens + self.count_tokens(text), n_frames)

    def check_fits(self, text: str, n_frames: int, *, background: bool) -> int:
        """The request's KV need; InputError (naming `input`) when the memory budget can never hold it."""
        need = self.memory_need(text, n_frames)
        self.memory.check(need, background)
        return need

    def synthesize(self, request: SynthesisRequest, timeout: float | None = None) -> tuple[np.ndarray, RequestHandle]:
        """Submit and wait: the whole audio and the finished handle."""
        handle = self.submit(request)
        return handle.audio(timeout), handle

    def reconfigure(self, patch: dict) -> RuntimeConfig:
        """Apply hot knobs between frames; restart-only knobs raise ConfigError naming them."""
        cold = sorted(k for k in patch if k not in HOT_KNOBS)
        if cold:
            raise ConfigError(f"{', '.join(cold)}: needs a restart; hot knobs: {', '.join(sorted(HOT_KNOBS))}")
        new = validate_config(merge(self.config.model_dump(), patch))
        reserve = reserve_bytes(self.loaded, new)
        with self._lock:
            self.config = new
            self.memory.reserve_bytes = reserve
            if new.threads:
                torch.set_num_threads(new.threads)
            if torch.cuda.is_available():
                torch.backends.cudnn.benchmark = new.cudnn_benchmark
            self._lock.notify_all()
        return new

    def stats(self) -> dict:
        """Queue, streams, batch sizes, per-stage seconds, memory and config, as plain JSON types."""
        with self._lock:
            active = [s for s in self._slots if s is not None]
            pending = len(self._pending)
            starting = len(self._starting)  # hold a slot and their memory; their prompt is not in yet
            kv = sum(c.nbytes for s in active for c in (*s.kv_pos, *(s.kv_neg or ())))
            now = time.monotonic()
            busy = bool(active or pending or starting)
            out = {
                "preset": self.preset.name,
                "device": str(self.device),
                "queue_depth": pending,
                "active_streams": len(active) + starting,
                "prefilling_streams": sum(1 for s in active if s.in_prefill) + starting,
                "max_batch": self.config.max_batch,
                "steps": self._steps,
                "frames": self._frames,
                "audio_s": self._frames * self.preset.samples_per_frame / SAMPLE_RATE,
                "requests": dict(self._counts),
                "batch_sizes": {str(k): v for k, v in sorted(self._batch_sizes.items())},
                "stage_s": dict(self._stage_s),
                "weights_bytes": self.loaded.weights_bytes,
                "kv_cache_bytes": kv,
                "conv_cache_bytes": self.stepper.state_bytes(),
                "leak_bytes": self.faults.leaked_bytes,
                "slow_fault_s": self.faults.stretched_s,
                "uptime_s": time.time() - self._started_at,
                "stalled_s": (now - self._last_progress) if busy else 0.0,
                "prefill_tokens": self._prefill_tokens,
                "max_iteration_s": self._max_iteration_s,
                "held_for_memory": self._held_for_memory,
                **self.memory.stats(),
                "hung": self.faults.hung,
                "config": self.config.model_dump(mode="json"),
            }
        out.update(self.loaded.allocator_stats())
        return out

    @property
    def alive(self) -> bool:
        """True while the engine thread runs (False once it failed or was closed)."""
        return self._thread.is_alive() and self._failure is None

    @property
    def failure(self) -> str | None:
        """Why the engine thread stopped, when it failed."""
        return self._failure

    def count_tokens(self, text: str) -> int:
        """Text tokens the LM reads for `text` (the `usage` a response reports)."""
        return len(self.prompts.tokenizer.encode(text))

    def warmup(self, frames: int = 2) -> None:
        """Run one short request so first-call costs (allocations, compile) are paid up front."""
        req = SynthesisRequest(text="Warm up.", voice="alloy", seed=0)
        self.synthesize(req, timeout=600)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the engine thread; unfinished requests end cancelled."""
        with self._lock:
            self._stop = True
            self._lock.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)
        with self._lock:
            for _, _, _, h in self._pending:
                h._finish(RequestState.CANCELLED, RequestCancelled("engine closed"))
            self._pending.clear()
            for h in self._starting.values():
                h._finish(RequestState.CANCELLED, RequestCancelled("engine closed"))
            for i, s in enumerate(self._slots):
                if s is not None:
                    s.handle._finish(RequestState.CANCELLED, RequestCancelled("engine closed"))
                    self._slots[i] = None

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- engine thread --------------------------------------------------------------------
    def _retry_after_s(self) -> float:
        done = self._counts.get("done", 0)
        if not done:
            return 1.0
        per_frame = sum(self._stage_s.values()) / max(1, self._steps)
        return float(min(60.0, max(1.0, per_frame * 100)))

    def _run(self) -> None:
        try:
            while True:
                with self._lock:
                    if self._stop:
                        return
                    self._expire_and_cancel()
                    if self.faults.should_hang(self._counts.get("done", 0), self.config.faults):
                        self._lock.wait(0.5)
                        continue
                    admitted = self._admit()
                if admitted:
                    self._start_streams(admitted)
                with self._lock:
                    active = [s for s in self._slots if s is not None]
                    if not active:
                        self._last_progress = time.monotonic()
                        if not self._pending:
                            self._lock.wait(0.5)
                        continue
                t0 = time.monotonic()
                self._work(active)
                self._max_iteration_s = max(self._max_iteration_s, time.monotonic() - t0)
                # Drop this iteration's references: a stream freed since (cancelled, done) gave its
                # memory back to the budget, and its caches must really go before the next admission.
                active = None
        except Exception as exc:  # noqa: BLE001 - a model failure must end requests, not hang them
            log.exception("engine thread failed")
            with self._lock:
                self._stop = True
                self._failure = f"engine failed: {exc}"
                for _, _, _, h in self._pending:
                    h._finish(RequestState.FAILED, EngineError(f"engine failed: {exc}"))
                self._pending.clear()
                for h in self._starting.values():
                    h._finish(RequestState.FAILED, EngineError(f"engine failed: {exc}"))
                self._starting.clear()
                for i, s in enumerate(self._slots):
                    if s is not None:
                        s.handle._finish(RequestState.FAILED, EngineError(f"engine failed: {exc}"))
                        self._slots[i] = None
                self._lock.notify_all()

    def _expire_and_cancel(self) -> None:
        now = time.monotonic()
        default_timeout = self.config.request_timeout_s

        def timeout_of(h: RequestHandle) -> float:
            return h.request.timeout_s if h.request.timeout_s is not None else default_timeout

        keep = []
        for item in self._pending:
            h = item[3]
            timeout = timeout_of(h)
            if h.cancelled:
                h._finish(RequestState.CANCELLED, RequestCancelled(f"request {h.id} was cancelled"))
                self._counts["cancelled"] += 1
            elif now - h.t_submit > timeout:
                h._finish(RequestState.FAILED, RequestCancelled(f"request {h.id} timed out after {timeout:g} s in the queue"))
                self._counts["timeout"] += 1
            else:
                keep.append(item)
        self._pending = keep
        for i, s in enumerate(self._slots):
            if s is None:
                continue
            timeout = timeout_of(s.handle)
            if s.handle.cancelled:
                s.handle._finish(RequestState.CANCELLED, RequestCancelled(f"request {s.handle.id} was cancelled"))
                self._counts["cancelled"] += 1
                self._free(i)
            elif now - s.handle.t_submit > timeout:
                s.handle._finish(RequestState.FAILED, RequestCancelled(f"request {s.handle.id} timed out after {timeout:g} s"))
                self._counts["timeout"] += 1
                self._free(i)

    def _admit(self) -> list[tuple[int, RequestHandle]]:
        """Take the requests that get a slot and fit the memory budget now (under the lock).

        Their slots and memory are reserved here; their streams are built by `_start_streams`
        outside the lock. The first request that does not fit holds back the ones behind it.
        """
        self._held_for_memory = 0
        if not self._pending:
            return []
        free = [i for i, s in enumerate(self._slots) if s is None and i not in self._starting]
        if not free:
            return []
        running = any(s is not None for s in self._slots)
        oldest = min(h.t_submit for _, _, _, h in self._pending)
        window_s = self.config.batch_window_ms / 1000.0
        if not running and len(self._pending) < len(free) and time.monotonic() - oldest < window_s:
            self._lock.wait(max(0.0, window_s - (time.monotonic() - oldest)))
            return []
        self.faults.maybe_crash(self._counts.get("done", 0), self.config.faults)
        admitted = []
        while self._pending and free:
            handle = self._pending[0][3]
            need = handle._need  # type: ignore[attr-defined]
            if not self.memory.fits(need, background=handle.request.priority > 0):
                self._held_for_memory = len(self._pending)
                break
            self._pending.pop(0)
            self.memory.take(need)
            slot = free.pop(0)
            self._starting[slot] = handle
            admitted.append((slot, handle))
        return admitted

    def _start_streams(self, admitted: list[tuple[int, RequestHandle]]) -> None:
        """Build the admitted requests' streams (prompt, KV caches) and put them in their slots."""
        for slot, handle in admitted:
            try:
                stream = self._make_stream(handle, slot)
            except Exception as exc:  # noqa: BLE001 - e.g. its KV cache does not fit: fail it alone, keep the loop
                log.error("request %s could not start: %s: %s", handle.id, type(exc).__name__, exc)
                with self._lock:
                    self._starting.pop(slot, None)
                    self.memory.give(handle._need)  # type: ignore[attr-defined]
                    handle._finish(RequestState.FAILED, SynthesisFailed(f"request could not start: {type(exc).__name__}: {exc}"))
                    self._counts["failed"] += 1
                continue
            with self._lock:
                self._starting.pop(slot, None)
                self._slots[slot] = stream

    def _make_stream(self, handle: RequestHandle, slot: int) -> Stream:
        req = handle.request
        cfg = self.config
        plan, voice, seed = handle._plan, handle._voice, handle._seed  # type: ignore[attr-defined]
        handle.stage_s["queue"] = time.monotonic() - handle.t_submit
        handle.state = RequestState.PREFILL
        prompt, x0 = self.prompts.build(req.text, voice)
        kv_pos, kv_neg = self.prompts.caches(prompt.shape[0], handle.n_frames)
        steps = req.diffusion_steps if req.diffusion_steps is not None else cfg.steps_for(len(req.text))
        gen = torch.Generator().manual_seed(seed)
        self.stepper.reset_slot(slot)
        synth = StreamSynth(voice, plan, sample_rate=SAMPLE_RATE, samples_per_frame=self.preset.samples_per_frame,
                            seed=seed, noise_dbfs=cfg.faults.noise_db)
        return Stream(
            handle=handle, plan=plan, synth=synth, slot=slot, prompt=prompt, kv_pos=kv_pos, kv_neg=kv_neg,
            generator=gen, steps=steps if self.preset.has_diffusion else 0,
            cfg_scale=req.cfg_scale if req.cfg_scale is not None else cfg.effective_cfg_scale(),
            first_chunk_frames=req.first_chunk_frames or cfg.first_chunk_frames,
            chunk_frames=req.chunk_frames or cfg.chunk_frames,
            x=x0, n_frames=handle.n_frames, start_frame=req.start_frame,
        )

    def _free(self, slot: int) -> None:
        stream = self._slots[slot]
        if stream is not None:
            self.memory.give(stream.handle._need)  # type: ignore[attr-defined]
        self._slots[slot] = None
        if not self.config.batch_invariant:
            # Keep active streams in the first slots so only those rows run.
            last = max((i for i, s in enumerate(self._slots) if s is not None), default=-1)
            if last > slot:
                s = self._slots[last]
                self._slots[last] = None
                self.stepper.move_slot(last, slot)
                s.slot = slot
                self._slots[slot] = s

    def _fail(self, streams: list[Stream], what: str, exc: Exception) -> None:
        """End `streams` with SynthesisFailed (`what` raised `exc`) and free their slots; the loop goes on."""
        log.error("%s failed for %s: %s: %s", what, ", ".join(s.handle.id for s in streams), type(exc).__name__, exc)
        with self._lock:
            for s in streams:
                if not s.handle.state.finished:
                    s.handle._finish(RequestState.FAILED, SynthesisFailed(f"{what} failed: {type(exc).__name__}: {exc}"))
                    self._counts["failed"] += 1
                if self._slots[s.slot] is s:
                    self._free(s.slot)

    def _prefill(self, active: list[Stream]) -> None:
        """Prefill whole chunks, highest priority and oldest first, within this iteration's budget."""
        waiting = sorted((s for s in active if s.in_prefill), key=lambda s: (s.handle.request.priority, s.handle.t_submit))
        if not waiting:
            return
        budget_s = self._prefill_budget.seconds(streams_ready=len(waiting) < len(active))
        t_start = time.perf_counter()
        for s in waiting:
            while s.in_prefill and not s.handle.state.finished:
                t0 = time.perf_counter()
                try:
                    n = self.stepper.prefill_chunk(s)
                except Exception as exc:  # noqa: BLE001 - one stream's prompt: fail it alone
                    self._fail([s], "prefill", exc)
                    break
                dt = time.perf_counter() - t0
                dt += self.faults.stretch(dt, self.config.faults)
                s.handle.stage_s["prefill"] = s.handle.stage_s.get("prefill", 0.0) + dt
                self._stage_s["prefill"] += dt
                self._prefill_tokens += n
                if time.perf_counter() - t_start >= budget_s:
                    return

    def _work(self, active: list[Stream]) -> None:
        self._prefill(active)
        ready = [s for s in active if not s.in_prefill and not s.handle.state.finished]
        if ready:
            for s in ready:
                s.handle.state = RequestState.RUNNING
            try:
                self.faults.maybe_fail_step(self._counts.get("done", 0), self.config.faults)
                t0 = time.perf_counter()
                frames, times = self.stepper.step(ready)
            except Exception as exc:  # noqa: BLE001 - the streams of this step fail; the loop decides whether to go on
                self._step_failed(ready, exc)
                return
            self._failed_steps = 0
            added = self.faults.stretch(time.perf_counter() - t0, self.config.faults)
            # the prefill budget follows the step as it ran, a slowed one included
            self._prefill_budget.observe_step(time.perf_counter() - t0)
            if added > 0.0:
                # a slower model is slower in every stage: the added time is spread over them
                scale = 1.0 + added / max(sum(times.values()), 1e-9)
                times = {stage: sec * scale for stage, sec in times.items()}
            for stage, sec in times.items():
                self._stage_s[stage] += sec
                for s in ready:
                    s.handle.stage_s[stage] = s.handle.stage_s.get(stage, 0.0) + sec
            self._steps += 1
            self._frames += len(ready)
            self._batch_sizes[len(ready)] += 1
            for s, audio in zip(ready, frames):
                try:
                    chunk = s.take_frame(audio)
                    s.handle.frames_done = s.frame
                    if chunk is not None:
                        s.handle._deliver(chunk)
                except Exception as exc:  # noqa: BLE001 - one stream's frame: fail it alone
                    self._fail([s], "delivering a frame", exc)
        with self._lock:
            self._last_progress = time.monotonic()
            for s in ready:
                if s.done and self._slots[s.slot] is s:
                    s.handle._finish(RequestState.DONE)
                    self._counts["done"] += 1
                    self._free(s.slot)
                    try:
                        self.faults.after_request(self.config.faults, self._counts["done"], self.config.empty_cache_every)
                    except Exception as exc:  # noqa: BLE001 - the request is done; a failed leak or empty_cache must not end the loop
                        log.error("after request %s: %s: %s", s.handle.id, type(exc).__name__, exc)

    def _step_failed(self, ready: list[Stream], exc: Exception) -> None:
        """A batched step raised: its streams fail; `MAX_FAILED_STEPS` in a row end the loop (it raises)."""
        self._failed_steps += 1
        last = self._failed_steps >= MAX_FAILED_STEPS
        message = f"{self._failed_steps} engine steps failed in a row (last: {type(exc).__name__}: {exc})"
        if last:
            # Before these streams' clients hear of the failure: a /healthz right after must see it.
            with self._lock:
                self._stop = True
                self._failure = f"engine failed: {message}"
        self._fail(ready, "engine step", exc)
        if last:
            raise EngineError(message) from exc
