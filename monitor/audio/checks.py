"""The audio checks: is this synthesised speech usable? One verdict per check, with its reason.

`check_audio(samples, rate, expected_s=None, thresholds=AudioThresholds())` measures the waveform
(`vvbench.monitor.audio.levels`) and judges it:

| check | fails when | default |
|---|---|---|
| `valid` | the audio is empty or holds NaN/infinity (every other check is then not measured) | |
| `silence` | less than `min_active_ratio` of its 20 ms frames are above `silence_dbfs` | 20 %, −50 dBFS (`vvbench.core.audio`'s audible) |
| `dropout` | a silent run inside speech (between the first and last audible frame) lasts longer than `max_gap_s` | 1.5 s |
| `clipping` | more than `max_clipped_ratio` of the samples sit at or beyond `clip_level` of full scale | 0.1 %, 0.999 |
| `level` | the speech RMS (over audible frames) is outside `min_rms_dbfs`..`max_rms_dbfs` | −40..−3 dBFS |
| `duration` | with an expected duration: the audio is shorter than `expected × (1 − duration_tolerance)` (truncated) or longer than `expected × (1 + duration_tolerance)` (runaway), with at least `duration_slack_s` of slack | 10 %, 0.1 s |
| `snr` | the blind SNR (WADA, `vvbench.monitor.audio.wada`) is below `snr_min_db` | 25 dB |

Choices the issue left open, and why:
- A check that cannot be measured (SNR of silence, level without audible frames, duration
  without an expected duration) is *not measured* (`ok: None`), not failed — the check that
  explains the problem (`silence`) is the one that fails. `ok` of the report is False when any
  check failed.
- Natural pauses in speech last up to about a second (sentence ends, speaker turns); the
  dropout line of 1.5 s keeps them apart from a missing chunk or a stalled stream.
- 25 dB is the line the service's operators used by hand. WADA saturates at 100 dB on clean
  synthetic speech with digital-zero pauses, so the watchdog's canary also compares with its
  own clean baseline (`vvbench.monitor.watch.canary`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from vvbench.core.audio import AUDIBLE_DBFS, AUDIBLE_WINDOW_S
from vvbench.monitor.audio.levels import Levels, measure

__all__ = ["CHECKS", "AudioReport", "AudioThresholds", "CheckResult", "check_audio"]

CHECKS = ("valid", "silence", "dropout", "clipping", "level", "duration", "snr")


class AudioThresholds(BaseModel):
    """Where each check draws its line (see the module docstring for the table)."""

    model_config = ConfigDict(extra="forbid")

    frame_ms: float = Field(AUDIBLE_WINDOW_S * 1000, gt=0, le=1000, description="analysis frame length (ms)")
    silence_dbfs: float = Field(AUDIBLE_DBFS, le=0, description="a frame at or below this RMS level (dBFS) is silent")
    min_active_ratio: float = Field(0.2, ge=0, le=1, description="silence fails below this share of audible frames")
    max_gap_s: float = Field(1.5, gt=0, description="dropout fails when a silent run inside speech lasts longer (s)")
    clip_level: float = Field(0.999, gt=0, le=1, description="a sample at or beyond this share of full scale is clipped")
    max_clipped_ratio: float = Field(0.001, ge=0, le=1, description="clipping fails above this share of clipped samples")
    min_rms_dbfs: float = Field(-40.0, le=0, description="level fails when speech RMS is below this (dBFS)")
    max_rms_dbfs: float = Field(-3.0, le=0, description="level fails when speech RMS is above this (dBFS)")
    duration_tolerance: float = Field(0.1, ge=0, le=10, description="duration fails outside expected × (1 ± this)")
    duration_slack_s: float = Field(0.1, ge=0, description="and by at least this many seconds")
    snr_min_db: float = Field(25.0, ge=-20, le=100, description="snr fails below this blind SNR (dB)")


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict: ok True (pass), False (fail) or None (not measured), with why."""

    name: str
    ok: bool | None
    value: float | None
    limit: str
    reason: str

    def to_json(self) -> dict:
        return {"ok": self.ok, "value": self.value, "limit": self.limit, "reason": self.reason}


@dataclass(frozen=True)
class AudioReport:
    """Every check on one waveform, and the measurements behind them."""

    levels: Levels
    checks: dict[str, CheckResult] = field(default_factory=dict)
    expected_s: float | None = None

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def failed(self) -> list[str]:
        return [name for name, c in self.checks.items() if c.ok is False]

    def reasons(self) -> list[str]:
        return [f"{name}: {self.checks[name].reason}" for name in self.failed]

    def to_json(self) -> dict:
        return {"ok": self.ok, "failed": self.failed, "expected_s": self.expected_s,
                "measurements": self.levels.to_json(), "checks": {k: c.to_json() for k, c in self.checks.items()}}


