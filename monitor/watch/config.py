"""The watchdog's configuration: one pydantic model, read from a YAML file and command-line flags.

Precedence: defaults < the YAML file (`--config watch.yaml`) < flags. Flags arrive as dotted
paths (`memory.rss.max`) and are merged over the file before one validation, so an error names
the file (or "command line") and the dotted path, in one line. Sizes read `20GiB`, `512MB` or
plain bytes, and `+150MB` means growth over the memory the service settled at (`memory.settle`
after ready); shares read `90%` or a plain number in (0, 1] (the same convention as `vvbench
serve --memory-guard`: a plain number above 1 is bytes); durations read `250ms`, `30s`, `5m`.

`preflight()` checks what only the machine can tell — the command exists, the PID is a process
this user can read — and is kept apart so that validation stays pure.
"""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path
from typing import Annotated, Any

import psutil
import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from vvbench.core.errors import ConfigError
from vvbench.core.units import parse_bytes, parse_duration, parse_fraction
from vvbench.core.validation import format_validation_error
from vvbench.monitor.audio.checks import AudioThresholds
from vvbench.monitor.watch.rules import (
    CanaryFailures,
    HealthProbeFailures,
    Limit,
    MemoryOverThreshold,
    MemoryTrend,
    ProcessExited,
    Rule,
    StartTimeout,
)


