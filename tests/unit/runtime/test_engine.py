"""The engine: seed isolation across batches, chunking, admission, cancel, hot knobs, faults."""

import hashlib
import random
import time

import numpy as np
import pytest

from vvbench.core.audio import SAMPLE_RATE
from vvbench.core.errors import CapacityError, ConfigError, InputError, RequestCancelled
from vvbench.monitor.audio.wada import wada_snr
from vvbench.runtime.config import RuntimeConfig
from vvbench.runtime.engine import Engine
from vvbench.runtime.request import RequestState, SynthesisRequest

TEXT = "The same seed must give the same audio, alone or in a batch."
MIXED = [
    "Short one.",
    "A somewhat longer sentence that keeps going for a while, with commas, and more words.",
    "Hi!",
    "Numbers like 1,234 and 3.14 are read out.",
    "Speaker 1: Hello there.\nSpeaker 2: Hi, how are you?",
]


def md5(a: np.ndarray) -> str:
    return hashlib.md5(a.tobytes()).hexdigest()


@pytest.fixture(scope="module")
def engine():
    e = Engine(RuntimeConfig(preset="tiny", max_batch=16, batch_window_ms=20))
    yield e
    e.close()


def test_same_seed_same_audio_alone_and_in_mixed_batch_of_16(engine):
    alone, _ = engine.synthesize(SynthesisRequest(text=TEXT, seed=42, voice="nova"), timeout=120)
    rng = random.Random(1)
    handles = []
    for i in range(15):
        text = " ".join(rng.choice(MIXED) for _ in range(rng.randint(1, 2)))
        handles.append(engine.submit(SynthesisRequest(
            text=text, seed=i, voice=rng.choice(["alloy", "onyx", "vv-ben"]), diffusion_steps=rng.choice([None, 4]),
        )))
        if i == 6:
            handles.append(engine.submit(SynthesisRequest(text=TEXT, seed=42, voice="nova")))
    outs = [h.audio(timeout=300) for h in handles]
    assert md5(outs[7]) == md5(alone)
    sizes = engine.stats()["batch_sizes"]
    assert max(int(k) for k in sizes) >= 12, sizes  # it really ran inside a big batch


def test_different_seeds_differ(engine):
    a, _ = engine.synthesize(SynthesisRequest(text="Different seeds.", seed=1), timeout=60)
    b, _ = engine.synthesize(SynthesisRequest(text="Different seeds.", seed=2), timeout=60)
    assert len(a) == len(b) and md5(a) != md5(b)


def test_ten_seconds_faster_than_real_time_and_speech_like():
    text = "This is ten seconds of speech from the tiny preset, generated on the CPU. " * 2
    with Engine(RuntimeConfig(preset="tiny", max_batch=1, batch_window_ms=0)) as e:
        e.synthesize(SynthesisRequest(text="Warm up.", seed=0), timeout=60)
        t0 = time.perf_counter()
        audio, handle = e.synthesize(SynthesisRequest(text=text, seed=3), timeout=120)
        wall = time.perf_counter() - t0
    audio_s = len(audio) / SAMPLE_RATE
    assert audio_s >= 10
    assert wall < audio_s, f"{audio_s:.1f} s of audio took {wall:.1f} s"
    assert np.abs(audio).max() <= 1.0
    assert wada_snr(audio) >= 30


def test_noise_fault_lowers_blind_snr():
    text = "Noise makes the blind estimate of the signal to noise ratio drop."
    with Engine(RuntimeConfig(preset="tiny", max_batch=1)) as e:
        clean, _ = e.synthesize(SynthesisRequest(text=text, seed=5), timeout=60)
        e.reconfigure({"faults": {"noise_db": -30}})
        noisy, _ = e.synthesize(SynthesisRequest(text=text, seed=5), timeout=60)
    assert wada_snr(clean) >= 30
    assert wada_snr(noisy) < wada_snr(clean) - 10


