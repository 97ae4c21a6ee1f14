"""Audio formats: what encoding costs per second of audio, and what it adds to the first chunk's latency.

1. **Encoding cost**: the runtime's own audio (fetched as raw PCM from a `vvbench serve` child,
   `--texts` texts × seeds) is fed through the service's output chain (`AudioOutput`) in the
   service's chunk sizes (`first_chunk_frames`, then `chunk_frames`, 3200 samples per frame), per
   format and `sample_rate` 24 kHz, formats interleaved within each round. Reported: CPU seconds
   (this process's `process_time`) per second of audio, median over rounds, and the real-time
   factor it leaves (1 / cost).
2. **First-chunk latency**: the same server answers streamed requests for every format, side by
   side: each round sends the same text and seed once per format, in a shuffled order, one at a
   time. Per request: time to the first body byte, and time to the first decodable audio (the
   first arrival after which the bytes so far decode to at least one sample; decoding is done
   after the request, on the recorded arrivals, so it does not slow the client). Reported:
   medians, and each format's median paired difference against wav on the same round.

    python bench/encode_cost.py --rounds 15
"""

from __future__ import annotations

import argparse
import io
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import av
import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vvbench.core.audio import SAMPLE_RATE, from_pcm16  # noqa: E402
from vvbench.core.formats import FORMATS  # noqa: E402
from vvbench.harness.targets import EmbeddedTarget  # noqa: E402
from vvbench.runtime.config import RuntimeConfig  # noqa: E402
from vvbench.server.rendering import AudioOutput  # noqa: E402

TEXTS = ["Good morning. Your order has shipped and will arrive on Tuesday.",
         "The quick brown fox jumps over the lazy dog, and then it runs back home through the long grass.",
         "Please hold the line; an agent will be with you shortly. Thank you for your patience."]


def chunks(x: np.ndarray, first: int, later: int):
    yield x[:first]
    for i in range(first, len(x), later):
        yield x[i:i + later]


def encode_cost(audio: list[np.ndarray], rounds: int, first: int, later: int) -> dict[str, float]:
    seconds = sum(len(a) for a in audio) / SAMPLE_RATE
    cost: dict[str, list[float]] = {f: [] for f in FORMATS}
    for _ in range(rounds):
        for fmt in random.sample(FORMATS, len(FORMATS)):
            t0 = time.process_time()
            for a in audio:
                out = AudioOutput(fmt)
                for piece in chunks(a, first, later):
                    out.process(piece)
                out.finish()
            cost[fmt].append((time.process_time() - t0) / seconds)
    return {f: statistics.median(v) for f, v in cost.items()}


def decodable_at(data: bytes, arrivals: list[tuple[float, int]], fmt: str) -> float:
    """Seconds to the first arrival after which the body so far decodes to audio."""
    for t, n in arrivals:
        if fmt in ("pcm", "wav"):
            if n >= (46 if fmt == "wav" else 2):
                return t
            continue
        try:
            with av.open(io.BytesIO(data[:n])) as c:
                for frame in c.decode(audio=0):
                    if frame.samples:
                        return t
        except av.error.FFmpegError:
            pass
    return float("nan")


def one_request(c: httpx.Client, fmt: str, text: str, seed: int) -> tuple[float, float]:
    body = b""
    arrivals = []
    t0 = time.perf_counter()
    with c.stream("POST", "/v1/audio/speech", json={"input": text, "seed": seed, "response_format": fmt}) as resp:
        resp.raise_for_status()
        for piece in resp.iter_raw():
            if piece:
                body += piece
                arrivals.append((time.perf_counter() - t0, len(body)))
    return arrivals[0][0], decodable_at(body, arrivals, fmt)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=2)
    args = ap.parse_args()
    config = RuntimeConfig(preset=args.preset)
    first, later = config.first_chunk_frames * 3200, config.chunk_frames * 3200
    child = EmbeddedTarget(config, Path(tempfile.mkdtemp(prefix="vvbench-bench-")))
    child.start()
    try:
        with httpx.Client(base_url=child.url, timeout=120, headers={"Authorization": f"Bearer {child.api_key}"}) as c:
            audio = [from_pcm16(c.post("/v1/audio/speech", json={"input": t, "seed": s, "response_format": "pcm",
                                                                   "stream": False}).raise_for_status().content).astype(np.float32)
                     for t in TEXTS for s in (1, 2)]
            cost = encode_cost(audio, args.rounds, first, later)
            ttfb: dict[str, list[float]] = {f: [] for f in FORMATS}
            ttfd: dict[str, list[float]] = {f: [] for f in FORMATS}
            for r in range(args.warmup + args.rounds):
                text, seed = TEXTS[r % len(TEXTS)], 100 + r
                for fmt in random.sample(FORMATS, len(FORMATS)):
                    b, d = one_request(c, fmt, text, seed)
                    if r >= args.warmup:
                        ttfb[fmt].append(b)
                        ttfd[fmt].append(d)
    finally:
        child.stop()
    total_s = sum(len(a) for a in audio) / SAMPLE_RATE
    print(f"preset {args.preset}, {len(audio)} clips ({total_s:.1f} s of audio), chunks {first}/{later} samples, "
          f"{args.rounds} rounds")
    print("| format | encode CPU s / audio s | x real time | TTFB ms (median) | first decodable ms (median) "
          "| TTFB − wav ms | first decodable − wav ms |")
    print("|---|---|---|---|---|---|---|")
    for fmt in FORMATS:
        db = statistics.median(b - w for b, w in zip(ttfb[fmt], ttfb["wav"]))
        dd = statistics.median(b - w for b, w in zip(ttfd[fmt], ttfd["wav"]))
        print(f"| {fmt} | {cost[fmt]:.4f} | {1 / cost[fmt]:.0f} | {statistics.median(ttfb[fmt]) * 1000:.1f} "
              f"| {statistics.median(ttfd[fmt]) * 1000:.1f} | {db * 1000:+.1f} | {dd * 1000:+.1f} |")


if __name__ == "__main__":
    main()
