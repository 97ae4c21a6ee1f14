"""Sending one synthesis to its client: streamed audio, streamed SSE events, or one whole body.

`SpeechResponse` is an ASGI response built around an engine `RequestHandle`. Choices:

- **Headers leave with the first chunk.** The status line waits for the first audio, so an
  error before any audio (the request timed out in the queue, the engine failed) is still a
  proper 503 with Retry-After instead of a 200 with an empty body. Time to first audio is the
  same either way; only time to headers moves.
- **Server-Timing** (milliseconds): a whole-body response reports every stage that took time
  (`queue`, `prefill`, `lm`, `diffusion`, `decode`, `semantic`, `synth`, then the output stages
  `trim`, `loudness`, `resample` and `encode` of `rendering.AudioOutput`) plus `first_chunk` and
  `total`. A streamed response can only report what is known when its headers leave, i.e. at the
  first chunk, which is rendered before the headers: `queue` and the stages spent so far, plus
  `first_chunk`; HTTP trailers would carry the rest, but common clients drop them.
- **Encoding** runs per chunk as the chunk arrives, in a worker thread for compressed formats
  or any post-processing (so the event loop keeps serving other streams), inline for plain
  PCM/WAV. Bytes an encoder holds back (its delay, an unfinished frame) leave with a later chunk
  or at the end; SSE deltas carry the same encoded bytes, base64, and an empty one is not sent.
- **Disconnects**: a task listens for `http.disconnect` for the whole life of the response and
  cancels the handle at once, so the engine frees the slot at its next frame boundary.
- **Failures after the headers**: SSE gets an `error` event; a raw audio stream is aborted
  (the connection closes without the final chunk) so the client sees a truncated transfer, not a
  short file that looks complete.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time

from starlette.responses import Response

from vvbench.core.audio import SAMPLE_RATE, wav_header
from vvbench.core.errors import VVBenchError
from vvbench.core.formats import CONTENT_TYPES
from vvbench.runtime.request import AudioChunk, RequestHandle
from vvbench.server.errors import error_for
from vvbench.server.rendering import AudioOutput

log = logging.getLogger("vvbench.server")

MEDIA_TYPES = {**CONTENT_TYPES, "sse": "text/event-stream"}
TIMING_STAGES = ("queue", "prefill", "lm", "diffusion", "decode", "semantic", "synth", "trim", "loudness", "resample", "encode")


class StreamAborted(Exception):
    """Raised to abort a streamed response whose synthesis failed after the headers were sent."""


def server_timing(timings: dict[str, float], *, final: bool) -> str:
    """A Server-Timing header value (durations in ms) from a handle's `timings()`."""
    parts = []
    for stage in TIMING_STAGES:
        value = timings.get(stage, 0.0)
        if value > 0 or stage == "queue":
            parts.append(f"{stage};dur={value * 1000:.1f}")
    if "first_chunk" in timings:
        parts.append(f"first_chunk;dur={timings['first_chunk'] * 1000:.1f}")
    if final and "total" in timings:
        parts.append(f"total;dur={timings['total'] * 1000:.1f}")
    return ", ".join(parts)


def _timings(handle: RequestHandle) -> dict[str, float]:
    try:
        return handle.timings()
    except RuntimeError:  # the engine thread added a stage while we copied; read again
        return handle.timings()


def _sse(event: dict) -> bytes:
    return b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n"


