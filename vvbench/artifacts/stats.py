"""The `GET /v1/stats` response: one model shared by the service, the samplers and the fake server.

The reference service answers with every field (`vvbench.server.ops` declares it as the
response model); the sampler reads any server's answer through `ServiceStats.read`, which keeps
what it recognises and leaves the rest NA, because `vvbench run --target http` points at TTS
servers that answer only some of these keys (or none). Numbers are in base units (bytes,
seconds). The fake server used by the load tests answers a subset, like a foreign server would.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class ServiceCounters(BaseModel):
    """The HTTP service's own counters (`service` in the stats)."""

    model_config = ConfigDict(extra="allow")
    ready: bool | None = None
    draining: bool | None = None
    load_error: str | None = None
    uptime_s: float | None = None
    active_http_streams: int | None = Field(None, description="streaming responses being sent")
    outcomes: dict[str, int] = Field(default_factory=dict)
    rejections: dict[str, int] = Field(default_factory=dict)
    models: dict[str, int] = Field(default_factory=dict)
    jobs: dict[str, int] | None = None


class ServiceStats(BaseModel):
    """Engine and service state at one moment (see the module docstring)."""

    model_config = ConfigDict(extra="allow")
    preset: str | None = None
    device: str | None = None
    queue_depth: int | None = Field(None, description="requests waiting for an engine slot")
    active_streams: int | None = Field(None, description="streams in the running batch")
    prefilling_streams: int | None = None
    max_batch: int | None = None
    steps: int | None = Field(None, description="engine steps since start")
    frames: int | None = Field(None, description="audio frames produced since start")
    audio_s: float | None = None
    requests: dict[str, int] = Field(default_factory=dict, description="finished requests by outcome")
    batch_sizes: dict[str, int] = Field(default_factory=dict, description="steps per batch size")
    stage_s: dict[str, float] = Field(default_factory=dict, description="seconds spent per stage (lm, diffusion, decode, ...)")
    weights_bytes: int | None = None
    kv_cache_bytes: int | None = None
    conv_cache_bytes: int | None = None
    leak_bytes: int | None = Field(None, description="memory held by the leak fault")
    cuda_allocated_bytes: int | None = None
    cuda_reserved_bytes: int | None = None
    cuda_max_allocated_bytes: int | None = None
    uptime_s: float | None = None
    stalled_s: float | None = Field(None, description="seconds without engine progress while work waits")
    hung: bool | None = None
    prefill_tokens: int | None = Field(None, description="prompt tokens prefilled since start")
    max_iteration_s: float | None = Field(None, description="longest engine iteration (prefill share + one frame step) since start")
    held_for_memory: int | None = Field(None, description="queued requests held back because their KV caches do not fit yet")
    memory_budget_bytes: int | None = Field(None, description="memory the engine admits work against")
    stream_budget_bytes: int | None = Field(None, description="what the budget leaves for streams (KV caches and prompts)")
    stream_reserved_bytes: int | None = Field(None, description="bytes admitted streams hold (KV caches and prompts)")
    config: dict[str, Any] | None = Field(None, description="the running RuntimeConfig")
    service: ServiceCounters | None = None

    @classmethod
    def read(cls, data: Any) -> ServiceStats:
        """Any server's stats JSON -> the model; fields of the wrong type become NA, never an error."""
        if not isinstance(data, dict):
            return cls()
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            bad = {str(err["loc"][0]) for err in exc.errors() if err["loc"]}
            return cls.model_validate({k: v for k, v in data.items() if k not in bad})

    def sample(self) -> dict[str, float | None]:
        """The numeric fields the samplers record per tick (`samples.parquet` columns)."""
        active = self.active_streams
        if active is None and self.service is not None:
            active = self.service.active_http_streams
        values = {"queue_depth": self.queue_depth, "active_streams": active, "kv_cache_bytes": self.kv_cache_bytes,
                  "conv_cache_bytes": self.conv_cache_bytes, "leak_bytes": self.leak_bytes,
                  "cuda_allocated_bytes": self.cuda_allocated_bytes, "cuda_reserved_bytes": self.cuda_reserved_bytes,
                  "stalled_s": self.stalled_s}
        return {k: None if v is None else float(v) for k, v in values.items()}


SAMPLED = tuple(ServiceStats().sample())  # the stats columns of samples.parquet
