"""Service settings: what `vvbench serve` adds on top of the runtime's knobs.

The runtime's `RuntimeConfig` says how the engine computes; `ServiceSettings` says how the HTTP
service around it admits, limits and persists work. Choices where the issue is silent:

- `max_job_streams` defaults to `max_batch // 2` (at least 1): long-form jobs never hold more
  than half of the engine's slots, so streaming requests always have slots of their own.
- `job_chunk_frames` defaults to about 10 s of audio per persisted chunk (75 frames at 7.5 Hz):
  small enough that a restart loses little, large enough that a 90-minute job is ~540 files.
- `memory_guard` is read as bytes when it is larger than 1 (`8GiB`, `500MB`, `123456`) and as a
  fraction of the device's memory when it is in (0, 1] (`0.9`): system RAM against the process's
  resident set on CPU, device memory against the CUDA allocator's reserved bytes on a GPU.
- `rate_limit_rps` with `rate_burst` is a token bucket per API key (or per client address when
  no key is sent); the burst defaults to max(1, ceil(rate)).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vvbench.core.errors import ConfigError
from vvbench.core.units import parse_bytes, parse_fraction
from vvbench.core.validation import format_validation_error

DEFAULT_MAX_JOB_CHARS = 200_000
JOB_CHUNK_SECONDS = 10.0

class MemoryLimit(BaseModel):
    """A memory guard: either absolute bytes or a fraction of the device's memory."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    limit_bytes: int | None = Field(None, gt=0, description="refuse new work above this many bytes")
    fraction: float | None = Field(None, gt=0.0, le=1.0, description="refuse new work above this share of the device's memory")


def parse_memory_guard(raw: str | None) -> MemoryLimit | None:
    """`8GiB`, `500MB`, `123456` (bytes; units as everywhere, `vvbench.core.units`) or `0.9` / `90%` (a share) -> MemoryLimit."""
    if raw is None or str(raw).strip() == "":
        return None
    text = str(raw).strip()
    try:
        if text.endswith("%") or (re.fullmatch(r"[0-9]*\.?[0-9]+", text) and float(text) <= 1):
            limit = MemoryLimit(fraction=parse_fraction(text, "memory_guard"))
        else:
            limit = MemoryLimit(limit_bytes=parse_bytes(text, "memory_guard"))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, f"memory_guard {raw!r}")) from None
    return limit


class ServiceSettings(BaseModel):
    """How the service admits, limits and persists work (see the module docstring for defaults)."""

    model_config = ConfigDict(extra="forbid")

    data_dir: Path = Field(Path("vvbench-data"), description="jobs database and chunk files")
    api_key: str | None = Field(None, description="Bearer key required on /v1 and /admin (None: open)")
    max_job_streams: int | None = Field(None, ge=1, description="engine slots long-form jobs may hold at once (None: max_batch // 2, at least 1)")
    max_job_chars: int = Field(DEFAULT_MAX_JOB_CHARS, ge=1, le=10_000_000, description="longest job input accepted")
    max_jobs: int = Field(10_000, ge=1, description="unfinished jobs accepted before new ones are refused (503)")
    job_chunk_frames: int | None = Field(None, ge=1, le=100_000, description="frames per persisted job chunk (None: about 10 s of audio)")
    rate_limit_rps: float | None = Field(None, gt=0.0, description="requests per second per API key or client address (None: no limit)")
    rate_burst: int | None = Field(None, ge=1, description="token-bucket size (None: max(1, ceil(rate)))")
    memory_guard: MemoryLimit | None = Field(None, description="refuse new work (503) above this memory use")
    short_first: bool = Field(True, description="streaming requests before jobs, and jobs capped at max_job_streams; off: one FIFO queue, no cap")
    health_stall_s: float = Field(30.0, gt=0.0, description="/healthz fails when work waits and the engine made no progress for this long")
    drain_timeout_s: float = Field(30.0, ge=0.0, description="on SIGTERM, how long in-flight requests may take to finish")

    def job_streams(self, max_batch: int) -> int:
        """Slots jobs may hold at once for an engine of `max_batch` slots."""
        if not self.short_first:
            return self.max_job_streams or max_batch
        return min(max_batch, self.max_job_streams or max(1, max_batch // 2))

    def burst(self) -> int:
        """Token-bucket capacity."""
        if self.rate_burst is not None:
            return self.rate_burst
        return max(1, math.ceil(self.rate_limit_rps or 1))

    def chunk_frames_for(self, frame_rate_hz: float) -> int:
        """Frames per persisted job chunk for a model of `frame_rate_hz` frames per second."""
        return self.job_chunk_frames or max(1, round(JOB_CHUNK_SECONDS * frame_rate_hz))

    def max_body_bytes(self, max_input_chars: int) -> int:
        """Largest request body worth reading: the longest input as escaped JSON, plus room."""
        return 6 * max(max_input_chars, self.max_job_chars) + 64 * 1024


def build_settings(**given) -> ServiceSettings:
    """ServiceSettings from command-line values (None: the default); errors as ConfigError naming the option."""
    values = {k: v for k, v in given.items() if v is not None}
    if "memory_guard" in values:
        values["memory_guard"] = parse_memory_guard(values["memory_guard"])
    try:
        return ServiceSettings(**values)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, "command line", model=ServiceSettings)) from None
