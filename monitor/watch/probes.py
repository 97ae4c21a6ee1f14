"""The watchdog's two background observers: health/readiness probes and the canary.

Both run on their own thread, so a probe that waits for its timeout or a canary synthesis that
takes seconds never holds up sampling and the rules. Each asks `target()` what to look at now
(the service's URL, its incarnation number and phase) and hands every result to `sink` tagged
with that incarnation; the supervisor drops results that belong to an incarnation it has
already restarted. Both loops end when `stop()` is called; every request they make is bounded by
its timeout.

- Probes: while the service is starting, `ready_path` every 0.2 s (so that readiness is seen
  within 0.2 s — it is part of the measured recovery time); while it runs, `path` every
  `every` seconds. A probe is ok when it answers 200 within `slow` seconds.
- Canary: the first one as soon as an incarnation is running (so the reference and the
  baseline exist early), then every `every` seconds while it runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from vvbench.core.net import probe as http_probe
from vvbench.monitor.watch.canary import CanaryJudge, fetch
from vvbench.monitor.watch.config import Canary, Health
from vvbench.monitor.watch.rules import Phase, Probe

STARTING_POLL_S = 0.2
IDLE_POLL_S = 0.1


@dataclass(frozen=True)
class Target:
    """What the observers should look at now."""

    incarnation: int
    url: str | None
    phase: Phase


def probe_once(url: str, timeout_s: float, slow_s: float) -> Probe:
    """GET `url` once: ok when 200 within `slow_s` (see `Probe`)."""
    t = time.time()
    t0 = time.perf_counter()
    status, why = http_probe(url, timeout_s=timeout_s)
    latency = time.perf_counter() - t0
    slow = status == 200 and latency > slow_s
    return Probe(t=t, ok=status == 200 and not slow, status=status, latency_s=latency, error=why, slow=slow)


class _Observer:
    def __init__(self, target: Callable[[], Target | None], name: str):
        self.target = target
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> _Observer:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout=timeout_s)

    def _run(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class Prober(_Observer):
    """Readiness while starting, health while running (see the module docstring)."""

    def __init__(self, target: Callable[[], Target | None], cfg: Health, sink: Callable[[int, str, Probe], None]):
        super().__init__(target, "vvbench-probes")
        self.cfg = cfg
        self.sink = sink

    def _run(self) -> None:
        while not self._stop.is_set():
            tgt = self.target()
            if tgt is None or tgt.url is None or tgt.phase not in (Phase.STARTING, Phase.RUNNING):
                self._stop.wait(IDLE_POLL_S)
                continue
            kind, path, wait = (("ready", self.cfg.ready_path, STARTING_POLL_S) if tgt.phase is Phase.STARTING
                                else ("health", self.cfg.path, self.cfg.every))
            t0 = time.monotonic()
            result = probe_once(tgt.url.rstrip("/") + path, self.cfg.timeout, self.cfg.slow)
            self.sink(tgt.incarnation, kind, result)
            self._stop.wait(max(0.0, wait - (time.monotonic() - t0)))


class CanaryRunner(_Observer):
    """A canary at each running incarnation's start, then every `cfg.every` seconds."""

    def __init__(self, target: Callable[[], Target | None], cfg: Canary, api_key: str | None,
                 sink: Callable[[int, object], None]):
        super().__init__(target, "vvbench-canary")
        self.cfg = cfg
        self.api_key = api_key
        self.sink = sink
        self.judge = CanaryJudge(cfg)

    def _run(self) -> None:
        seen: int | None = None
        next_t = 0.0
        while not self._stop.is_set():
            tgt = self.target()
            if tgt is None or tgt.url is None or tgt.phase is not Phase.RUNNING:
                self._stop.wait(IDLE_POLL_S)
                continue
            now = time.monotonic()
            if tgt.incarnation != seen:
                seen, next_t = tgt.incarnation, now
            if now < next_t:
                self._stop.wait(min(IDLE_POLL_S * 5, next_t - now))
                continue
            got = fetch(tgt.url, self.cfg, self.api_key)
            self.sink(tgt.incarnation, self.judge.judge(got))
            next_t += self.cfg.every
            if next_t < time.monotonic():
                next_t = time.monotonic() + self.cfg.every  # a canary longer than the period: no burst to catch up
