"""Service settings: what `vvbench serve` adds on top of the runtime's knobs.

The runtime's `RuntimeConfig` says how the engine computes; `ServiceSettings` says how the HTTP
service around it admits, limits and persists work. Choices where the issue is silent:

- `max_job_streams` defaults to `max_batch // 2` (at least 1): long-form jobs never hold more
  than half of the engine's slots, so streaming requests always have slots of their own.
- `job_chunk_frames` defaults to about 10 s of audio per persisted chunk (75 frames at 7.5 Hz):
  small enough that a restart loses little, large enough that a 90-minute job is ~540 files.
- `max_job_chars` defaults to 86,000: 90 minutes (the seed's long-form headline) at the fastest
  of the built-in corpora's rates through the text front end (15.8 characters per second of audio
  for the podcast script, 14-15 for prose), rounded up to a thousand; a unit test re-derives it.
- `memory_budget` (same forms as the guard) is what the engine's admission plans against
  (`vvbench.runtime.memory_budget`): a request or job whose KV caches it can never hold is
  refused, one that fits later waits. Without it the memory guard's limit is the budget (so
  admission keeps the process under the guard instead of tripping it), and without either, 90%
  of the device's memory.
- `memory_guard` is read as bytes when it is larger than 1 (`8GiB`, `500MB`, `123456`) and as a
  fraction of the device's memory when it is in (0, 1] (`0.9`): system RAM against the process's
  resident set on CPU, device memory against the CUDA allocator's reserved bytes on a GPU.
- `rate_limit_rps` with `rate_burst` is a token bucket per API key (or per client address when
  no key is sent); the burst defaults to max(1, ceil(rate)).
- Who may change the service: `/admin/*` needs the API key; without one it is off (403) unless
  `open_admin`, which only a loopback bind may use. Fault knobs (`faults.*`, at start-up or
  through `/admin/config`) need `allow_faults`. `check_exposure` refuses the combinations that
  break these rules before anything starts.
- HTTP limits: a request's headers must arrive within `header_timeout_s` and its body within
  `body_timeout_s` of them; headers larger than `max_header_bytes` are refused (431). Every
  number here has finite bounds (NaN and Infinity refused), as in the runtime's config.
"""

from __future__ import annotations

import ipaddress
import math
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vvbench.core.errors import ConfigError
from vvbench.core.units import parse_bytes, parse_fraction
from vvbench.core.validation import format_validation_error

DEFAULT_MAX_JOB_CHARS = 86_000  # 90 minutes of speech (see the module docstring)
JOB_CHUNK_SECONDS = 10.0
DAY_S = 86_400.0

class MemoryLimit(BaseModel):
    """A memory guard: either absolute bytes or a fraction of the device's memory."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    limit_bytes: int | None = Field(None, gt=0, le=2**60, description="refuse new work above this many bytes")
    fraction: float | None = Field(None, gt=0.0, le=1.0, description="refuse new work above this share of the device's memory")


def parse_memory_guard(raw: str | None, what: str = "memory_guard") -> MemoryLimit | None:
    """`8GiB`, `500MB`, `123456` (bytes; units as everywhere, `vvbench.core.units`) or `0.9` / `90%` (a share) -> MemoryLimit.

    `what` names the option in errors (the memory budget takes the same forms)."""
    if raw is None or str(raw).strip() == "":
        return None
    text = str(raw).strip()
    try:
        if text.endswith("%") or (re.fullmatch(r"[0-9]*\.?[0-9]+", text) and float(text) <= 1):
            limit = MemoryLimit(fraction=parse_fraction(text, what))
        else:
            limit = MemoryLimit(limit_bytes=parse_bytes(text, what))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, f"{what} {raw!r}")) from None
    return limit


class ServiceSettings(BaseModel):
    """How the service admits, limits and persists work (see the module docstring for defaults)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    data_dir: Path = Field(Path("vvbench-data"), description="jobs database and chunk files")
    api_key: str | None = Field(None, min_length=1, max_length=4096, description="Bearer key required on /v1 and /admin (None: /v1 open, /admin off unless open_admin)")
    open_admin: bool = Field(False, description="/admin without a key (loopback binds only)")
    allow_faults: bool = Field(False, description="fault knobs (faults.*) may be set, at start-up and through /admin/config")
    max_job_streams: int | None = Field(None, ge=1, le=256, description="engine slots long-form jobs may hold at once (None: max_batch // 2, at least 1)")
    max_job_chars: int = Field(DEFAULT_MAX_JOB_CHARS, ge=1, le=10_000_000, description="longest job input accepted")
    max_jobs: int = Field(10_000, ge=1, le=10_000_000, description="unfinished jobs accepted before new ones are refused (503)")
    job_chunk_frames: int | None = Field(None, ge=1, le=100_000, description="frames per persisted job chunk (None: about 10 s of audio)")
    rate_limit_rps: float | None = Field(None, gt=0.0, le=1_000_000, description="requests per second per API key or client address (None: no limit)")
    rate_burst: int | None = Field(None, ge=1, le=1_000_000, description="token-bucket size (None: max(1, ceil(rate)))")
    memory_guard: MemoryLimit | None = Field(None, description="refuse new work (503) above this memory use")
    memory_budget: MemoryLimit | None = Field(None, description="memory the engine admits KV caches against (None: the memory guard, else 90% of the device's memory)")
    short_first: bool = Field(True, description="streaming requests before jobs, and jobs capped at max_job_streams; off: one FIFO queue, no cap")
    health_stall_s: float = Field(30.0, gt=0.0, le=DAY_S, description="/healthz fails when work waits and the engine made no progress for this long")
    drain_timeout_s: float = Field(30.0, ge=0.0, le=DAY_S, description="on SIGTERM, how long in-flight requests may take to finish")
    header_timeout_s: float = Field(10.0, gt=0.0, le=3600, description="a connection whose request headers are not complete this long after it opened (or after its last response) is closed")
    body_timeout_s: float = Field(30.0, gt=0.0, le=3600, description="a request body not complete this long after its headers is refused (408)")
    max_header_bytes: int = Field(16 * 1024, ge=1024, le=1024 * 1024, description="largest request head (request line and headers) accepted (431 above)")

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

    def admission_limit(self) -> MemoryLimit | None:
        """The memory the engine plans admission against: the budget, else the guard (None: the engine's default)."""
        return self.memory_budget or self.memory_guard

    def max_body_bytes(self, max_input_chars: int) -> int:
        """Largest request body worth reading: the longest input as escaped JSON, plus room."""
        return 6 * max(max_input_chars, self.max_job_chars) + 64 * 1024


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(settings: ServiceSettings, faults_set: list[str], host: str | None = None) -> None:
    """ConfigError for fault knobs set without `allow_faults`, and for `open_admin` on a non-loopback `host`."""
    if faults_set and not settings.allow_faults:
        names = ", ".join(f"faults.{n}" for n in faults_set)
        raise ConfigError(f"{names}: fault knobs are refused unless the service is started with --allow-faults")
    if settings.open_admin and host is not None and not is_loopback(host):
        raise ConfigError(f"--open-admin opens /admin without a key, so it is refused with --host {host}; "
                          "bind loopback, or give --api-key")


def build_settings(**given) -> ServiceSettings:
    """ServiceSettings from command-line values (None: the default); errors as ConfigError naming the option."""
    values = {k: v for k, v in given.items() if v is not None}
    for key in ("memory_guard", "memory_budget"):
        if key in values:
            values[key] = parse_memory_guard(values[key], key)
    try:
        return ServiceSettings(**values)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, "command line", model=ServiceSettings)) from None