def test_chunks_follow_first_and_regular_sizes(engine):
    h = engine.submit(SynthesisRequest(text="Chunk sizes are knobs. " * 3, seed=0, first_chunk_frames=1, chunk_frames=4))
    chunks = list(h.chunks(timeout=60))
    frames = [c.frames for c in chunks]
    assert frames[0] == 1 and all(f == 4 for f in frames[1:-1]) and 1 <= frames[-1] <= 4
    assert chunks[-1].final and not any(c.final for c in chunks[:-1])
    assert sum(frames) == h.n_frames
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert all(len(c.audio) == c.frames * 3200 for c in chunks)
    assert h.state is RequestState.DONE and h.progress == 1.0
    t = h.timings()
    assert t["first_chunk"] <= t["total"] and t["lm"] > 0 and t["diffusion"] > 0 and t["decode"] > 0


def test_resume_from_frame_gives_the_tail_of_the_same_audio(engine):
    req = dict(text="A long-form job resumes where it stopped.", seed=9, chunk_frames=3)
    full, h = engine.synthesize(SynthesisRequest(**req), timeout=60)
    tail, _ = engine.synthesize(SynthesisRequest(**req, start_frame=6), timeout=60)
    assert np.array_equal(tail, full[6 * 3200:])


@pytest.mark.parametrize(
    "kwargs, param",
    [({"text": "   "}, "input"), ({"text": "x" * 5000}, "input"), ({"text": "ok", "voice": "nobody"}, "voice"),
     ({"text": "ok", "speed": 9}, "speed"), ({"text": "ok", "diffusion_steps": 0}, "diffusion_steps")],
)
def test_bad_requests_name_the_parameter(engine, kwargs, param):
    with pytest.raises(InputError) as exc:
        engine.submit(SynthesisRequest(**kwargs))
    assert exc.value.param == param


def test_queue_full_and_cancel():
    with Engine(RuntimeConfig(preset="tiny", max_batch=1, max_queue=2, batch_window_ms=0)) as e:
        long = e.submit(SynthesisRequest(text="A long request holds the only slot. " * 20, seed=0))
        next(long.chunks(timeout=60))  # running now
        queued = [e.submit(SynthesisRequest(text="Queued.", seed=i)) for i in range(2)]
        with pytest.raises(CapacityError) as exc:
            e.submit(SynthesisRequest(text="One too many.", seed=3))
        assert exc.value.retry_after_s >= 1
        long.cancel()
        with pytest.raises(RequestCancelled):
            list(long.chunks(timeout=30))
        assert long.state is RequestState.CANCELLED
        for q in queued:
            assert len(q.audio(timeout=60)) > 0
        assert e.stats()["requests"]["cancelled"] == 1


def test_per_request_input_limit_and_timeout_override_the_knobs():
    cfg = RuntimeConfig(preset="tiny", max_batch=1, max_input_chars=20, request_timeout_s=0.3, batch_window_ms=0)
    with Engine(cfg) as e:
        with pytest.raises(InputError):
            e.submit(SynthesisRequest(text="x " * 20, seed=0))
        long = e.submit(SynthesisRequest(text="A longer text for this one. " * 2, seed=0, max_input_chars=100, timeout_s=60))
        short = e.submit(SynthesisRequest(text="Times out.", seed=1))  # waits behind `long` past 0.3 s
        assert len(long.audio(timeout=60)) > 0
        with pytest.raises(RequestCancelled, match="timed out"):
            short.audio(timeout=60)
        assert short.state is RequestState.FAILED


def test_reconfigure_hot_and_restart_only(engine):
    new = engine.reconfigure({"chunk_frames": 5, "faults": {"leak_mb_per_request": 0}})
    assert new.chunk_frames == 5 and engine.config.chunk_frames == 5
    with pytest.raises(ConfigError, match="max_batch: needs a restart"):
        engine.reconfigure({"max_batch": 4})
    with pytest.raises(ConfigError, match="chunk_frames"):
        engine.reconfigure({"chunk_frames": 0})
    engine.reconfigure({"chunk_frames": 8})


