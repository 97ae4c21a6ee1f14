"""Request and response bodies of the HTTP API (pydantic; they are also the OpenAPI schema).

Request bodies are strict (`"speed": "1.5"` or `"stream": "yes"` are type errors, not guesses)
and forbid unknown fields, as OpenAI's API does; a 400 then names the field. Limits that can
change on a running service (`max_input_chars` is a hot knob) are checked by the handlers, not
frozen into the schema. `voice` takes a name or OpenAI's `{"id": name}` form.
"""

from __future__ import annotations

import enum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from vvbench.core.formats import DEFAULT_FORMAT, SAMPLE_RATES
from vvbench.runtime.voices import VOICES

SEED_MAX = 2**63 - 1
VOICE_HELP = "a voice name (OpenAI's names are built-in speakers; vv-* are the runtime's own): " + ", ".join(VOICES)


class VoiceRef(BaseModel):
    """OpenAI's object form of a voice: `{"id": "alloy"}`."""

    model_config = ConfigDict(extra="forbid", strict=True)
    id: str = Field(min_length=1, max_length=64, description=VOICE_HELP)


class _SynthesisFields(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    model: str | None = Field(None, max_length=256, description="any model name; recorded, not used to pick weights (the service serves one preset)")
    input: str = Field(min_length=1, description="the text to speak; at most max_input_chars characters (max_job_chars for jobs)")
    voice: str | VoiceRef = Field("alloy", description=VOICE_HELP)
    speed: float = Field(1.0, ge=0.25, le=4.0, description="speaking rate, 0.25 to 4.0")
    instructions: str | None = Field(None, max_length=4096, description="accepted for compatibility; the reference runtime ignores it")
    seed: int | None = Field(None, ge=0, le=SEED_MAX, description="same seed, same text, same voice: bit-identical audio (drawn at random when absent; returned in X-Seed)")

    def voice_name(self) -> str:
        return self.voice.id if isinstance(self.voice, VoiceRef) else self.voice


class SpeechRequest(_SynthesisFields):
    """`POST /v1/audio/speech` (OpenAI's fields plus `seed`, `stream`, `sample_rate` and post-processing)."""

    response_format: Literal["mp3", "opus", "aac", "flac", "wav", "pcm"] = Field(
        DEFAULT_FORMAT, description="mp3 (the default, as OpenAI's), opus (Ogg Opus, 48 kHz), aac (ADTS), flac, "
                                    "wav (PCM16 WAV) or pcm (raw 16-bit little-endian mono samples, 24 kHz unless sample_rate)")
    sample_rate: Literal[SAMPLE_RATES] | None = Field(  # type: ignore[valid-type]
        None, description="output sample rate in Hz, one of " + ", ".join(map(str, SAMPLE_RATES))
                          + "; default 24000 (48000 for opus, the only rate Ogg Opus decodes at)")
    trim_silence: bool = Field(False, description="drop leading and trailing non-speech (streamed: trailing pauses are held until speech follows)")
    loudness: float | None = Field(None, ge=-70.0, le=-5.0, description="normalise to this integrated loudness in LUFS, -70 to -5 (e.g. -16 or -23)")

    stream_format: Literal["audio", "sse"] = Field("audio", description="audio: the audio bytes; sse: speech.audio.delta events with base64 audio, then speech.audio.done")
    stream: bool = Field(True, description="true: chunked transfer as the engine produces audio (a streaming WAV header for wav); false: one body with Content-Length")


class JobRequest(_SynthesisFields):
    """`POST /v1/jobs`: a long-form synthesis run in the background and persisted.

    Jobs keep WAV (the default) and raw PCM: each chunk is downloadable on its own, and a
    compressed chunk would carry its own encoder delay and padding, so chunks would not join
    into gapless audio. OpenAI's mp3 default is for `/v1/audio/speech` only.
    """

    response_format: Literal["wav", "pcm"] = Field("wav", description="wav (PCM16 WAV) or pcm (raw 16-bit little-endian mono samples at 24 kHz)")


class JobState(str, enum.Enum):
    """Where a job is."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


class JobStatus(BaseModel):
    """A job's state, progress and timestamps (epoch seconds)."""

    id: str
    object: Literal["job"] = "job"
    state: JobState
    progress: float = Field(ge=0.0, le=1.0, description="share of the job's frames computed")
    chunks_ready: int = Field(description="chunks persisted and downloadable, from index 0")
    chunks_total: int = Field(description="chunks the finished job will have")
    audio_s: float = Field(description="seconds of audio persisted so far")
    expected_audio_s: float = Field(description="seconds of audio the finished job will have")
    created_at: float
    updated_at: float
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    model: str | None = None
    voice: str
    seed: int
    speed: float
    response_format: Literal["wav", "pcm"]
    input_chars: int
    chunk_frames: int = Field(description="frames per chunk (the last may be shorter)")


class JobList(BaseModel):
    """Recent jobs, newest first."""

    object: Literal["list"] = "list"
    data: list[JobStatus]


class JobDeleted(BaseModel):
    """The answer to DELETE: the job was cancelled if unfinished, and its files removed."""

    id: str
    object: Literal["job.deleted"] = "job.deleted"
    deleted: bool = True
    state: JobState = Field(description="the job's state when it was deleted (cancelled if it had not finished)")


class VoiceInfo(BaseModel):
    id: str
    kind: Literal["openai", "runtime"]


class VoiceList(BaseModel):
    object: Literal["list"] = "list"
    data: list[VoiceInfo]


class Health(BaseModel):
    """`/healthz` and `/readyz` bodies."""

    status: str
    detail: str | None = None
