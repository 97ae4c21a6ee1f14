"""Client-side time per request spent parsing the audio, in the playback model, and recording the row.

In-process micro-benchmark of the pure parts a load worker runs for every request (no network,
no Locust): a streamed WAV of `--audio-s` seconds at 24 kHz, delivered in 16 KiB pieces (the
worker's read size), with 0.3 s of leading silence so the audible-window detector has work.

- `parse`: `AudioStream.feed` over every piece (WAV header, MD5 of the PCM, first audible window);
- `playback`: `playback.simulate` over the arrival timeline;
- `row`: `build_row` (which runs the playback model) from a finished outcome;
- `record`: `RowRecorder.add` plus its share of a parquet flush of `--batch` rows (the worker
  flushes once a second).

    python bench/load_client_cost.py --audio-s 5 --repeat 200
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vvbench.artifacts.playback import simulate  # noqa: E402
from vvbench.core.audio import SAMPLE_RATE, to_pcm16, wav_header  # noqa: E402
from vvbench.load.audio import AudioStream  # noqa: E402
from vvbench.load.client import READ_BYTES, Outcome  # noqa: E402
from vvbench.load.mix import RequestSpec  # noqa: E402
from vvbench.load.records import RowRecorder, build_row  # noqa: E402

SPEC = RequestSpec(index=0, cls="c", api="speech", text="x" * 80, voice="alloy", seed=1, response_format="wav",
                   stream_format="audio", speed=1.0, timeout_s=60, poll_s=1)


def body(audio_s: float) -> bytes:
    n = int(audio_s * SAMPLE_RATE)
    x = 0.3 * np.sin(2 * np.pi * 200 * np.arange(n) / SAMPLE_RATE)
    x[: int(0.3 * SAMPLE_RATE)] = 0.0
    return wav_header(SAMPLE_RATE, None) + to_pcm16(x)


def parse(data: bytes) -> tuple[Outcome, AudioStream]:
    out, stream = Outcome(t_start=time.time(), http_status=200), AudioStream("wav")
    for k, start in enumerate(range(0, len(data), READ_BYTES)):
        t = 0.1 + 0.02 * k
        if stream.feed(data[start:start + READ_BYTES]) and math.isnan(out.ttfa_s):
            out.ttfa_s = t
        out.arrivals.append((t, stream.samples))
    out.ttfb_s, out.e2e_s, out.stream, out.chunks = 0.1, out.arrivals[-1][0], stream, len(out.arrivals)
    return out, stream


def per_call_us(fn, repeat: int) -> float:
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return 1e6 * (time.perf_counter() - t0) / repeat


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--audio-s", type=float, default=5.0)
    p.add_argument("--repeat", type=int, default=200)
    p.add_argument("--batch", type=int, default=100, help="rows per parquet flush")
    args = p.parse_args()
    print(f"load average before: {os.getloadavg()}", file=sys.stderr)
    data = body(args.audio_s)
    out, _ = parse(data)
    row = build_row(SPEC, out, worker="w0", prebuffer_ms=200, warmup=False)
    with tempfile.TemporaryDirectory() as tmp:
        rec = RowRecorder(tmp, "w0")

        def record() -> None:
            for _ in range(args.batch):
                rec.add(dict(row))
            rec.flush()

        record_us = per_call_us(record, max(3, args.repeat // 20)) / args.batch
    result = {
        "audio_s": args.audio_s, "body_bytes": len(data), "pieces": len(out.arrivals),
        "parse_us": round(per_call_us(lambda: parse(data), args.repeat), 1),
        "playback_us": round(per_call_us(lambda: simulate(out.arrivals, SAMPLE_RATE, out.ttfa_s + 0.2), args.repeat * 10), 2),
        "row_us": round(per_call_us(lambda: build_row(SPEC, out, worker="w0", prebuffer_ms=200, warmup=False), args.repeat * 10), 2),
        "record_us_per_row": round(record_us, 2), "batch": args.batch,
    }
    print(json.dumps(result))
    print(f"load average after: {os.getloadavg()}", file=sys.stderr)


if __name__ == "__main__":
    main()