def test_leak_fault_holds_memory_and_stats_report_it():
    with Engine(RuntimeConfig(preset="tiny", max_batch=2, faults={"leak_mb_per_request": 3})) as e:
        for i in range(2):
            e.synthesize(SynthesisRequest(text="Leak.", seed=i), timeout=60)
        assert e.stats()["leak_bytes"] == 2 * 3 * 1024 * 1024


def test_hang_fault_stalls_progress():
    with Engine(RuntimeConfig(preset="tiny", max_batch=1, faults={"hang_after_requests": 1})) as e:
        e.synthesize(SynthesisRequest(text="One.", seed=0), timeout=60)
        h = e.submit(SynthesisRequest(text="Two.", seed=1))
        time.sleep(1.2)
        s = e.stats()
        assert s["hung"] and s["stalled_s"] >= 1.0 and s["queue_depth"] == 1
        assert h.state is RequestState.QUEUED


def test_slow_factor_stretches_each_step_with_real_work_and_leaves_the_audio_alone():
    # A sleep would stretch the wall time but not the engine's CPU time; a stretched step shows in both.
    req = SynthesisRequest(text="The slowdown fault makes every step take longer.", seed=4)
    with Engine(RuntimeConfig(preset="tiny", max_batch=1, batch_window_ms=0, threads=1)) as e:
        e.synthesize(SynthesisRequest(text="Warm up.", seed=0), timeout=60)

        def timed():
            wall0, cpu0 = time.perf_counter(), time.process_time()
            audio, handle = e.synthesize(req, timeout=300)
            return audio, handle, time.perf_counter() - wall0, time.process_time() - cpu0

        plain, plain_h, plain_wall, plain_cpu = timed()
        e.reconfigure({"faults": {"slow_factor": 3}})
        slow, slow_h, slow_wall, slow_cpu = timed()
        stretched = e.stats()["slow_fault_s"]
    assert md5(slow) == md5(plain)
    assert slow_wall >= 2.0 * plain_wall, (plain_wall, slow_wall)
    assert slow_cpu >= 2.0 * plain_cpu, (plain_cpu, slow_cpu)  # computed, not slept
    assert stretched >= 0.5 * slow_wall
    assert slow_h.timings()["lm"] >= 2.0 * plain_h.timings()["lm"]  # the stages say where the time went


def test_without_batch_invariance_streams_compact_and_finish():
    with Engine(RuntimeConfig(preset="tiny", max_batch=4, batch_invariant=False, batch_window_ms=30)) as e:
        hs = [e.submit(SynthesisRequest(text=t, seed=i)) for i, t in enumerate(MIXED[:4])]
        outs = [h.audio(timeout=120) for h in hs]
    assert all(len(o) == h.n_frames * 3200 for o, h in zip(outs, hs))


@pytest.mark.parametrize("offload, mode", [({"lm.layers.0-1": "cuda", "lm.layers.2-3": "cpu", "decoder": "cpu"}, "stream"),
                                           ({"lm": "cpu", "diffusion": "cpu"}, "compute")])
def test_offload_maps_resolve_to_cpu_and_give_identical_audio(offload, mode):
    req = dict(text="Where the layers live must not change the audio.", seed=11)
    with Engine(RuntimeConfig(preset="tiny", max_batch=2)) as e:
        ref, _ = e.synthesize(SynthesisRequest(**req), timeout=60)
    with Engine(RuntimeConfig(preset="tiny", max_batch=2, offload=offload, offload_mode=mode)) as e:
        assert any("offload map resolves to CPU" in n for n in e.loaded.notes)
        out, _ = e.synthesize(SynthesisRequest(**req), timeout=60)
    assert md5(out) == md5(ref)


@pytest.mark.slow
def test_compile_knob_runs_and_stays_deterministic():
    with Engine(RuntimeConfig(preset="tiny", max_batch=2, compile=True)) as e:
        e.warmup()
        a, h = e.synthesize(SynthesisRequest(text="Compiled.", seed=1), timeout=600)
        b, _ = e.synthesize(SynthesisRequest(text="Compiled.", seed=1), timeout=600)
    assert len(a) == h.n_frames * 3200 and md5(a) == md5(b)
