"""A scripted stand-in TTS server (stdlib HTTP, numpy): exact timing, known pauses, no model.

`python -m vvbench.load.fakeserver --port 0 [options]` prints `fake-tts: listening on URL` and
serves the parts of the API a benchmark uses: `POST /v1/audio/speech` (every `response_format`:
wav, pcm, and mp3, opus, aac, flac encoded with PyAV by `vvbench.load.fakecodec`; audio or SSE;
chunked), `POST /v1/jobs` + status + chunks + DELETE, `/readyz`, `/healthz`, `/v1/stats`.
It exists to measure the load generator itself (its ceiling against a trivial endpoint) and to
test what the generator must see: a server slower than real time (`--rtf 2`), one that pauses
mid-stream (`--pause-after-s 1 --pause-s 0.8`), leading silence (`--silence-s`), a slow start
(`--first-delay-s`), and a server that dies (`--exit-after N` requests, exit code 70).

Audio is a 220 Hz tone at -10 dBFS, `len(text) / --chars-per-s` seconds long, sent in chunks of
`--chunk-s` seconds, chunk k leaving at `first_delay + k * chunk_s * rtf`. Not a TTS model.
A compressed answer sends after chunk k what the encoder released for it (an empty release is
skipped: a zero-length HTTP chunk would end the body) and the encoder's flush with the last.
Each chunk is encoded when it is due; the audio depends only on its length, so an answer's
bytes are shared per (format, length): the first request encodes them, chunk by chunk, and
every other one (at the same time or later) sends the same bytes, each paced on its own clock
(a follower never sends a chunk before the first request has encoded it). At hundreds of
streams the server spends its CPU on pacing and sending, not on encoding one answer again.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from vvbench.artifacts.stats import ServiceStats
from vvbench.core.audio import SAMPLE_RATE, to_pcm16, wav_header
from vvbench.core.formats import CONTENT_TYPES
from vvbench.core.proc import LISTENING, follow_tether
from vvbench.load.fakecodec import MUXERS, ChunkEncoder


def tone(n: int, start: int = 0, silence: int = 0) -> bytes:
    """n samples of the tone (the first `silence` samples of the stream are silent), PCM16."""
    idx = np.arange(start, start + n)
    x = 0.316 * np.sin(2 * math.pi * 220.0 * idx / SAMPLE_RATE)
    x[idx < silence] = 0.0
    return to_pcm16(x)


class _Encoded:
    """One compressed answer's chunks, appended by the request encoding it and read by every other one."""

    def __init__(self):
        self.parts: list[bytes] = []
        self._ready = threading.Condition()

    def add(self, data: bytes) -> None:
        with self._ready:
            self.parts.append(data)
            self._ready.notify_all()

    def parts_as_ready(self, count: int):
        for k in range(count):
            with self._ready:
                self._ready.wait_for(lambda k=k: len(self.parts) > k)
            yield self.parts[k]


