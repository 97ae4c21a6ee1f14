"""`POST /v1/audio/speech`: OpenAI-compatible speech, streamed as the engine produces it.

Works with the official `openai` client (`client.audio.speech.create(...)` and
`client.audio.speech.with_streaming_response.create(...)`; pass `seed` and `stream` through
`extra_body`). `response_format` is any of OpenAI's six, mp3 by default (`rendering.py`,
`vvbench.core.formats.encode`); `sample_rate`, `trim_silence` and `loudness` are extensions.
Ogg Opus decodes at 48 kHz whatever it was encoded from, so opus with another `sample_rate` is a
400 naming `sample_rate`. Input over the hot `max_input_chars` knob is a 400 naming `input` (413 is kept for
bodies too large to read). Every answer carries `X-Request-Id`, `X-Seed` and `Server-Timing` (see
`streaming.py` for what a streamed response can report).
"""

from __future__ import annotations

import logging
import time

from fastapi import APIRouter, Request

from vvbench.core.errors import CapacityError
from vvbench.core.formats import CONTENT_TYPES
from vvbench.core.formats.encode import OPUS_RATE
from vvbench.runtime.request import SynthesisRequest
from vvbench.runtime.voices import get_voice
from vvbench.server.admission import request_priority
from vvbench.server.errors import APIError, error_responses
from vvbench.server.rendering import AudioOutput
from vvbench.server.schemas import SpeechRequest
from vvbench.server.streaming import SpeechResponse

log = logging.getLogger("vvbench.server")

router = APIRouter()

_AUDIO = {"schema": {"type": "string", "format": "binary"}}
_SSE_EVENT = {  # one server-sent event, as SSE-aware tools read a text/event-stream schema
    "type": "object", "required": ["data"],
    "description": "`data` is JSON: {type: speech.audio.delta, audio: base64} or {type: speech.audio.done, usage}",
    "properties": {"event": {"type": "string"}, "data": {"type": "string", "contentMediaType": "application/json"}},
}
SPEECH_RESPONSES = {
    200: {
        "description": "the audio: mp3 frames, Ogg Opus, ADTS AAC, FLAC, WAV (a streaming header with unknown sizes "
                       "when stream=true), raw PCM16, or SSE events speech.audio.delta / speech.audio.done",
        "content": {**{media: _AUDIO for media in CONTENT_TYPES.values()}, "text/event-stream": {"schema": _SSE_EVENT}},
        "headers": {
            "X-Request-Id": {"schema": {"type": "string"}, "description": "the request's id"},
            "X-Seed": {"schema": {"type": "string"}, "description": "the seed used (send it back for identical audio)"},
            "Server-Timing": {"schema": {"type": "string"}, "description": "per-stage milliseconds"},
            "X-Codec-Delay": {"schema": {"type": "string"}, "description": "mp3 and aac: samples the decoded audio starts "
                              "with before the input's first one (encoder delay plus decoder delay), at the output rate"},
        },
    },
    **error_responses(400, 401, 413, 429, 503),
}


def check_input(text: str, limit: int, what: str = "max_input_chars") -> None:
    """400 naming `input` for empty, whitespace-only or over-long text."""
    if not text.strip():
        raise APIError(400, "input must contain text (it is empty or only whitespace)", param="input", code="empty_input")
    if len(text) > limit:
        raise APIError(400, f"input is {len(text)} characters; the limit is {limit} ({what})",
                       param="input", code="string_above_max_length")


def audio_output(body: SpeechRequest) -> AudioOutput:
    """The response's output chain; 400 for a sample rate the format cannot carry."""
    rate = body.sample_rate
    if body.response_format == "opus":
        if rate not in (None, OPUS_RATE):
            raise APIError(400, f"opus is always {OPUS_RATE} Hz (Ogg Opus decodes at 48 kHz); "
                           f"omit sample_rate or choose another format for {rate} Hz", param="sample_rate",
                           code="unsupported_sample_rate")
        rate = None  # the encoder takes the runtime's 24 kHz and resamples to 48 kHz itself
    return AudioOutput(body.response_format, rate, trim_silence=body.trim_silence, loudness=body.loudness,
                       stream=body.stream or body.stream_format == "sse")


def resolve_voice(name: str) -> str:
    """The canonical voice name; 400 naming `voice` when unknown."""
    return get_voice(name).name


@router.post("/v1/audio/speech", responses=SPEECH_RESPONSES, response_model=None, summary="Synthesise speech",
             operation_id="createSpeech")
async def create_speech(body: SpeechRequest, request: Request):
    """Synthesise `input` with `voice`; stream it (default) or return it whole (`stream: false`)."""
    service = request.app.state.service
    engine = service.require_engine()
    check_input(body.input, engine.config.max_input_chars)
    voice = resolve_voice(body.voice_name())
    output = audio_output(body)
    service.check_memory()
    service.record_model(body.model)
    request_id = request.scope.get("state", {}).get("request_id") or f"req_{time.time_ns():x}"
    synth = SynthesisRequest(text=body.input, voice=voice, seed=body.seed, speed=body.speed,
                             priority=request_priority(service.settings.short_first, job=False), request_id=request_id)
    try:
        handle = engine.submit(synth)
    except CapacityError:
        service.count_rejection("queue_full")
        raise
    log.info("speech %s: %d chars, voice %s, seed %s, model %r", request_id, len(body.input), voice, synth.seed, body.model)
    headers = {"X-Request-Id": request_id, "X-Seed": str(synth.seed)}
    if output.encoder.delay_samples:  # a raw mp3 or ADTS stream cannot declare its delay itself
        headers["X-Codec-Delay"] = str(output.encoder.delay_samples)
    t_request = request.scope.get("state", {}).get("t_start", time.monotonic())
    return SpeechResponse(handle, service, output=output, stream_format=body.stream_format,
                          stream=body.stream, t_request=t_request,
                          input_tokens=engine.count_tokens(body.input), headers=headers)
