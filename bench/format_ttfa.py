"""TTFA of streamed mp3 and opus against wav on the same requests, measured side by side by `vvbench run`.

Runs `vvbench run bench/scenarios/formats-ttfa.yaml` on the embedded `tiny` target (one closed-loop
user sending wav, mp3, opus in turn, each round's three requests with the same text, voice and
seed: `mix: round_robin`), then pairs each round's mp3 and opus row with its wav row (same seed,
text length and voice) and reports per codec the TTFA differences codec - wav: median, p95, and
the share of pairs within the bound

    codec delay (encoder lookahead) + one frame + 10 ms

at the decoded rate, where the delay is what the row declares (`codec_priming_samples`: Opus'
pre-skip, 312 at 48 kHz; for mp3 the service's `X-Codec-Delay` header, 576 + 529 samples) or,
for a row that says nothing, the encoder's declared delay (`vvbench.core.formats.encode.CODEC_DELAYS`), and a
frame is 1152 samples for mp3 and 20 ms for Opus. Only rows outside warm-up with status ok count.

`--split N` instead sends N rounds of the same text and seed as wav, mp3 and opus straight to
the embedded service (one at a time, streamed) and splits each answer's time to first byte with
its `Server-Timing`: `first_chunk` (the engine's first chunk), `encode` (the output chain's
encoding of it) and the rest (hand-off to the event loop and HTTP); medians over rounds 2..N.

    python bench/format_ttfa.py --duration 300s
    python bench/format_ttfa.py --split 25
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from vvbench.artifacts.reader import load_run  # noqa: E402
from vvbench.core.formats.encode import CODEC_DELAYS  # noqa: E402

SCENARIO = ROOT / "bench" / "scenarios" / "formats-ttfa.yaml"
FRAME_S = {"mp3": None, "opus": 0.020}  # mp3: one frame of 1152 samples at the decoded rate
MP3_FRAME = 1152
SLACK_S = 0.010


def bound_s(row: pd.Series) -> float:
    """The codec's delay plus one frame plus 10 ms, for one compressed row (module docstring)."""
    rate = float(row["sample_rate"])
    fmt = row["format"]
    declared = row["codec_priming_samples"]
    delay = float(declared) if pd.notna(declared) else float(CODEC_DELAYS.get(fmt, 0))
    frame = MP3_FRAME / rate if fmt == "mp3" else FRAME_S[fmt]
    return delay / rate + frame + SLACK_S


