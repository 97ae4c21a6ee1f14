"""The canary: a fixed text with a fixed seed, synthesised every P seconds and judged.

One canary is `POST {url}/v1/audio/speech` with `{"model", "input", "voice", "response_format":
"wav", "seed", "stream": false}` (OpenAI's fields plus vvbench's `seed` and `stream`), the whole
WAV read back, then judged by `CanaryJudge`:

- the audio checks (`vvbench.monitor.audio.checks`): valid, silence, dropout, clipping, level, blind SNR
  above the absolute floor (`checks.snr_min_db`, 25 dB), and duration against the *reference*
  canary's duration (truncation);
- `md5`: the audio's MD5 against the reference canary's — the same seed must give the same
  bits, so any change is drift (a changed model or config, lost determinism, added noise);
- `snr_drop`: SNR more than `snr_drop_db` (10 dB) below the *clean baseline*'s SNR. WADA
  saturates near 100 dB on clean synthetic speech, so an absolute floor alone misses noise that
  takes a 100 dB reading down to 40 dB; the drop against the service's own clean output catches it;
- `http`: no audio at all (connection refused, timeout, non-200).

The *reference* is the first canary that returned audio (the MD5 and duration to compare with,
as the issue asks: "an MD5 against the first canary"); the *clean baseline* is the first canary
that passed every audio check. Both outlive restarts of the service: a restarted service must
still produce the same bits. With `seed: null` no seed is sent and the MD5 check is off.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from vvbench.core.audio import decode_wav
from vvbench.core.errors import InputError
from vvbench.monitor.audio.checks import check_audio
from vvbench.monitor.watch.config import Canary

CANARY_CHECKS = ("http", "valid", "silence", "dropout", "clipping", "level", "duration", "snr", "snr_drop", "md5")


@dataclass
class CanaryResult:
    """One canary's outcome."""

    t: float
    ok: bool
    status: int | None
    latency_s: float
    failed: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    checks: dict[str, bool | None] = field(default_factory=dict)
    snr_db: float | None = None
    duration_s: float | None = None
    md5: str | None = None
    baseline_snr_db: float | None = None
    became_baseline: bool = False


@dataclass
class Fetched:
    """What one canary request brought back."""

    t: float
    status: int | None
    latency_s: float
    body: bytes = b""
    error: str | None = None


def fetch(url: str, cfg: Canary, api_key: str | None = None) -> Fetched:
    """POST the canary request to the service at `url` (bounded by `cfg.timeout`)."""
    payload = {"model": cfg.model, "input": cfg.text, "voice": cfg.voice, "response_format": "wav", "stream": False}
    if cfg.seed is not None:
        payload["seed"] = cfg.seed
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    req = urllib.request.Request(url.rstrip("/") + cfg.path, data=json.dumps(payload).encode(), headers=headers, method="POST")
    t = time.time()
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=cfg.timeout) as resp:
            body = resp.read()
            return Fetched(t, resp.status, time.perf_counter() - t0, body)
    except urllib.error.HTTPError as exc:
        detail = exc.read(300).decode(errors="replace")
        return Fetched(t, exc.code, time.perf_counter() - t0, error=f"HTTP {exc.code}: {' '.join(detail.split())[:200]}")
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return Fetched(t, None, time.perf_counter() - t0, error=f"{type(exc).__name__}: {reason}")


class CanaryJudge:
    """Judges canaries against the reference and the clean baseline (see the module docstring).

    Holds that state, so one judge serves the watchdog's whole life; used by one thread.
    """

    def __init__(self, cfg: Canary):
        self.cfg = cfg
        self.reference_md5: str | None = None
        self.reference_duration_s: float | None = None
        self.baseline_snr_db: float | None = None

    def judge(self, got: Fetched) -> CanaryResult:
        """The verdict on one fetched canary (updates the reference and baseline when first seen)."""
        res = CanaryResult(t=got.t, ok=False, status=got.status, latency_s=round(got.latency_s, 4),
                           baseline_snr_db=self.baseline_snr_db)
        if got.error is not None or got.status != 200:
            res.failed, res.reasons = ["http"], [f"http: {got.error or f'HTTP {got.status}'}"]
            res.checks = {"http": False}
            return res
        try:
            samples, rate = decode_wav(got.body, "canary response")
        except InputError as exc:
            res.failed, res.reasons, res.checks = ["valid"], [f"valid: {exc}"], {"http": True, "valid": False}
            return res
        report = check_audio(samples, rate, expected_s=self.reference_duration_s, thresholds=self.cfg.checks)
        res.md5 = hashlib.md5(got.body).hexdigest()
        res.duration_s = round(report.levels.duration_s, 4)
        snr = report.levels.snr_db
        res.snr_db = None if math.isnan(snr) else round(snr, 2)
        res.checks = {"http": True, **{name: c.ok for name, c in report.checks.items()}}
        res.failed, res.reasons = report.failed, report.reasons()
        if self.cfg.seed is not None:
            if self.reference_md5 is None:
                self.reference_md5, self.reference_duration_s = res.md5, res.duration_s
                res.checks["md5"] = None
            else:
                same = res.md5 == self.reference_md5
                res.checks["md5"] = same
                if not same:
                    res.failed.append("md5")
                    res.reasons.append(f"md5: {res.md5} differs from the first canary's {self.reference_md5} (same text and seed)")
        elif self.reference_duration_s is None:
            self.reference_duration_s = res.duration_s
        if self.baseline_snr_db is not None and res.snr_db is not None:
            dropped = res.snr_db < self.baseline_snr_db - self.cfg.snr_drop_db
            res.checks["snr_drop"] = not dropped
            if dropped:
                res.failed.append("snr_drop")
                res.reasons.append(f"snr_drop: {res.snr_db:.1f} dB, {self.baseline_snr_db - res.snr_db:.1f} dB below the "
                                   f"clean baseline's {self.baseline_snr_db:.1f} dB (limit {self.cfg.snr_drop_db:g} dB)")
        else:
            res.checks["snr_drop"] = None
        res.ok = not res.failed
        if res.ok and self.baseline_snr_db is None and res.snr_db is not None:
            self.baseline_snr_db = res.snr_db
            res.became_baseline = True
        res.baseline_snr_db = self.baseline_snr_db
        return res
