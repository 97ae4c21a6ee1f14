"""Long-form jobs and memory: refused when they can never fit, and DELETE gives back all they held."""

from __future__ import annotations

import math
import os
import time

import psutil
import pytest

from tests.conftest import in_process_service
from vvbench.load.corpora import CORPORA, units
from vvbench.runtime.text import plan_prosody
from vvbench.server.jobstore import JobRecord, JobStore
from vvbench.server.settings import DEFAULT_MAX_JOB_CHARS

PROSE = "The ferry leaves at six, and the last bus from the harbour meets it on the hour. "


def store_bytes(root) -> int:
    files = [os.path.join(root, f) for f in os.listdir(root) if f.startswith("jobs.db")]
    chunks = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(root, "jobs")) for f in fs]
    return sum(os.path.getsize(f) for f in files + chunks)


def record(i: int, text: str) -> JobRecord:
    now = time.time()
    return JobRecord(id=f"job_{i:032x}", state="queued", model=None, input=text, voice="alloy", speed=1.0, seed=i,
                     response_format="pcm", diffusion_steps=None, cfg_scale=None, n_frames=40, samples_per_frame=3200,
                     chunk_frames=10, created_at=now, updated_at=now, fingerprint="{}")


def test_deleting_100_jobs_gives_the_store_its_size_back(tmp_path):
    store = JobStore(tmp_path)
    before = store_bytes(tmp_path)
    for i in range(100):
        store.create(record(i, PROSE * 300))  # ~25 KB of input each
        for c in range(2):
            store.add_chunk(f"job_{i:032x}", c, 10, b"\0" * 6400, final=c == 1)
    assert store_bytes(tmp_path) > before + 2_500_000
    for i in range(100):
        store.delete(f"job_{i:032x}")
    wal = tmp_path / "jobs.db-wal"
    assert not wal.exists() or wal.stat().st_size < 1 << 20
    assert abs(store_bytes(tmp_path) - before) < 1 << 20, store_bytes(tmp_path) - before
    store.close()


def test_default_max_job_chars_is_90_minutes_of_the_fastest_corpus():
    rates = []
    for name in CORPORA:
        text = ("\n" if name == "podcast" else " ").join(units(name))
        rates.append(len(text) / plan_prosody(text).duration_s)
    assert DEFAULT_MAX_JOB_CHARS == math.ceil(90 * 60 * max(rates) / 1000) * 1000


@pytest.fixture(scope="module")
def budget_engine():
    from vvbench.runtime.config import RuntimeConfig
    from vvbench.runtime.engine import Engine

    budget = psutil.Process().memory_info().rss + 160 * 2**20
    engine = Engine(RuntimeConfig(preset="tiny", max_batch=4, batch_window_ms=20), memory_budget_bytes=budget)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def http(budget_engine, tmp_path_factory):
    with in_process_service(budget_engine, tmp_path_factory.mktemp("jobs-memory")) as client:
        yield client


def test_a_job_the_budget_can_never_hold_is_refused_before_it_is_stored(http, budget_engine):
    kv_left = budget_engine.memory.limit(background=True)
    per_char = budget_engine.memory_need(PROSE * 40, budget_engine.plan(PROSE * 40).n_frames(3200)) / len(PROSE * 40)
    text = PROSE * (int(1.2 * kv_left / per_char) // len(PROSE) + 1)
    assert len(text) <= DEFAULT_MAX_JOB_CHARS
    before = http.get("/v1/jobs").json()["data"]
    r = http.post("/v1/jobs", json={"input": text, "seed": 1})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == "input" and err["code"] == "exceeds_memory_budget" and "MiB" in err["message"]
    assert http.get("/v1/jobs").json()["data"] == before


def test_deleting_every_job_returns_stats_and_store_to_idle(http):
    service = http.app.state.service
    root = service.settings.data_dir
    before = store_bytes(root)
    ids = [http.post("/v1/jobs", json={"input": PROSE * 30, "seed": i, "response_format": "pcm"}).json()["id"]
           for i in range(3)]
    deadline = time.monotonic() + 60
    while http.get("/v1/stats").json()["active_streams"] < 2 or store_bytes(root) == before:
        assert time.monotonic() < deadline, http.get("/v1/stats").json()
        time.sleep(0.05)
    for job_id in ids:
        assert http.delete(f"/v1/jobs/{job_id}").json()["deleted"]
    t_deleted = time.monotonic()
    while True:
        s = http.get("/v1/stats").json()
        idle = (s["active_streams"], s["queue_depth"], s["kv_cache_bytes"], s["stream_reserved_bytes"]) == (0, 0, 0, 0)
        if idle or time.monotonic() - t_deleted > 2.0:
            break
        time.sleep(0.05)
    assert idle, s
    assert s["service"]["jobs"]["running"] == s["service"]["jobs"]["queued"] == 0
    assert abs(store_bytes(root) - before) < 1 << 20
