"""/healthz sees a wedged engine (a frame step that never returns) and not a busy one (a long prompt read in bounded steps)."""

from __future__ import annotations

import threading
import time

import pytest

from tests.conftest import in_process_service
from vvbench.runtime.request import RequestState, SynthesisRequest

PROSE = "The archive keeps every letter the harbour master wrote, in the order he wrote them. "


class StuckStep:
    """The engine's real stepper, except that a frame step blocks until released (a wedged kernel or driver call)."""

    def __init__(self, real):
        self.real = real
        self.entered = threading.Event()
        self.release = threading.Event()

    def __getattr__(self, name):
        return getattr(self.real, name)

    def step(self, streams):
        self.entered.set()
        self.release.wait(60)
        return self.real.step(streams)


@pytest.fixture(scope="module")
def engine():
    from vvbench.runtime.config import RuntimeConfig
    from vvbench.runtime.engine import Engine

    e = Engine(RuntimeConfig(preset="tiny", max_batch=2, batch_window_ms=0, max_input_chars=40_000))
    yield e
    e.close()


def test_a_step_that_never_returns_turns_healthz_503_within_the_stall_time(engine, tmp_path):
    with in_process_service(engine, tmp_path, health_stall_s=0.5) as http:
        stuck = StuckStep(engine.stepper)
        engine.stepper = stuck
        try:
            handle = engine.submit(SynthesisRequest(text="Stuck.", seed=1))
            assert stuck.entered.wait(30)
            t0 = time.monotonic()
            while http.get("/healthz").status_code == 200:
                assert time.monotonic() - t0 < 3.0, "a wedged step was reported healthy"
                time.sleep(0.05)
            body = http.get("/healthz").json()
            assert body["status"] == "unhealthy" and "no progress" in body["detail"]
        finally:
            stuck.release.set()
            engine.stepper = stuck.real
        assert len(handle.audio(timeout=60)) > 0
        assert http.get("/healthz").status_code == 200


@pytest.mark.slow  # ~11 s: the prompt must get past 6,000 tokens first
def test_a_long_prompt_read_in_bounded_steps_stays_healthy(engine, tmp_path):
    with in_process_service(engine, tmp_path, health_stall_s=1.0) as http:
        job = engine.submit(SynthesisRequest(text=PROSE * 400, seed=2, priority=1, max_input_chars=40_000))
        deadline = time.monotonic() + 60
        while engine.stats()["prefill_tokens"] < 6000:  # where one 512-token step took 1.5-2 s
            assert time.monotonic() < deadline and job.state is not RequestState.RUNNING
            time.sleep(0.05)
        probes, t0 = [], time.monotonic()
        while time.monotonic() - t0 < 3.0 and job.state is RequestState.PREFILL:
            probes.append(http.get("/healthz").status_code)
            time.sleep(0.1)
        longest = engine.stats()["max_iteration_s"]
        job.cancel()
        assert probes and set(probes) == {200}, probes
        assert longest < 1.0, longest
