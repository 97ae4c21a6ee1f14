"""Deleting a running job frees its engine slot for good: it is never scheduled again (no ghost slot).

The row of a deleted job is removed after its request stopped; on a slow disk that takes a
while, and the scheduler — woken by the request's end — must not submit the still-unfinished
job again in between. The store's delete is made slow here (as an fsync on a busy disk is).
"""

from __future__ import annotations

import time

LONG = "A long job keeps going, sentence after sentence, for quite a while. " * 8


def wait(predicate, timeout_s: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_delete_on_a_slow_disk_leaves_no_ghost_request(app_http, monkeypatch):
    service = app_http.app.state.service
    store, engine = service.jobs.store, service.engine
    delete = store.delete

    def slow_delete(job_id):
        time.sleep(0.8)  # the scheduler gets its turn while the row still exists
        return delete(job_id)

    monkeypatch.setattr(store, "delete", slow_delete)
    job = app_http.post("/v1/jobs", json={"input": LONG, "seed": 5, "response_format": "pcm"}).json()
    assert wait(lambda: app_http.get(f"/v1/jobs/{job['id']}").json()["progress"] > 0)
    deleted = app_http.delete(f"/v1/jobs/{job['id']}").json()
    assert deleted["deleted"] and deleted["state"] == "cancelled"
    assert service.jobs.live(job["id"]) is None, "the deleted job was submitted again"
    assert wait(lambda: engine.stats()["active_streams"] == 0, timeout_s=5), engine.stats()
