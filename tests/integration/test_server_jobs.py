"""Long-form jobs against real servers: lifecycle, downloads, delete, kill -9 and SIGTERM."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from serverkit import assert_error, wav_info

SCRIPT = ("Speaker 1: Welcome back to the show. Today we talk about long form speech.\n"
          "Speaker 2: Thanks for having me. It is a pleasure to be here, again.\n"
          "Speaker 1: Let us start with the basics, shall we?")
LONG = "A long job keeps going, sentence after sentence, for quite a while. " * 8


def wait_job(c: httpx.Client, job_id: str, until, timeout_s: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        job = c.get(f"/v1/jobs/{job_id}").json()
        if until(job):
            return job
        assert job["state"] not in ("failed", "cancelled"), job
        assert time.monotonic() < deadline, job
        time.sleep(0.1)


def pcm_of_speech(c: httpx.Client, text: str, seed: int, voice: str = "alloy") -> bytes:
    resp = c.post("/v1/audio/speech", json={"input": text, "seed": seed, "voice": voice, "stream": False, "response_format": "pcm"})
    assert resp.status_code == 200
    return resp.content


def test_job_lifecycle_chunks_and_audio_match_speech(http):
    resp = http.post("/v1/jobs", json={"model": "tts-1", "input": SCRIPT, "voice": "echo", "seed": 21})
    assert resp.status_code == 202
    job = resp.json()
    assert resp.headers["location"] == f"/v1/jobs/{job['id']}" and resp.headers["x-seed"] == "21"
    assert job["state"] in ("queued", "running") and job["expected_audio_s"] > 5
    with ThreadPoolExecutor(1) as pool:
        speech = pool.submit(pcm_of_speech, http, SCRIPT, 21, "echo")  # the same synthesis, alongside
        done = wait_job(http, job["id"], lambda j: j["state"] == "done")
        reference = speech.result()
    assert done["progress"] == 1.0 and done["chunks_ready"] == done["chunks_total"] >= 1
    assert abs(done["audio_s"] - done["expected_audio_s"]) < 1e-6
    audio = http.get(f"/v1/jobs/{job['id']}/audio")
    assert audio.status_code == 200 and int(audio.headers["content-length"]) == len(audio.content)
    assert wav_info(audio.content)[:3] == (24_000, 1, 2)
    chunks = [http.get(f"/v1/jobs/{job['id']}/chunks/{i}").content for i in range(done["chunks_total"])]
    assert b"".join(c[44:] for c in chunks) == audio.content[44:]
    assert audio.content[44:] == reference  # a job is the same synthesis as a speech request
    assert_error(http.get(f"/v1/jobs/{job['id']}/chunks/{done['chunks_total']}"), 404, "index")
    assert any(j["id"] == job["id"] for j in http.get("/v1/jobs").json()["data"])


def test_unfinished_job_answers_409_and_delete_cancels_it(http, server):
    job = http.post("/v1/jobs", json={"input": LONG, "seed": 3, "response_format": "pcm"}).json()
    resp = http.get(f"/v1/jobs/{job['id']}/audio")
    assert_error(resp, 409, "job_id")
    assert int(resp.headers["retry-after"]) >= 1
    assert_error(http.get(f"/v1/jobs/{job['id']}/chunks/{job['chunks_total'] - 1}"), 409, "index")
    wait_job(http, job["id"], lambda j: j["state"] == "running" and j["progress"] > 0)
    deleted = http.delete(f"/v1/jobs/{job['id']}").json()
    assert deleted == {"id": job["id"], "object": "job.deleted", "deleted": True, "state": "cancelled"}
    assert_error(http.get(f"/v1/jobs/{job['id']}"), 404, "job_id")
    assert not (server.data_dir / "jobs" / job["id"]).exists()
    deadline = time.monotonic() + 5
    while server.stats()["active_streams"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.stats()["active_streams"] == 0


def test_job_survives_kill_9_and_resumes_to_identical_audio(serve_factory, tmp_path):
    flags = ("--max-batch", "4", "--job-chunk-frames", "4")
    first = serve_factory.start(*flags, data_dir=tmp_path, name="jobs-a")
    with httpx.Client(base_url=first.url, timeout=60) as c:
        job = c.post("/v1/jobs", json={"input": SCRIPT, "voice": "nova", "seed": 77}).json()
        partial = wait_job(c, job["id"], lambda j: j["chunks_ready"] >= 4)
        chunk0 = c.get(f"/v1/jobs/{job['id']}/chunks/0").content
    assert partial["state"] == "running" and partial["chunks_ready"] < partial["chunks_total"], partial
    first.kill()
    assert first.reap(10) == -9

    second = serve_factory.start(*flags, data_dir=tmp_path, name="jobs-b")
    with httpx.Client(base_url=second.url, timeout=60) as c, ThreadPoolExecutor(1) as pool:
        # the same request, uninterrupted, computed alongside the resumed job
        reference = pool.submit(pcm_of_speech, c, SCRIPT, 77, "nova")
        done = wait_job(c, job["id"], lambda j: j["state"] == "done")
        # Chunks are recorded only in order (chunk i when chunks_ready == i), so a job restarted from
        # frame 0 instead of resumed at chunks_ready * chunk_frames could never finish.
        assert done["chunks_ready"] == done["chunks_total"]
        assert c.get(f"/v1/jobs/{job['id']}/chunks/0").content == chunk0
        audio = c.get(f"/v1/jobs/{job['id']}/audio").content[44:]
        assert hashlib.md5(audio).hexdigest() == hashlib.md5(reference.result()).hexdigest()


def test_sigterm_drains_exits_0_and_leaves_the_job_queued(serve_factory, tmp_path):
    server = serve_factory.start("--max-batch", "2", "--job-chunk-frames", "4", data_dir=tmp_path, name="drain")
    with httpx.Client(base_url=server.url, timeout=60) as c:
        job = c.post("/v1/jobs", json={"input": LONG, "seed": 9}).json()
        wait_job(c, job["id"], lambda j: j["chunks_ready"] >= 2)
    t0 = time.monotonic()
    assert server.stop(grace_s=60) == 0
    assert time.monotonic() - t0 < 30
    with sqlite3.connect(tmp_path / "jobs.db") as db:
        state, ready = db.execute("SELECT state, chunks_ready FROM jobs WHERE id = ?", (job["id"],)).fetchone()
    assert state == "queued" and ready >= 2
    assert all((tmp_path / "jobs" / job["id"] / f"{i:06d}.pcm").exists() for i in range(ready))
