"""An exception inside the engine fails the request it concerns, never the loop; a broken loop ends every request.

Real `tiny` engines. A value that slipped past validation is put on the engine's config with
`model_copy(update=...)`, which does not validate (the config model itself refuses it: see
tests/unit/runtime/test_config.py); a failing step is the `fail_step_after_requests` fault.
"""

from __future__ import annotations

import pytest

from vvbench.core.errors import EngineError, SynthesisFailed
from vvbench.runtime.config import AdaptiveSteps, RuntimeConfig
from vvbench.runtime.engine import MAX_FAILED_STEPS, Engine
from vvbench.runtime.request import RequestState, SynthesisRequest

TINY = dict(preset="tiny", max_batch=2, batch_window_ms=0)


def test_an_admission_that_raises_fails_that_request_and_the_engine_goes_on():
    with Engine(RuntimeConfig(**TINY)) as e:
        good = e.config
        # The value: steps_for overflows (round(10 - 1e308 * chars) is -inf).
        e.config = good.model_copy(update={"diffusion_steps": AdaptiveSteps.model_construct(min=1, max=10, per_char=1e308)})
        h = e.submit(SynthesisRequest(text="hello", seed=0))
        with pytest.raises(SynthesisFailed, match="could not start: OverflowError"):
            h.audio(timeout=30)
        assert h.state is RequestState.FAILED and e.alive and e.stats()["active_streams"] == 0
        e.config = good
        audio, _ = e.synthesize(SynthesisRequest(text="hello", seed=0), timeout=60)
        assert len(audio) > 0 and e.stats()["requests"]["failed"] == 1


def test_a_failing_step_fails_its_streams_and_the_next_request_runs():
    with Engine(RuntimeConfig(**TINY, faults={"fail_step_after_requests": 1})) as e:
        e.synthesize(SynthesisRequest(text="One.", seed=0), timeout=60)  # one finished: the fault is armed
        pair = [e.submit(SynthesisRequest(text=f"Batch {i}.", seed=i)) for i in range(2)]
        for h in pair:
            with pytest.raises(SynthesisFailed, match="engine step failed: InjectedFault"):
                h.audio(timeout=30)
        assert e.alive and e.stats()["active_streams"] == 0
        e.reconfigure({"faults": {"fail_step_after_requests": None}})
        audio, _ = e.synthesize(SynthesisRequest(text="Two.", seed=1), timeout=60)
        assert len(audio) > 0


def test_steps_failing_in_a_row_stop_the_engine_and_no_request_hangs():
    with Engine(RuntimeConfig(**TINY, faults={"fail_step_after_requests": 1})) as e:
        e.synthesize(SynthesisRequest(text="One.", seed=0), timeout=60)
        for i in range(MAX_FAILED_STEPS - 1):
            with pytest.raises(SynthesisFailed):
                e.synthesize(SynthesisRequest(text="Fails.", seed=i), timeout=30)
            assert e.alive
        # Two streams fill the slots of the last failing step; the third waits in the queue. The
        # engine's lock is held while they are queued so its thread cannot admit the first two alone.
        with e._lock:
            last = [e.submit(SynthesisRequest(text=f"The last straw {i}.", seed=i)) for i in range(3)]
        for h in last[:2]:
            with pytest.raises(SynthesisFailed, match="engine step failed"):
                h.audio(timeout=30)
        with pytest.raises(EngineError, match="engine failed: .*steps failed in a row"):
            last[2].audio(timeout=30)
        e._thread.join(5)
        assert not e.alive and "steps failed in a row" in e.failure
        with pytest.raises(EngineError, match="engine failed"):
            e.submit(SynthesisRequest(text="Too late.", seed=0))