def _num(v: float) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else round(float(v), 6)


def _duration(lv: Levels, expected_s: float | None, th: AudioThresholds) -> CheckResult:
    if expected_s is None:
        return CheckResult("duration", None, _num(lv.duration_s), "no expected duration", "not measured: no expected duration given")
    slack = max(th.duration_tolerance * expected_s, th.duration_slack_s)
    low, high = expected_s - slack, expected_s + slack
    limit = f"{max(0.0, low):.2f}..{high:.2f} s"
    if lv.duration_s < low:
        share = lv.duration_s / expected_s if expected_s > 0 else 0.0
        return CheckResult("duration", False, _num(lv.duration_s), limit,
                           f"truncated: {lv.duration_s:.2f} s of {expected_s:.2f} s expected ({share:.0%})")
    if lv.duration_s > high:
        return CheckResult("duration", False, _num(lv.duration_s), limit,
                           f"too long: {lv.duration_s:.2f} s, {expected_s:.2f} s expected")
    return CheckResult("duration", True, _num(lv.duration_s), limit, f"{lv.duration_s:.2f} s of {expected_s:.2f} s expected")


def _judge(lv: Levels, expected_s: float | None, th: AudioThresholds) -> dict[str, CheckResult]:
    out: dict[str, CheckResult] = {}
    active_limit = f">= {th.min_active_ratio:.0%} audible"
    out["silence"] = CheckResult(
        "silence", lv.active_ratio >= th.min_active_ratio, _num(lv.active_ratio), active_limit,
        f"{lv.active_ratio:.0%} of frames above {th.silence_dbfs:g} dBFS")
    out["dropout"] = CheckResult(
        "dropout", lv.longest_gap_s <= th.max_gap_s, _num(lv.longest_gap_s), f"<= {th.max_gap_s:g} s",
        f"longest silence inside speech {lv.longest_gap_s:.2f} s")
    out["clipping"] = CheckResult(
        "clipping", lv.clipped_ratio <= th.max_clipped_ratio, _num(lv.clipped_ratio), f"<= {th.max_clipped_ratio:.2%}",
        f"{lv.clipped_ratio:.3%} of samples at or beyond {th.clip_level:g} of full scale")
    level_limit = f"{th.min_rms_dbfs:g}..{th.max_rms_dbfs:g} dBFS"
    if math.isnan(lv.rms_dbfs):
        out["level"] = CheckResult("level", None, None, level_limit, "not measured: no audible frame")
    else:
        ok = th.min_rms_dbfs <= lv.rms_dbfs <= th.max_rms_dbfs
        why = "too quiet" if lv.rms_dbfs < th.min_rms_dbfs else "too loud" if not ok else "speech level"
        out["level"] = CheckResult("level", ok, _num(lv.rms_dbfs), level_limit,
                                   f"{why}: RMS {lv.rms_dbfs:.1f} dBFS, peak {lv.peak_dbfs:.1f} dBFS")
    out["duration"] = _duration(lv, expected_s, th)
    if math.isnan(lv.snr_db) or lv.active_ratio == 0:
        out["snr"] = CheckResult("snr", None, None, f">= {th.snr_min_db:g} dB", "not measured: no speech to measure")
    else:
        out["snr"] = CheckResult("snr", lv.snr_db >= th.snr_min_db, _num(lv.snr_db), f">= {th.snr_min_db:g} dB",
                                 f"blind SNR {lv.snr_db:.1f} dB")
    return out


def check_audio(samples: np.ndarray, rate: int, expected_s: float | None = None,
                thresholds: AudioThresholds | None = None) -> AudioReport:
    """Run every check on `samples` (float, integer full scale ±1) at `rate` Hz.

    `expected_s`: how long the audio should be (the duration check is not measured without it).
    Pure: no I/O, the same input gives the same report.
    """
    th = thresholds or AudioThresholds()
    if rate <= 0:
        raise ValueError(f"sample rate must be positive, got {rate}")
    lv = measure(samples, rate, frame_ms=th.frame_ms, silence_dbfs=th.silence_dbfs, clip_level=th.clip_level,
                 max_gap_s=th.max_gap_s)
    if not lv.finite:
        why = "empty audio" if lv.samples == 0 else "audio holds NaN or infinity"
        checks = {"valid": CheckResult("valid", False, float(lv.samples), "non-empty, finite", why)}
        for name in CHECKS[1:]:
            checks[name] = CheckResult(name, None, None, "", f"not measured: {why}")
        return AudioReport(lv, checks, expected_s)
    checks = {"valid": CheckResult("valid", True, float(lv.samples), "non-empty, finite", f"{lv.samples} samples at {rate} Hz")}
    checks.update(_judge(lv, expected_s, th))
    return AudioReport(lv, checks, expected_s)
