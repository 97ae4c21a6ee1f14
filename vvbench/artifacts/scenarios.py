"""Scenario files (`scenarios/*.yaml`) -> validated `Scenario` models, and the shipped set.

A scenario names the request mix, the arrival process, warm-up and duration, the playback
model's `prebuffer_ms`, and the SLOs (DESIGN.md section 5). Every model forbids unknown keys;
an error reads `FILE: dotted.path: what was expected` (several problems joined by `; `).

Choices where the issue is silent:
- The timeline is `warmup` then `duration`; the arrival process runs over both (requests that
  *start* during warm-up are marked and left out of statistics). After it comes `drain` (default:
  the longest class timeout, at most 120 s) for requests in flight to finish; what is still
  running then is recorded as `cancelled`.
- `stages` describe the whole timeline from time 0 (warm-up included): each stage has a
  duration, a rate, an optional linear ramp to `ramp_to`, and an optional `burst` of requests
  all sent at the stage's start. With stages, `duration` is their total minus the warm-up;
  `--duration` rescales the whole timeline, warm-up included, so a spike keeps its place.
- `max_inflight` (open loop) is the pool of concurrent requests per load worker; when it is
  exhausted, arrivals leave late and the lateness is recorded (`lag_s`), never silently dropped.
- Text files (`text: {file: x.txt}`) are read relative to the scenario file.
- `mix: round_robin` sends the classes in turn (request `i` is class `i mod n`, weights are not
  used) and draws each round's text, voice and `per_request` seed once for the whole round: in
  round `r = i div n` every class with the same text source, length and voices sends the same
  text with the same voice and seed (`value + r`). It pairs requests that differ only in their
  class's settings (e.g. `response_format`), interleaved in one run.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from vvbench.core.audio import SAMPLE_RATE
from vvbench.core.errors import ConfigError
from vvbench.core.units import parse_duration
from vvbench.core.validation import format_validation_error

CORPUS_NAMES = ("short", "medium", "long", "podcast")


def _seconds(value: Any) -> Any:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        try:
            return parse_duration(value)
        except ConfigError as exc:
            raise ValueError(str(exc).split(": ", 1)[-1]) from None
    return value


Seconds = Annotated[float, BeforeValidator(_seconds)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextSource(_Model):
    """Where a class's texts come from: a built-in corpus or a text file."""

    corpus: Literal["short", "medium", "long", "podcast"] | None = Field(None, description="built-in corpus: short, medium, long or podcast")
    file: str | None = Field(None, description="a UTF-8 text file, relative to the scenario file (Speaker N: lines or prose)")

    @model_validator(mode="after")
    def _one(self) -> TextSource:
        if (self.corpus is None) == (self.file is None):
            raise ValueError("give exactly one of corpus or file")
        return self

    @field_validator("file")
    @classmethod
    def _readable(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None or (info.context or {}).get("recorded"):
            return v  # a scenario read back from run.json: the file was read when the run ran
        base = Path((info.context or {}).get("base_dir", "."))
        path = (base / v).resolve()
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read text file {path} ({getattr(exc, 'strerror', None) or exc})") from None
        if not text.strip():
            raise ValueError(f"text file {path} is empty")
        return str(path)


class Length(_Model):
    """Distribution of the request text length in characters."""

    dist: Literal["fixed", "uniform", "lognormal"] = Field("uniform", description="fixed (min_chars), uniform in [min, max], or lognormal around median_chars clipped to [min, max]")
    min_chars: int = Field(1, ge=1, description="shortest text")
    max_chars: int = Field(400, ge=1, le=2_000_000, description="longest text")
    median_chars: int | None = Field(None, ge=1, description="lognormal: the median")
    sigma: float = Field(0.5, gt=0, le=5, description="lognormal: sigma of log(chars)")

    @model_validator(mode="after")
    def _ordered(self) -> Length:
        if self.min_chars > self.max_chars:
            raise ValueError(f"min_chars ({self.min_chars}) must be <= max_chars ({self.max_chars})")
        if self.dist == "lognormal" and self.median_chars is None:
            raise ValueError("lognormal needs median_chars")
        return self


class Seeds(_Model):
    """How each request's seed is chosen."""

    policy: Literal["fixed", "per_request", "server"] = Field("per_request", description="fixed: always `value`; per_request: value + request index; server: none sent (the server draws one)")
    value: int = Field(0, ge=0, description="the fixed seed, or the base of per_request seeds")


class RequestClass(_Model):
    """One kind of request in the mix."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,40}$", description="class name (rows' `cls`)")
    weight: float = Field(1.0, gt=0, description="relative share of requests")
    api: Literal["speech", "job"] = Field("speech", description="speech: streaming POST /v1/audio/speech; job: POST /v1/jobs then poll and fetch chunks")
    text: TextSource = Field(description="text source")
    length: Length = Field(default_factory=Length, description="text length distribution")
    voices: list[str] = Field(["alloy"], min_length=1, description="voices, drawn uniformly per request")
    seeds: Seeds = Field(default_factory=Seeds, description="seed policy")
    response_format: Literal["mp3", "opus", "aac", "flac", "wav", "pcm"] = Field(
        "wav", description="mp3, opus (Ogg), aac (ADTS), flac, wav or pcm; compressed answers are decoded as they arrive (speech only)")
    stream_format: Literal["audio", "sse"] = Field("audio", description="audio bytes or SSE events (speech only)")
    speed: float = Field(1.0, ge=0.25, le=4.0, description="speaking rate")
    timeout: Seconds = Field(120.0, gt=0, description="client-side limit per request (30s, 5m)")
    poll_interval: Seconds = Field(1.0, gt=0, description="jobs: how often the job is polled for new chunks")

    @model_validator(mode="after")
    def _job_formats(self) -> RequestClass:
        if self.api == "job" and self.response_format not in ("wav", "pcm"):
            raise ValueError(f"response_format {self.response_format!r} is for speech classes; job chunks are read as wav or pcm")
        return self


class Closed(_Model):
    """Closed loop: `users` each send their next request when the previous one finished."""

    users: int = Field(ge=1, le=100_000, description="concurrent users")
    think_time: Seconds = Field(0.0, ge=0, description="pause between a user's requests")


class Rate(_Model):
    """Open loop at a fixed rate: arrivals scheduled in advance, whatever the server does."""

    rate: float = Field(gt=0, le=100_000, description="requests per second")
    max_inflight: int | None = Field(None, ge=1, le=100_000, description="concurrent requests per worker (default: rate x longest timeout, 16..1000)")


class Stage(_Model):
    """A stretch of an open-loop timeline."""

    duration: Seconds = Field(gt=0, description="how long")
    rate: float = Field(ge=0, le=100_000, description="requests per second at the stage's start")
    ramp_to: float | None = Field(None, ge=0, le=100_000, description="rate at the stage's end (linear ramp); default: constant")
    burst: int = Field(0, ge=0, le=100_000, description="requests all sent at the stage's start, on top of the rate")


class Stages(_Model):
    """Open loop with a rate that changes over time (ramps and spikes)."""

    process: Literal["poisson", "constant"] = Field("poisson", description="inter-arrival law within stages")
    stages: list[Stage] = Field(min_length=1, description="the timeline, from time 0 (warm-up included)")
    max_inflight: int | None = Field(None, ge=1, le=100_000, description="concurrent requests per worker")


class Arrival(_Model):
    """Exactly one of closed, poisson, constant, stages."""

    closed: Closed | None = Field(None, description="closed loop: fixed number of users")
    poisson: Rate | None = Field(None, description="open loop, exponential inter-arrival times")
    constant: Rate | None = Field(None, description="open loop, evenly spaced arrivals")
    stages: Stages | None = Field(None, description="open loop, piecewise rates")

    @model_validator(mode="after")
    def _exactly_one(self) -> Arrival:
        given = [k for k in ("closed", "poisson", "constant", "stages") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of closed, poisson, constant, stages (got {', '.join(given) or 'none'})")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("closed", "poisson", "constant", "stages") if getattr(self, k) is not None)

    @property
    def open_loop(self) -> bool:
        return self.closed is None


class Scenario(_Model):
    """A benchmark scenario (see the module docstring)."""

    name: str = Field("scenario", pattern=r"^[A-Za-z0-9_.-]{1,60}$", description="name (default: the file's stem)")
    description: str = Field("", description="what this scenario is for")
    seed: int = Field(0, ge=0, description="seed of the mix, the texts and the arrival times")
    classes: list[RequestClass] = Field(min_length=1, description="the request mix")
    mix: Literal["weighted", "round_robin"] = Field(
        "weighted", description="weighted: each request's class drawn by weight; round_robin: classes in turn, "
                                "each round's text, voice and per_request seed the same for every class")
    arrival: Arrival = Field(description="how requests arrive")
    warmup: Seconds = Field(0.0, ge=0, description="leading period whose requests are excluded from statistics")
    duration: Seconds | None = Field(None, gt=0, description="measured period after warm-up (with stages: their total minus warmup)")
    drain: Seconds | None = Field(None, ge=0, description="time after the window for in-flight requests to finish")
    prebuffer_ms: float = Field(200.0, ge=0, le=60_000, description="playback starts this long after the first audible audio")
    pcm_sample_rate: int = Field(SAMPLE_RATE, ge=8000, le=192_000, description="sample rate assumed for response_format pcm")
    slos: dict[str, float] = Field(default_factory=dict, description="objectives, e.g. ttfa_p95_s: 5.5, success_min: 0.99")

    @field_validator("classes")
    @classmethod
    def _unique(cls, v: list[RequestClass]) -> list[RequestClass]:
        names = [c.name for c in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"class names must be unique (repeated: {', '.join(dup)})")
        return v

    @field_validator("slos")
    @classmethod
    def _known_slos(cls, v: dict[str, float]) -> dict[str, float]:
        from vvbench.artifacts.metrics import parse_slo

        for key, threshold in v.items():
            parse_slo(key, threshold)
        return v

    @model_validator(mode="after")
    def _window(self) -> Scenario:
        if self.arrival.stages is not None:
            total = sum(s.duration for s in self.arrival.stages.stages)
            if total <= self.warmup:
                raise ValueError(f"stages last {total:g} s, not longer than warmup ({self.warmup:g} s)")
            if self.duration is not None and abs(self.duration - (total - self.warmup)) > 1e-6:
                raise ValueError(f"duration ({self.duration:g} s) must equal the stages' total minus warmup ({total - self.warmup:g} s), or be left out")
            self.duration = total - self.warmup
        elif self.duration is None:
            raise ValueError("duration is required (e.g. 30s) unless arrival uses stages")
        if self.drain is None:
            self.drain = min(120.0, max(c.timeout for c in self.classes))
        return self

    @property
    def window_s(self) -> float:
        """Warm-up plus measured duration: the time over which requests are sent."""
        return self.warmup + (self.duration or 0.0)

    def with_duration(self, duration_s: float) -> Scenario:
        """A copy measured for `duration_s` seconds (with stages, the whole timeline is rescaled)."""
        data = self.model_dump(mode="json")
        if self.arrival.stages is not None:
            factor = duration_s / (self.duration or duration_s)
            for stage in data["arrival"]["stages"]["stages"]:
                stage["duration"] *= factor
            data["warmup"] = self.warmup * factor
            data["duration"] = None
        else:
            data["duration"] = duration_s
        return Scenario.model_validate(data)


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate one scenario file; ConfigError `FILE: dotted.path: expectation`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read scenario file ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping (name, classes, arrival, duration, ...) at the top level")
    data.setdefault("name", path.stem)
    try:
        return Scenario.model_validate(data, context={"base_dir": str(path.parent)})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, str(path), model=Scenario)) from None


def scenario_dir() -> Path | None:
    """The folder of the shipped scenarios (package data `vvbench.scenarios`), None if missing."""
    try:
        spec = importlib.util.find_spec("vvbench.scenarios")
    except ModuleNotFoundError:
        return None
    locations = list(spec.submodule_search_locations or []) if spec else []
    return Path(locations[0]) if locations else None


def shipped_scenarios() -> dict[str, Path]:
    """Name -> file of the scenarios shipped with vvbench (`scenarios/` in the source tree)."""
    folder = scenario_dir()
    if folder is None or not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def resolve_scenario(ref: str) -> Scenario:
    """A shipped scenario name (`smoke`) or a path to a YAML file -> Scenario."""
    path = Path(ref)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return load_scenario(path)
    shipped = shipped_scenarios()
    if ref in shipped:
        return load_scenario(shipped[ref])
    raise ConfigError(f"unknown scenario {ref!r}; shipped: {', '.join(shipped) or 'none found'}; or give a path to a YAML file")