class SpeechResponse(Response):
    """ASGI response streaming (or collecting) one request's audio; see the module docstring."""

    def __init__(self, handle: RequestHandle, service, *, output: AudioOutput, stream_format: str,
                 stream: bool, t_request: float, input_tokens: int, headers: dict[str, str]):
        # Not Response.__init__: status and headers are decided when the first chunk arrives.
        self.status_code = 200
        self.background = None
        self.handle = handle
        self.service = service
        self.output = output
        self.fmt = output.fmt
        self.sse = stream_format == "sse"
        self.stream = stream or self.sse
        self.t_request = t_request
        self.input_tokens = input_tokens
        self.extra_headers = headers
        self.disconnected = False
        self.ttfa_s: float | None = None
        self.audio_samples = 0

    async def __call__(self, scope, receive, send) -> None:
        self.service.stream_opened()
        watcher = asyncio.ensure_future(self._watch(receive))
        outcome = "error"
        try:
            outcome = await self._respond(send)
        except OSError:
            outcome = "disconnected"
        except StreamAborted:
            outcome = "failed_mid_stream"
            raise
        finally:
            watcher.cancel()
            if not self.handle.state.finished:
                self.handle.cancel()
            self.service.stream_closed()
            self.service.record_outcome(outcome)
            if self.service.metrics is not None:
                self.service.metrics.observe_synthesis("speech", outcome, self.ttfa_s,
                                                       time.monotonic() - self.t_request,
                                                       self.audio_samples / SAMPLE_RATE)

    async def _watch(self, receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.disconnected = True
                self.handle.cancel()
                return

    def _start(self, extra: dict[str, str]) -> dict:
        media = MEDIA_TYPES["sse" if self.sse else self.fmt]
        headers = {**self.extra_headers, "content-type": media, **extra}
        if self.sse:
            headers["cache-control"] = "no-cache"
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        return {"type": "http.response.start", "status": 200, "headers": raw}

    async def _send_error(self, send, exc: Exception) -> str:
        err = error_for(exc)
        body = json.dumps({"error": {"message": err.message, "type": err.type, "param": err.param, "code": err.code}}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        headers += [(k.lower().encode(), v.encode()) for k, v in {**self.extra_headers, **err.headers}.items()]
        await send({"type": "http.response.start", "status": err.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return err.code or "error"

    async def _audio_bytes(self, chunk: AudioChunk) -> bytes:
        self.audio_samples += len(chunk.audio)
        if self.output.light:
            return self.output.process(chunk.audio)
        return await asyncio.to_thread(self.output.process, chunk.audio)

    async def _finish_bytes(self) -> bytes:
        if self.output.light:
            return self.output.finish()
        return await asyncio.to_thread(self.output.finish)

    def _timings(self) -> dict[str, float]:
        return {**_timings(self.handle), **self.output.timings()}

    async def _respond(self, send) -> str:
        chunks = self.handle.achunks().__aiter__()
        try:
            first = await chunks.__anext__()
        except StopAsyncIteration:
            first = None
        except VVBenchError as exc:
            if self.disconnected:
                return "disconnected"
            return await self._send_error(send, exc)
        if not self.stream:
            return await self._whole_body(send, first, chunks)
        data = b"" if first is None else await self._audio_bytes(first)
        await send(self._start({"server-timing": server_timing(self._timings(), final=False)}))
        await self._send_audio(send, data)
        try:
            async for chunk in chunks:
                await self._send_audio(send, await self._audio_bytes(chunk))
            await self._send_audio(send, await self._finish_bytes())
        except VVBenchError as exc:
            if self.disconnected:
                return "disconnected"
            if not self.sse:
                log.warning("request %s failed after streaming began: %s", self.handle.id, exc)
                raise StreamAborted(str(exc)) from exc
            err = error_for(exc)
            await send({"type": "http.response.body", "more_body": True, "body": _sse(
                {"type": "error", "error": {"message": err.message, "type": err.type, "param": err.param, "code": err.code}})})
            await send({"type": "http.response.body", "body": b""})
            return err.code or "error"
        if self.sse:
            usage = {"input_tokens": self.input_tokens, "output_tokens": self.handle.n_frames,
                     "total_tokens": self.input_tokens + self.handle.n_frames}
            await send({"type": "http.response.body", "more_body": True,
                        "body": _sse({"type": "speech.audio.done", "usage": usage})})
        await send({"type": "http.response.body", "body": b""})
        return "ok"

    async def _send_audio(self, send, data: bytes) -> None:
        if not data:
            return
        if self.ttfa_s is None:
            self.ttfa_s = time.monotonic() - self.t_request
        if self.sse:
            data = _sse({"type": "speech.audio.delta", "audio": base64.b64encode(data).decode("ascii")})
        await send({"type": "http.response.body", "body": data, "more_body": True})

    async def _whole_body(self, send, first: AudioChunk | None, chunks) -> str:
        parts = [] if first is None else [await self._audio_bytes(first)]
        try:
            async for chunk in chunks:
                parts.append(await self._audio_bytes(chunk))
        except VVBenchError as exc:
            if self.disconnected:
                return "disconnected"
            return await self._send_error(send, exc)
        parts.append(await self._finish_bytes())
        body = b"".join(parts)
        if self.fmt == "wav":  # a whole body knows its length: the real sizes instead of the streaming ones
            body = wav_header(self.output.rate, (len(body) - 44) // 2) + body[44:]
        timing = server_timing(self._timings(), final=True)
        await send(self._start({"server-timing": timing, "content-length": str(len(body))}))
        await send({"type": "http.response.body", "body": body})
        self.ttfa_s = time.monotonic() - self.t_request
        return "ok"
