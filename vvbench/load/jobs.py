"""Sending one long-form job: POST /v1/jobs, poll it, fetch each chunk as it is ready, delete it.

Over `vvbench.load.client`'s `Session` (http.client on its keep-alive connection, on the event
loop: a job's arrivals are bound by its polling, not by reads). Jobs are polled every `poll_s`,
each new chunk fetched as soon as it is ready (its arrival is when its last byte came, timed as
read: the row's clock is `read`), and deleted afterwards so a benchmark leaves nothing on the
server's disk.
"""

from __future__ import annotations

import http.client
import json
import math
import time

from vvbench.core.audio import SAMPLE_RATE
from vvbench.load.audio import AudioStream
from vvbench.load.client import Outcome, Session, classify, error_message, finish, read_body
from vvbench.load.mix import RequestSpec


def _json(session: Session, method: str, path: str, body: dict | None, deadline: float) -> tuple[int, dict, str | None]:
    resp, _, _ = session.send(method, path, json.dumps(body).encode() if body is not None else None, deadline)
    if resp.status >= 400:
        return resp.status, {}, error_message(resp)
    data = resp.read()
    return resp.status, (json.loads(data) if data else {}), None


def job(session: Session, spec: RequestSpec, pcm_rate: int = SAMPLE_RATE) -> Outcome:
    """POST /v1/jobs, poll it, fetch each chunk as it is ready (arrival = its last byte), delete it."""
    payload = {"model": "vvbench", "input": spec.text, "voice": spec.voice, "response_format": spec.response_format,
               "speed": spec.speed}
    if spec.seed is not None:
        payload["seed"] = spec.seed
    stream = AudioStream("pcm", pcm_rate)
    out = Outcome(t_start=time.time())
    t0 = time.perf_counter()
    deadline = t0 + spec.timeout_s
    job_id = None
    try:
        status, info, err = _json(session, "POST", "/v1/jobs", payload, deadline)
        out.http_status = status
        if err:
            return out.fail("rejected" if status in (429, 503) else "http_error", err)
        job_id, out.seed = info["id"], info.get("seed", spec.seed)
        fetched = 0
        while True:
            while fetched < info.get("chunks_ready", 0):
                _fetch_chunk(session, out, stream, f"/v1/jobs/{job_id}/chunks/{fetched}", t0, deadline)
                fetched += 1
            state = info.get("state")
            if state == "done" and fetched >= info.get("chunks_total", 0):
                break
            if state in ("failed", "cancelled"):
                return out.fail("job_failed", f"job {state}: {info.get('error') or ''}".strip())
            time.sleep(min(spec.poll_s, max(0.0, deadline - time.perf_counter())))
            status, info, err = _json(session, "GET", f"/v1/jobs/{job_id}", None, deadline)
            if err:
                return out.fail("http_error", err)
    except Exception as exc:  # noqa: BLE001
        session.close()
        out.stream = stream
        return classify(out, exc)
    finally:
        if job_id is not None:
            _delete(session, job_id)
    return finish(out, stream)


def _fetch_chunk(session: Session, out: Outcome, stream: AudioStream, path: str, t0: float, deadline: float) -> None:
    resp, _, _ = session.send("GET", path, None, deadline)
    if resp.status != 200:
        raise http.client.HTTPException(error_message(resp))
    part = AudioStream("wav" if (resp.getheader("Content-Type") or "").startswith("audio/wav") else "pcm", stream.sample_rate)
    body = bytearray()

    def piece(data: bytes, t: float) -> None:
        if math.isnan(out.ttfb_s):
            out.ttfb_s = t
        out.bytes += len(data)
        body.extend(data)

    read_body(session, resp, t0, deadline, piece)
    t = time.perf_counter() - t0
    header_len = _pcm_offset(bytes(body), part)
    if part.format is not None:  # a WAV chunk says how its samples are stored; the next ones are alike
        stream.format = part.format
    if stream.feed(bytes(body[header_len:])) and math.isnan(out.ttfa_s):
        out.ttfa_s = t
    out.e2e_s = t
    out.chunks += 1
    out.arrivals.append((t, stream.samples))


def _pcm_offset(body: bytes, part: AudioStream) -> int:
    """Bytes of header before the PCM (0 for raw PCM); sets part's format from a WAV header."""
    if part.fmt == "pcm":
        return 0
    part.feed(body)
    return part.header_len


def _delete(session: Session, job_id: str) -> None:
    try:
        resp, _, _ = session.send("DELETE", f"/v1/jobs/{job_id}", None, time.perf_counter() + 10)
        resp.read()
    except Exception:  # noqa: BLE001 - best effort: the row is already decided
        session.close()