def pairs(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (codec row, its round's wav row): format, seed, diff_s, bound_s, delay source."""
    rows = rows[(rows["status"] == "ok") & (~rows["warmup"].astype(bool))]
    key = ["seed", "text_chars", "voice"]
    wav = rows[rows["format"] == "wav"].set_index(key)["ttfa_s"]
    out = []
    for _, row in rows[rows["format"].isin(["mp3", "opus"])].iterrows():
        k = tuple(row[c] for c in key)
        if k not in wav.index:
            continue
        out.append({"format": row["format"], "seed": row["seed"], "diff_s": row["ttfa_s"] - float(wav.loc[k]),
                    "bound_s": bound_s(row), "declared": pd.notna(row["codec_priming_samples"]),
                    "ttfb_diff_s": row["ttfb_s"] - float(rows[(rows["format"] == "wav") & (rows["seed"] == row["seed"])]["ttfb_s"].iloc[0])})
    return pd.DataFrame(out)


def summarise(p: pd.DataFrame) -> dict:
    res = {}
    for fmt, g in p.groupby("format"):
        d = g["diff_s"].to_numpy() * 1000
        res[fmt] = {"pairs": len(g), "median_ms": round(float(np.median(d)), 1), "p95_ms": round(float(np.percentile(d, 95)), 1),
                    "min_ms": round(float(d.min()), 1), "max_ms": round(float(d.max()), 1),
                    "bound_ms": round(float(g["bound_s"].iloc[0]) * 1000, 1),
                    "within_bound": round(float((g["diff_s"] <= g["bound_s"]).mean()), 3),
                    "median_within_bound": bool(np.median(g["diff_s"]) <= g["bound_s"].iloc[0]),
                    "ttfb_diff_median_ms": round(float(np.median(g["ttfb_diff_s"])) * 1000, 1),
                    "delay_from_row": bool(g["declared"].all())}
    return res


def split(rounds: int) -> None:
    """Time to first byte of wav, mp3 and opus split by Server-Timing (module docstring)."""
    import httpx

    from vvbench.harness.targets import EmbeddedTarget
    from vvbench.runtime.config import RuntimeConfig

    def timing(header: str) -> dict[str, float]:
        return {m.group(1): float(m.group(2)) for m in re.finditer(r"(\w+);dur=([\d.]+)", header)}

    target = EmbeddedTarget(RuntimeConfig(preset="tiny", threads=1), Path(tempfile.mkdtemp(prefix="vvbench-format-split-")))
    got: dict[str, list[tuple[float, float, float]]] = {f: [] for f in ("wav", "mp3", "opus")}
    print(f"load average before: {os.getloadavg()}", file=sys.stderr)
    target.start()
    try:
        with httpx.Client(base_url=target.url, timeout=120, headers={"Authorization": f"Bearer {target.api_key}"}) as c:
            for r in range(rounds):
                for fmt in got:
                    body = {"input": "A short sentence to time the first chunk.", "seed": r, "response_format": fmt}
                    t0 = time.perf_counter()
                    with c.stream("POST", "/v1/audio/speech", json=body) as resp:
                        pieces = resp.iter_raw()
                        next(pieces)
                        ttfb = (time.perf_counter() - t0) * 1000
                        st = timing(resp.headers["server-timing"])
                        for _ in pieces:
                            pass
                    if r:
                        got[fmt].append((ttfb, st.get("first_chunk", math.nan), st.get("encode", 0.0)))
    finally:
        target.stop()
    print(f"load average after: {os.getloadavg()}", file=sys.stderr)
    print("| format | TTFB ms | first_chunk ms | encode ms | rest ms |")
    print("|---|---|---|---|---|")
    for fmt, v in got.items():
        ttfb, first, enc = (statistics.median(x[i] for x in v) for i in range(3))
        rest = statistics.median(x[0] - x[1] - x[2] for x in v)
        print(f"| {fmt} | {ttfb:.1f} | {first:.1f} | {enc:.2f} | {rest:.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", default="300s", help="measured duration of the run")
    ap.add_argument("--out", default=None, help="where the run directory goes (default: a temporary folder)")
    ap.add_argument("--split", type=int, default=0, help="instead: N rounds split by Server-Timing")
    args = ap.parse_args()
    if args.split:
        split(args.split)
        return
    out = Path(args.out or tempfile.mkdtemp(prefix="vvbench-format-ttfa-"))
    print(f"load average before: {os.getloadavg()}", file=sys.stderr)
    cmd = [sys.executable, "-m", "vvbench.cli", "run", str(SCENARIO), "--preset", "tiny", "--threads", "1",
           "--duration", args.duration, "--out", str(out), "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    print(f"load average after: {os.getloadavg()}", file=sys.stderr)
    if done.returncode != 0:
        sys.exit(f"vvbench run failed ({done.returncode}): {done.stderr[-2000:]}")
    run_dir = next(p for p in sorted(out.iterdir()) if p.is_dir())
    rows = load_run(run_dir).requests
    result = {"run_dir": str(run_dir), "rows": len(rows), "ok": int((rows["status"] == "ok").sum()),
              "formats": summarise(pairs(rows))}
    print(json.dumps(result, indent=2))
    print("| format | pairs | TTFA − wav median ms | p95 ms | min … max ms | bound ms | within bound | TTFB − wav median ms |")
    print("|---|---|---|---|---|---|---|---|")
    for fmt, s in result["formats"].items():
        print(f"| {fmt} | {s['pairs']} | {s['median_ms']:+.1f} | {s['p95_ms']:+.1f} | {s['min_ms']:+.1f} … {s['max_ms']:+.1f} | "
              f"{s['bound_ms']:.1f} | {s['within_bound']:.0%} | {s['ttfb_diff_median_ms']:+.1f} |")


if __name__ == "__main__":
    main()