class Script:
    """The timing every answer follows (see the module docstring)."""

    def __init__(self, args: argparse.Namespace):
        self.a = args
        self.lock = threading.Lock()
        self.requests = 0
        self.active = 0
        self.jobs: dict[str, dict] = {}
        self._encoded: dict[tuple, _Encoded] = {}

    def encoded(self, fmt: str, chunks: list[tuple[float, int, int]]):
        """The bytes to send after each chunk of a compressed answer (see `_Encoded`), one item per chunk."""
        key = (fmt, tuple((start, n) for _, start, n in chunks))
        with self.lock:
            shared = self._encoded.get(key)
            owner = shared is None
            if owner:
                shared = self._encoded[key] = _Encoded()
        if not owner:
            yield from shared.parts_as_ready(len(chunks))
            return
        enc = ChunkEncoder(fmt, SAMPLE_RATE)
        silence = int(self.a.silence_s * SAMPLE_RATE)
        sent = 0
        try:
            for k, (_, start, n) in enumerate(chunks):
                shared.add(enc.encode(tone(n, start, silence)) + (enc.close() if k == len(chunks) - 1 else b""))
                sent += 1
                yield shared.parts[k]
        finally:  # the owner's client went away: finish the answer for the requests waiting on it
            for k in range(sent, len(chunks)):
                _, start, n = chunks[k]
                if len(shared.parts) <= k:
                    shared.add(enc.encode(tone(n, start, silence)) + (enc.close() if k == len(chunks) - 1 else b""))

    def plan(self, text: str) -> list[tuple[float, int, int]]:
        """(send time offset, first sample, samples) of each chunk."""
        total = max(1, int(len(text) / self.a.chars_per_s * SAMPLE_RATE))
        size = max(1, int(self.a.chunk_s * SAMPLE_RATE))
        out, t, pos = [], self.a.first_delay_s, 0
        paused = False
        while pos < total:
            n = min(size, total - pos)
            out.append((t, pos, n))
            pos += n
            t += n / SAMPLE_RATE * self.a.rtf
            if not paused and self.a.pause_s and pos / SAMPLE_RATE >= self.a.pause_after_s:
                t += self.a.pause_s
                paused = True
        return out

    def count(self) -> None:
        with self.lock:
            self.requests += 1
            n = self.requests
        if self.a.exit_after and n > self.a.exit_after:
            os._exit(70)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    script: Script

    def log_message(self, *args) -> None:  # quiet
        pass

    def _json(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict:
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n) or b"{}")

    def do_GET(self) -> None:
        s = self.script
        if self.path in ("/readyz", "/healthz"):
            return self._json(200, {"status": "ok"})
        if self.path == "/v1/stats":
            stats = ServiceStats(queue_depth=0, active_streams=s.active, requests={"ok": s.requests})
            return self._json(200, stats.model_dump(mode="json", exclude_none=True))
        parts = self.path.strip("/").split("/")
        if len(parts) >= 3 and parts[:2] == ["v1", "jobs"] and parts[2] in s.jobs:
            job = s.jobs[parts[2]]
            ready = sum(1 for t, _, _ in job["chunks"] if time.monotonic() - job["t0"] >= t)
            if len(parts) == 3:
                done = ready == len(job["chunks"])
                return self._json(200, {"id": parts[2], "state": "done" if done else "running", "chunks_ready": ready,
                                        "chunks_total": len(job["chunks"]), "seed": job["seed"]})
            if len(parts) == 5 and parts[3] == "chunks" and int(parts[4]) < ready:
                _, start, n = job["chunks"][int(parts[4])]
                data = wav_header(SAMPLE_RATE, n) + tone(n, start, int(s.a.silence_s * SAMPLE_RATE))
                self.send_response(200)
                self.send_header("Content-Type", "audio/wav")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return None
        return self._json(404, {"error": {"message": "not found", "type": "invalid_request_error", "param": None, "code": None}})

    def do_DELETE(self) -> None:
        job_id = self.path.strip("/").split("/")[-1]
        self.script.jobs.pop(job_id, None)
        return self._json(200, {"id": job_id, "deleted": True})

    def do_POST(self) -> None:
        s = self.script
        body = self._body()
        s.count()
        if self.path == "/v1/jobs":
            job_id = uuid.uuid4().hex
            s.jobs[job_id] = {"t0": time.monotonic(), "chunks": s.plan(body.get("input", "")), "seed": body.get("seed", 0)}
            return self._json(202, {"id": job_id, "state": "queued", "chunks_ready": 0, "chunks_total": len(s.jobs[job_id]["chunks"]),
                                    "seed": body.get("seed", 0)})
        if self.path != "/v1/audio/speech":
            return self._json(404, {"error": {"message": "not found", "type": "invalid_request_error", "param": None, "code": None}})
        with s.lock:
            s.active += 1
        try:
            self._stream(body)
        finally:
            with s.lock:
                s.active -= 1

    def _stream(self, body: dict) -> None:
        s = self.script
        sse = body.get("stream_format") == "sse"
        chunks = s.plan(body.get("input", ""))
        t0 = time.monotonic()
        if s.a.first_delay_s:
            time.sleep(s.a.first_delay_s)
        self.send_response(200)
        fmt = body.get("response_format", "wav")
        self.send_header("Content-Type", "text/event-stream" if sse else CONTENT_TYPES.get(fmt, f"audio/{fmt}"))
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("X-Seed", str(body.get("seed", 0)))
        self.end_headers()
        head = wav_header(SAMPLE_RATE, None) if fmt == "wav" else b""
        encoded = s.encoded(fmt, chunks) if fmt in MUXERS else None  # a generator: chunk k encoded when it is due
        for t, start, n in chunks:
            wait = t - (time.monotonic() - t0)
            if wait > 0:
                time.sleep(wait)
            data = next(encoded) if encoded is not None else head + tone(n, start, int(s.a.silence_s * SAMPLE_RATE))
            head = b""
            if not data:
                continue
            if sse:
                data = b"data: " + json.dumps({"type": "speech.audio.delta", "audio": base64.b64encode(data).decode()}).encode() + b"\n\n"
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()
        if sse:
            done = b'data: {"type":"speech.audio.done"}\n\n'
            self.wfile.write(f"{len(done):x}\r\n".encode() + done + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vvbench.load.fakeserver", description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--chars-per-s", type=float, default=15.0, help="audio seconds = chars / this")
    p.add_argument("--chunk-s", type=float, default=0.4, help="audio seconds per chunk")
    p.add_argument("--rtf", type=float, default=0.25, help="production time per audio second (0: all at once)")
    p.add_argument("--first-delay-s", type=float, default=0.05, help="delay before the headers and the first chunk")
    p.add_argument("--pause-after-s", type=float, default=0.0, help="pause once after this much audio was sent")
    p.add_argument("--pause-s", type=float, default=0.0, help="length of that pause")
    p.add_argument("--silence-s", type=float, default=0.0, help="leading digital silence in every answer")
    p.add_argument("--exit-after", type=int, default=0, help="exit (code 70) at the request after this many")
    args = p.parse_args(argv)
    follow_tether()
    Handler.script = Script(args)
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    host, port = server.server_address[:2]
    print(f"fake-tts: {LISTENING}http://{host}:{port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
