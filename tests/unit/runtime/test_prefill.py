"""Chunked prefill: chunks cut by the stream's own position, interactive prompts first, same audio in any batch."""

import hashlib
import time

import pytest

from vvbench.runtime.config import RuntimeConfig
from vvbench.runtime.engine import Engine
from vvbench.runtime.prefill import MAX_CHUNK_TOKENS, PREFILL_SHARE, PrefillBudget, chunk_bounds, chunk_tokens
from vvbench.runtime.presets import get_preset
from vvbench.runtime.request import RequestState, SynthesisRequest

PROSE = ("The survey crew walked the ridge at dawn, counting the markers the winter storms had left "
         "standing, and wrote down every one that had moved. ")


def md5(a) -> str:
    return hashlib.md5(a.tobytes()).hexdigest()


@pytest.mark.parametrize("preset", ["tiny", "small", "vibevoice-1.5b"])
def test_chunks_keep_their_attention_bounded_and_cover_the_prompt(preset):
    spec = get_preset(preset).lm
    per_cell = 2 * spec.layers * spec.heads * spec.head_dim
    per_token = spec.layers * (2 * spec.hidden**2 + 2 * spec.hidden * spec.kv_heads * spec.head_dim + 3 * spec.hidden * spec.ffn)
    total, start, cuts = 30_000, 0, []
    while start < total:
        start, end = chunk_bounds(spec, start, total)
        t = end - start
        assert 1 <= t <= MAX_CHUNK_TOKENS
        assert t == 1 or t * end * per_cell + t * per_token <= 1 << 28
        cuts.append(end)
        start = end
    assert cuts[-1] == total
    # Later chunks are shorter: the budget is attention work, not a token count.
    assert chunk_tokens(spec, 20_000) <= chunk_tokens(spec, 1_000) <= chunk_tokens(spec, 0)


def test_tiny_short_prompts_are_one_chunk_and_later_chunks_are_shorter():
    spec = get_preset("tiny").lm
    assert chunk_tokens(spec, 20_000) < chunk_tokens(spec, 1_000) < chunk_tokens(spec, 0)
    assert chunk_tokens(spec, 0) >= 64  # a short request's whole prompt


def test_budget_is_a_share_of_the_step_once_streams_run():
    budget = PrefillBudget()
    idle = budget.seconds(streams_ready=True)
    budget.observe_step(0.04)
    assert budget.seconds(streams_ready=True) == pytest.approx(PREFILL_SHARE * 0.04)
    assert budget.seconds(streams_ready=False) == idle > PREFILL_SHARE * 0.04


@pytest.fixture(scope="module")
def engine():
    e = Engine(RuntimeConfig(preset="tiny", max_batch=4, batch_window_ms=50, max_input_chars=40_000))
    yield e
    e.close()


def first_chunk(handle, timeout=120):
    chunk = next(handle.chunks(timeout=timeout))
    handle.cancel()
    return chunk.audio


def test_long_prompt_gives_the_same_audio_alone_and_next_to_other_long_prompts(engine):
    text = PROSE * 20  # ~2,700 characters: ~800 prompt tokens, cut into chunks of several sizes
    req = dict(text=text, seed=7, first_chunk_frames=2)
    alone = first_chunk(engine.submit(SynthesisRequest(**req)))
    others = [engine.submit(SynthesisRequest(text=PROSE * n, seed=n, first_chunk_frames=2)) for n in (13, 31)]
    mine = engine.submit(SynthesisRequest(**req))
    short = engine.submit(SynthesisRequest(text="A short one.", seed=1))
    batched = first_chunk(mine)
    for h in (*others, short):
        h.cancel()
    assert md5(batched) == md5(alone)


def test_interactive_request_is_prefilled_and_answered_while_a_long_job_prefills(engine):
    job = engine.submit(SynthesisRequest(text=PROSE * 250, seed=3, priority=1, max_input_chars=40_000))
    deadline = time.monotonic() + 60
    while engine.stats()["prefill_tokens"] == 0 or job.state is not RequestState.PREFILL:
        assert time.monotonic() < deadline, engine.stats()
        time.sleep(0.02)
    t0 = time.monotonic()
    short = engine.submit(SynthesisRequest(text="Is the line still open?", seed=4, priority=0))
    next(short.chunks(timeout=60))
    ttfa_s = time.monotonic() - t0
    still_reading = job.state is RequestState.PREFILL
    stats = engine.stats()
    short.cancel()
    job.cancel()
    assert still_reading, f"the short request waited for the job's whole prompt ({ttfa_s:.1f} s)"
    assert stats["max_iteration_s"] < 2.0, stats["max_iteration_s"]
