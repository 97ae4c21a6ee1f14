"""The job store: chunks recorded in order, atomically, and nothing left behind after a delete."""

import time

from vvbench.server.jobstore import JobRecord, JobStore
from vvbench.server.schemas import JobState


def record(job_id="job_" + "a" * 32, n_frames=10, chunk_frames=4) -> JobRecord:
    now = time.time()
    return JobRecord(id=job_id, state="queued", model=None, input="Hello.", voice="alloy", speed=1.0, seed=1,
                     response_format="wav", diffusion_steps=5, cfg_scale=1.5, n_frames=n_frames, samples_per_frame=3200,
                     chunk_frames=chunk_frames, created_at=now, updated_at=now, fingerprint="{}")


def test_chunks_are_recorded_in_order_and_the_last_marks_done(tmp_path):
    store = JobStore(tmp_path)
    rec = record()
    store.create(rec)
    assert rec.chunks_total == 3
    assert not store.add_chunk(rec.id, 1, 4, b"\x01\x00" * 4, final=False)  # out of order: refused
    assert not store.chunk_path(rec.id, 1).exists()
    assert store.add_chunk(rec.id, 0, 4, b"\x01\x00" * 4, final=False)
    assert store.add_chunk(rec.id, 1, 4, b"\x02\x00" * 4, final=False)
    assert not store.add_chunk(rec.id, 1, 4, b"\x02\x00" * 4, final=False)  # a stale writer
    assert store.add_chunk(rec.id, 2, 2, b"\x03\x00" * 2, final=True)
    got = store.get(rec.id)
    assert (got.state, got.chunks_ready, got.frames_done) == ("done", 3, 10) and got.finished_at
    assert store.chunk_sizes(rec.id, 3) == [8, 8, 4]
    assert not list(store.chunk_path(rec.id, 0).parent.glob(".*.tmp"))


def test_restart_requeues_running_jobs_and_keeps_their_chunks(tmp_path):
    store = JobStore(tmp_path)
    rec = record()
    store.create(rec)
    store.set_state(rec.id, JobState.RUNNING)
    store.add_chunk(rec.id, 0, 4, b"\x00\x00" * 4, final=False)
    store.close()
    reopened = JobStore(tmp_path)
    assert reopened.requeue_running() == 1
    (again,) = reopened.unfinished()
    assert (again.state, again.chunks_ready, again.started_at is not None) == ("queued", 1, True)


def test_delete_removes_row_and_files_and_late_chunks_leave_nothing(tmp_path):
    store = JobStore(tmp_path)
    rec = record()
    store.create(rec)
    store.add_chunk(rec.id, 0, 4, b"\x00\x00" * 4, final=False)
    store.delete(rec.id)
    assert store.get(rec.id) is None and not (tmp_path / "jobs" / rec.id).exists()
    assert not store.add_chunk(rec.id, 1, 4, b"\x00\x00" * 4, final=False)
    assert not (tmp_path / "jobs" / rec.id).exists()
    assert store.counts()["queued"] == 0
