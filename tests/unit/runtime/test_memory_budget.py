"""Admission by the memory plan: never-fitting work is refused, the rest waits until it fits."""

import time

import psutil
import pytest

from vvbench.core.errors import ConfigError, InputError
from vvbench.runtime.config import RuntimeConfig
from vvbench.runtime.engine import Engine
from vvbench.runtime.memory_budget import MemoryBudget
from vvbench.runtime.request import RequestState, SynthesisRequest

PROSE = "Every lighthouse on this coast was built by the same two brothers, a century apart. "
CONFIG = dict(preset="tiny", max_batch=4, batch_window_ms=0, max_input_chars=200_000)


@pytest.fixture(scope="module")
def engine():
    # A budget ~120 MiB above what the process holds now: the engine's fixed part (weights,
    # caches, activations) comes out of it, and a few tens of MiB are left for streams.
    budget = psutil.Process().memory_info().rss + 120 * 2**20
    e = Engine(RuntimeConfig(**CONFIG), memory_budget_bytes=budget)
    assert e.memory.stream_budget_bytes > 20 * 2**20, e.memory.stats()
    yield e
    e.close()


def text_needing(engine, share: float) -> str:
    """Prose whose memory need is about `share` of what the budget leaves for streams."""
    unit = engine.memory_need(PROSE * 10, engine.plan(PROSE * 10).n_frames(3200))
    return PROSE * max(1, int(10 * share * engine.memory.stream_budget_bytes / unit))


def first_prompt_tokens(engine, text: str) -> int:
    return engine.preset.voice_prompt_tokens + engine.count_tokens(text)


def need_of(engine, text: str) -> int:
    return engine.memory_need(text, engine.plan(text).n_frames(3200))


def wait(predicate, timeout_s=30.0):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_a_request_that_can_never_fit_is_refused_at_submission(engine):
    with pytest.raises(InputError, match="memory budget") as exc:
        engine.submit(SynthesisRequest(text=text_needing(engine, 1.3), seed=0))
    assert exc.value.param == "input"
    assert engine.stats()["queue_depth"] == 0


def test_a_request_that_fits_later_waits_and_starts_when_memory_frees(engine):
    first = engine.submit(SynthesisRequest(text=text_needing(engine, 0.6), seed=1))
    wait(lambda: first.state is not RequestState.QUEUED)
    second = engine.submit(SynthesisRequest(text=text_needing(engine, 0.6), seed=2))
    wait(lambda: engine.stats()["held_for_memory"] == 1)
    stats = engine.stats()
    assert second.state is RequestState.QUEUED and stats["active_streams"] == 1
    prompt_bytes = stats["stream_reserved_bytes"] - stats["kv_cache_bytes"]  # the rest is the prompt's embeddings
    assert stats["stream_reserved_bytes"] == need_of(engine, first.request.text)
    assert prompt_bytes == first_prompt_tokens(engine, first.request.text) * 256 * 4
    first.cancel()
    wait(lambda: second.state is not RequestState.QUEUED)
    assert engine.stats()["stream_reserved_bytes"] == need_of(engine, second.request.text)
    second.cancel()
    wait(lambda: engine.stats()["active_streams"] == 0)
    assert engine.stats()["stream_reserved_bytes"] == 0


def test_jobs_leave_the_interactive_reserve(engine):
    budget = engine.memory
    reserve = budget.stream_budget_bytes - budget.limit(background=True)
    assert reserve > 0
    share = 1 - reserve / budget.stream_budget_bytes / 2  # fits the budget, not the budget less the reserve
    text = text_needing(engine, share)
    assert budget.limit(background=True) < need_of(engine, text) <= budget.limit(background=False)
    with pytest.raises(InputError, match="for a job"):
        engine.check_fits(text, engine.plan(text).n_frames(3200), background=True)
    engine.check_fits(text, engine.plan(text).n_frames(3200), background=False)


def test_the_reserve_never_takes_more_than_half_of_what_streams_may_hold():
    budget = MemoryBudget(budget_bytes=1000, fixed_bytes=200, reserve_bytes=10_000)
    assert budget.limit(background=True) == 400 and budget.limit(background=False) == 800


def test_a_budget_below_the_fixed_part_is_refused():
    with pytest.raises(ConfigError, match="below what the engine holds"):
        MemoryBudget(budget_bytes=100, fixed_bytes=200, reserve_bytes=0)