def _seconds(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if str(value).strip().startswith("-"):
        raise ValueError(f"must not be negative (got {value!r})")
    try:
        return parse_duration(value, "duration")
    except ConfigError as exc:
        raise ValueError(str(exc).removeprefix("duration: ")) from None


def parse_limit(value: Any) -> Limit | None:
    """`20GiB` / `512MB` / `123456` -> bytes; `90%` / `0.9` -> a fraction; `+150MB` -> growth once settled. Positive."""
    if value is None or isinstance(value, Limit):
        return value
    text = str(value).strip()
    if text.startswith("-"):
        raise ValueError(f"must not be negative (got {text!r})")
    if text.startswith("+"):
        try:
            growth = parse_bytes(text[1:], "threshold")
        except ConfigError as exc:
            raise ValueError(str(exc).removeprefix("threshold: ")) from None
        if growth <= 0:
            raise ValueError(f"must be positive (got {text!r})")
        return Limit(growth_bytes=growth)
    try:
        if text.endswith("%"):
            fraction = parse_fraction(text, "threshold")
            if fraction <= 0:
                raise ValueError(f"must be positive (got {text!r})")
            return Limit(fraction=fraction)
        try:
            number = float(text)
        except ValueError:
            number = None
        if number is not None and 0 < number <= 1:
            return Limit(fraction=number)
        size = parse_bytes(text, "threshold")
    except ConfigError as exc:
        raise ValueError(str(exc).removeprefix("threshold: ")) from None
    if size <= 0:
        raise ValueError(f"must be positive (got {text!r})")
    return Limit(bytes=size)


def _argv(value: Any) -> Any:
    return shlex.split(value) if isinstance(value, str) else value


Seconds = Annotated[float, BeforeValidator(_seconds)]
Threshold = Annotated[Limit | None, BeforeValidator(parse_limit)]
Argv = Annotated[list[str] | None, BeforeValidator(_argv)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)


class MemoryRule(_Model):
    max: Threshold = Field(None, description="restart above this: bytes (20GiB), a share (90%) of RAM / GPU memory, or growth over the settled memory (+2GiB)")
    consecutive: int = Field(3, ge=1, le=10_000, description="for this many consecutive samples")


class Trend(_Model):
    window: Seconds = Field(60.0, gt=0, description="least-squares fit over this much recent memory history")
    horizon: Seconds = Field(60.0, ge=0, description="restart when the trend reaches a threshold within this long (0: off)")
    min_samples: int = Field(10, ge=2, description="fit only with at least this many samples")


class Memory(_Model):
    rss: MemoryRule = Field(default_factory=MemoryRule)
    gpu: MemoryRule = Field(default_factory=MemoryRule)
    trend: Trend = Field(default_factory=Trend)
    # A minute: several times the warm-up measured for `vvbench serve --preset tiny` on CPU (about 5 s, within
    # 9 s on a loaded machine: docs/watchdog.md), room for a GPU service's pools and first batches; `restart.stable`.
    settle: Seconds = Field(60.0, ge=0, description="after ready, trend rules wait this long and growth limits (+2GiB) "
                            "take their base here: warm-up growth is not a leak (0: judge from ready)")


class Health(_Model):
    path: str = Field("/healthz", description="health probe path (200 = healthy)")
    ready_path: str = Field("/readyz", description="readiness path polled after each start (200 = ready)")
    every: Seconds = Field(2.0, gt=0, description="probe period")
    timeout: Seconds = Field(2.0, gt=0, description="a probe that takes longer fails")
    slow: Seconds = Field(1.0, gt=0, description="a probe answered 200 but slower than this counts as failed")
    failures: int = Field(3, ge=1, description="restart after this many failed probes in a row")
    start_timeout: Seconds = Field(300.0, gt=0, description="restart when not ready this long after a start")


class CrashLoop(_Model):
    restarts: int = Field(5, ge=1, description="after this many restarts within the window, stop restarting")
    window: Seconds = Field(600.0, gt=0)


class Restart(_Model):
    grace: Seconds = Field(30.0, ge=0, description="after SIGTERM, how long the service may drain before SIGKILL")
    backoff: Seconds = Field(1.0, ge=0, description="delay before the first restart")
    backoff_factor: float = Field(2.0, ge=1.0, le=100.0, description="each further restart waits this much longer")
    backoff_max: Seconds = Field(60.0, ge=0)
    stable: Seconds = Field(60.0, ge=0, description="ready this long: the backoff starts over")
    crash_loop: CrashLoop = Field(default_factory=CrashLoop)
    command: Argv = Field(None, description="attach mode: the command that restarts the service (no shell)")
    command_timeout: Seconds = Field(120.0, gt=0)


class Canary(_Model):
    every: Seconds = Field(60.0, ge=0, description="canary period (0: off)")
    text: str = Field("The quick brown fox jumps over the lazy dog.", min_length=1)
    voice: str = "alloy"
    seed: int | None = Field(1234, ge=0, description="fixed seed (null: none sent; the MD5 check is then off)")
    model: str | None = "vvbench-canary"
    path: str = "/v1/audio/speech"
    timeout: Seconds = Field(60.0, gt=0)
    snr_drop_db: float = Field(10.0, gt=0, description="fail when SNR falls this far below the first clean canary's")
    restart_after: int | None = Field(None, ge=1, description="restart after this many failed canaries in a row (default: alert only)")
    checks: AudioThresholds = Field(default_factory=AudioThresholds)


class Metrics(_Model):
    port: int | None = Field(None, ge=0, le=65535, description="serve /metrics on this port (0: a free one; none: off)")
    host: str = Field("127.0.0.1", description="address to bind (loopback unless told otherwise)")


class WatchConfig(_Model):
    """Everything `vvbench watch` needs (see docs/watchdog.md)."""

    command: Argv = Field(None, description="spawn and supervise this argv")
    pid: int | None = Field(None, ge=1, description="attach to this running process instead")
    url: str | None = Field(None, description="the service's base URL (default: learned from the child's 'listening on URL' line)")
    api_key: str | None = None
    sample_hz: float = Field(5.0, gt=0, le=50)
    sample_stats: bool = Field(True, description="also sample the service's /v1/stats")
    events: Path | None = Field(None, description="append every event to this JSONL file")
    alert_cmd: Argv = Field(None, description="run with each alert's JSON on stdin (no shell)")
    alert_timeout: Seconds = Field(10.0, gt=0)
    systemd: bool = False
    run_for: Seconds | None = Field(None, gt=0, description="stop after this long (default: until SIGTERM/SIGINT)")
    memory: Memory = Field(default_factory=Memory)
    health: Health = Field(default_factory=Health)
    restart: Restart = Field(default_factory=Restart)
    canary: Canary = Field(default_factory=Canary)
    metrics: Metrics = Field(default_factory=Metrics)

    @model_validator(mode="after")
    def _one_target(self) -> WatchConfig:
        if bool(self.command) == (self.pid is not None):
            raise ValueError("give either a command to supervise (after --) or --pid to attach, not both or neither")
        if self.restart.command and self.pid is None:
            raise ValueError("restart.command (--restart-cmd) is for attach mode (--pid); a spawned command is restarted by the watchdog")
        return self

    @property
    def spawns(self) -> bool:
        return bool(self.command)

    def rules(self) -> list[Rule]:
        """The configured rules, in the order their restarts take precedence."""
        rules: list[Rule] = [ProcessExited(), StartTimeout(self.health.start_timeout)]
        limits = [(s, getattr(self.memory, s)) for s in ("rss", "gpu") if getattr(self.memory, s).max is not None]
        rules += [MemoryOverThreshold(source, rule.max, rule.consecutive) for source, rule in limits]
        t = self.memory.trend
        if t.horizon > 0:
            rules += [MemoryTrend(source, rule.max, t.window, t.horizon, t.min_samples, self.memory.settle)
                      for source, rule in limits]
        rules.append(HealthProbeFailures(self.health.failures))
        if self.canary.restart_after:
            rules.append(CanaryFailures(self.canary.restart_after))
        return rules


def _merge(base: dict, dotted: dict[str, Any]) -> dict:
    out = dict(base)
    for key, value in dotted.items():
        node = out
        *parents, last = key.split(".")
        for p in parents:
            child = node.get(p)
            node[p] = dict(child) if isinstance(child, dict) else {}
            node = node[p]
        node[last] = value
    return out


def load_watch_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> WatchConfig:
    """The YAML file at `path` (optional) with `overrides` (dotted path -> value) on top, validated."""
    data: dict = {}
    source = "command line"
    if path is not None:
        source = str(path)
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    try:
        return WatchConfig.model_validate(_merge(data, overrides))
    except ValidationError as exc:
        origins = dict.fromkeys(overrides, "command line")
        raise ConfigError(format_validation_error(exc, source, model=WatchConfig, origins=origins)) from None


def _resolve_command(argv: list[str], what: str) -> None:
    exe = argv[0]
    found = shutil.which(exe) if os.sep not in exe else (exe if os.access(exe, os.X_OK) and Path(exe).is_file() else None)
    if not found:
        raise ConfigError(f"{what}: command not found: {exe}")


def readable_process(pid: int) -> psutil.Process:
    """The process `pid`, checked to exist and to be readable (ConfigError otherwise)."""
    try:
        proc = psutil.Process(pid)
        proc.memory_info()
    except psutil.NoSuchProcess:
        raise ConfigError(f"--pid {pid}: no such process") from None
    except psutil.AccessDenied:
        raise ConfigError(f"--pid {pid}: cannot read this process's memory (another user's; run as its user or root)") from None
    return proc


def preflight(cfg: WatchConfig) -> None:
    """Check that the command exists and the PID is a readable process (ConfigError otherwise)."""
    if cfg.command:
        _resolve_command(cfg.command, "command")
    for name, argv in (("--alert-cmd", cfg.alert_cmd), ("--restart-cmd", cfg.restart.command)):
        if argv:
            _resolve_command(argv, name)
    if cfg.pid is not None:
        readable_process(cfg.pid)
        if cfg.pid == os.getpid():
            raise ConfigError(f"--pid {cfg.pid}: that is the watchdog itself")
