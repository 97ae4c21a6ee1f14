"""Decoding in the load client: CPU per second of audio per format, and concurrent real-time opus streams.

Part 1 (`cost`, in process): a `--audio-s` second signal (a gliding tone after 0.3 s of silence)
encoded chunk by chunk by the fake server's encoder (`vvbench.load.fakecodec`: mp3 64 kb/s,
Ogg Opus 32 kb/s, ADTS AAC 64 kb/s, FLAC; wav and pcm for reference), then fed to
`vvbench.load.audio.AudioStream` in 16 KiB pieces (the worker's read size) and in 512-byte
pieces (what a real-time stream delivers per read: an opus chunk of 0.2 s is ~800 bytes), plus `close()`: the
decoding, the MD5 of the decoded PCM and the first-audible search the load client runs per
answer. Formats are interleaved round by round (A B C … A B C …) so that the shared machine's
noise falls on all of them; the figure is the median process CPU time per second of audio, and
what one core carries at that cost (1 / it) in real-time streams.

Part 2 (`streams`, real processes): the fake server (`--rtf 1`: real time, `--chunk-s 0.2`)
serving Ogg Opus, and `vvbench run` (one load worker) with a closed loop of `--streams` users,
each streaming `--stream-audio-s` seconds of opus per request. Carried means: every request ok,
no stall caused by the client (`max_stall_s` 0 at the run's prebuffer), and the run's trust
verdict `trusted` (its load worker's loop never stalled). The fake server runs on the same
machine and takes its share of the CPU; `--format wav` runs the same load without decoding, to
tell stalls of the decoding client from stalls of the machine.

    python bench/decode_cost.py cost --audio-s 10 --rounds 15
    python bench/decode_cost.py streams --streams 100 --seconds 20
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vvbench.core.audio import SAMPLE_RATE, to_pcm16, wav_header  # noqa: E402
from vvbench.core.formats import FORMATS  # noqa: E402
from vvbench.core.proc import STDOUT, Child  # noqa: E402
from vvbench.load.audio import AudioStream  # noqa: E402
from vvbench.load.fakecodec import MUXERS, ChunkEncoder  # noqa: E402

READ_BYTES = 16 * 1024


def signal(audio_s: float) -> np.ndarray:
    t = np.arange(int(audio_s * SAMPLE_RATE)) / SAMPLE_RATE
    x = 0.3 * np.sin(2 * np.pi * (150 + 40 * np.sin(2 * np.pi * 0.5 * t)) * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    x[t < 0.3] = 0.0
    return x


def body(fmt: str, x: np.ndarray) -> bytes:
    if fmt in MUXERS:
        enc = ChunkEncoder(fmt, SAMPLE_RATE)
        step = int(0.4 * SAMPLE_RATE)
        return b"".join(enc.encode(to_pcm16(x[i:i + step])) for i in range(0, len(x), step)) + enc.close()
    return (wav_header(SAMPLE_RATE, None) if fmt == "wav" else b"") + to_pcm16(x)


def decode_cpu_s(fmt: str, data: bytes, piece: int) -> float:
    t0 = time.process_time()
    s = AudioStream(fmt)
    for i in range(0, len(data), piece):
        s.feed(data[i:i + piece])
    s.close()
    spent = time.process_time() - t0
    assert s.audible_at is not None and s.samples > 0
    return spent


def cost(args) -> dict:
    x = signal(args.audio_s)
    bodies = {fmt: body(fmt, x) for fmt in FORMATS}
    cases = [(fmt, piece) for fmt in FORMATS for piece in (READ_BYTES, args.small_piece)]
    for fmt, piece in cases:  # warm-up: FFmpeg's libraries and first-call costs, not measured
        decode_cpu_s(fmt, bodies[fmt], piece)
    times: dict[tuple, list[float]] = {case: [] for case in cases}
    for r in range(args.rounds):
        for case in cases[r % len(cases):] + cases[: r % len(cases)]:
            times[case].append(decode_cpu_s(case[0], bodies[case[0]], case[1]))
    out = {}
    for (fmt, piece), spent in times.items():
        per_s = statistics.median(spent) / args.audio_s
        out[f"{fmt}@{piece}"] = {"cpu_ms_per_audio_s": round(per_s * 1000, 3), "streams_per_core": round(1 / per_s) if per_s else None,
                                 "bytes": len(bodies[fmt]), "cpu_ms_min": round(min(spent) * 1000 / args.audio_s, 3)}
    return {"audio_s": args.audio_s, "rounds": args.rounds, "per_format_at_piece_bytes": out}


def streams(args) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="decode-cost-"))
    chars = int(args.stream_audio_s * 15)
    (tmp / "text.txt").write_text(("word " * chars)[:chars].strip() + ".\n")  # one text: every answer is the same length
    scen = {"name": f"{args.format}-streams", "seed": 1, "classes": [
        {"name": "opus", "text": {"file": "text.txt"}, "length": {"dist": "fixed", "min_chars": chars, "max_chars": chars},
         "response_format": args.format, "timeout": "60s"}],
        "arrival": {"closed": {"users": args.streams}}, "warmup": f"{args.warmup}s", "duration": f"{args.seconds}s",
        "drain": "60s", "prebuffer_ms": args.prebuffer_ms, "slos": {"success_min": 1.0}}
    (tmp / "scen.yaml").write_text(yaml.safe_dump(scen))
    fake = Child([sys.executable, "-m", "vvbench.load.fakeserver", "--port", "0", "--rtf", "1", "--chunk-s", "0.2",
                  "--chars-per-s", "15"], stdout=tmp / "fake.log", stderr=STDOUT, name="fake-tts")
    fake.start()
    try:
        url = fake.wait_url(30.0)
        r = subprocess.run([sys.executable, "-m", "vvbench.cli", "run", str(tmp / "scen.yaml"), "--target", "http", "--url", url,
                            "--out", str(tmp / "runs"), "--json"], capture_output=True, text=True, timeout=args.seconds + 300)
    finally:
        fake.stop()
    import pandas as pd  # noqa: PLC0415

    run_dir = next((tmp / "runs").iterdir())
    run = json.loads((run_dir / "run.json").read_text())
    rows = pd.read_parquet(run_dir / "requests.parquet")
    loop = pd.read_parquet(run_dir / "loop.parquet")
    measured = rows[~rows["warmup"]]
    span = loop["t"].max() - loop["t"].min() if len(loop) else float("nan")
    trust = run.get("trust") or {}
    return {"format": args.format, "streams": args.streams, "exit": r.returncode, "requests": len(measured), "ok": int((measured["status"] == "ok").sum()),
            "max_stall_s": float(measured["max_stall_s"].max()), "underruns": int(measured["underruns"].sum()),
            "ttfa_p50_s": float(measured["ttfa_s"].median()), "ttfa_p95_s": float(measured["ttfa_s"].quantile(0.95)),
            "trusted": trust.get("trusted"), "loop_lag_p99_s": trust.get("loop_lag_p99_s"), "loop_lag_max_s": trust.get("loop_lag_max_s"),
            "worker_cores": float(loop["cpu_s"].sum() / span) if span == span and span > 0 else None,
            "clocks": trust.get("clocks"), "run_dir": str(run_dir)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="part", required=True)
    c = sub.add_parser("cost")
    c.add_argument("--audio-s", type=float, default=10.0)
    c.add_argument("--rounds", type=int, default=15)
    c.add_argument("--small-piece", type=int, default=512, help="a second piece size: a real-time stream arrives in small pieces")
    s = sub.add_parser("streams")
    s.add_argument("--streams", type=int, default=100)
    s.add_argument("--seconds", type=float, default=20.0)
    s.add_argument("--warmup", type=float, default=5.0)
    s.add_argument("--stream-audio-s", type=float, default=10.0)
    s.add_argument("--prebuffer-ms", type=float, default=500.0)
    s.add_argument("--format", default="opus", help="the answers' format (wav: the same load without decoding)")
    args = p.parse_args()
    print(json.dumps(cost(args) if args.part == "cost" else streams(args), indent=2))


if __name__ == "__main__":
    main()
