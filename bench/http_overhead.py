"""HTTP overhead of the service on an idle machine: time to first audio over HTTP minus engine-only.

For each batch window (default 0 and 50 ms) this starts `vvbench serve` on loopback, sends
`--requests` streaming requests one after another (idle between them; each is dropped after its
first audio, so the next finds the engine idle), and records per request:
the client's time from sending the request to the first audio byte, and the server's own
`first_chunk` from `Server-Timing` (engine submit -> first chunk). It then stops the server and
times the same requests on an embedded `Engine` with the same config in this process (submit ->
first chunk). Reported: medians and p95 of each, the overhead `client TTFA - engine-only TTFA`
(medians), and the per-request `client TTFA - server first_chunk` (what HTTP, validation and
streaming add to one request).

    python bench/http_overhead.py --preset tiny --requests 20
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vvbench.harness.targets import EmbeddedTarget  # noqa: E402
from vvbench.runtime.config import RuntimeConfig  # noqa: E402

TEXT = "Good morning. Your order has shipped and will arrive on Tuesday."


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def server_first_chunk_s(header: str) -> float:
    for part in header.split(","):
        name, _, dur = part.strip().partition(";dur=")
        if name == "first_chunk":
            return float(dur) / 1000
    raise ValueError(f"no first_chunk in Server-Timing: {header}")


def over_http(preset: str, window_ms: float, n: int, warmup: int) -> dict:
    log_dir = tempfile.mkdtemp(prefix="vvbench-bench-")
    child = EmbeddedTarget(RuntimeConfig(preset=preset, batch_window_ms=window_ms), Path(log_dir))
    child.start()
    client_s, server_s = [], []
    try:
        with httpx.Client(base_url=child.url, timeout=120, headers={"Authorization": f"Bearer {child.api_key}"}) as c:
            for i in range(warmup + n):
                t0 = time.perf_counter()
                first = None
                with c.stream("POST", "/v1/audio/speech", json={"input": TEXT, "seed": i, "response_format": "pcm"}) as resp:
                    resp.raise_for_status()
                    for chunk in resp.iter_raw():
                        if chunk:
                            first = time.perf_counter() - t0
                            break  # leaving the block disconnects; the server cancels the rest
                    timing = resp.headers["server-timing"]
                if i >= warmup:
                    client_s.append(first)
                    server_s.append(server_first_chunk_s(timing))
                time.sleep(0.2)  # idle between requests
    finally:
        child.stop()
        shutil.rmtree(log_dir, ignore_errors=True)
    return {"client_ttfa_s": client_s, "server_first_chunk_s": server_s}


def engine_only(preset: str, window_ms: float, n: int, warmup: int) -> list[float]:
    from vvbench.runtime.config import load_runtime_config
    from vvbench.runtime.engine import Engine
    from vvbench.runtime.request import SynthesisRequest

    out = []
    with Engine(load_runtime_config(None, overrides={"preset": preset, "batch_window_ms": window_ms})) as engine:
        engine.warmup()
        for i in range(warmup + n):
            t0 = time.perf_counter()
            handle = engine.submit(SynthesisRequest(text=TEXT, seed=i))
            next(handle.chunks())
            first = time.perf_counter() - t0
            handle.cancel()  # as the HTTP client disconnects after its first audio
            while not handle.state.finished:
                time.sleep(0.01)
            if i >= warmup:
                out.append(first)
            time.sleep(0.2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--windows", default="0,50", help="batch_window_ms values, comma-separated")
    ap.add_argument("--json", dest="json_out", default=None, help="also write the raw figures here")
    args = ap.parse_args()
    load_before = os.getloadavg()
    rows, raw = [], {}
    for window in [float(w) for w in args.windows.split(",")]:
        http = over_http(args.preset, window, args.requests, args.warmup)
        eng = engine_only(args.preset, window, args.requests, args.warmup)
        per_req = [c - s for c, s in zip(http["client_ttfa_s"], http["server_first_chunk_s"])]
        raw[str(window)] = {**http, "engine_ttfa_s": eng}
        rows.append((window, statistics.median(http["client_ttfa_s"]), pct(http["client_ttfa_s"], 95),
                     statistics.median(eng), pct(eng, 95),
                     statistics.median(http["client_ttfa_s"]) - statistics.median(eng),
                     statistics.median(per_req), pct(per_req, 95)))
    print(f"preset {args.preset}, {args.requests} requests per setting after {args.warmup} warm-up, "
          f"load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}")
    print("| batch_window_ms | HTTP TTFA p50 / p95 (ms) | engine-only TTFA p50 / p95 (ms) | overhead p50 (ms) "
          "| per-request client − server first_chunk p50 / p95 (ms) |")
    print("|---|---|---|---|---|")
    for w, hp50, hp95, ep50, ep95, over, rp50, rp95 in rows:
        print(f"| {w:g} | {hp50 * 1e3:.1f} / {hp95 * 1e3:.1f} | {ep50 * 1e3:.1f} / {ep95 * 1e3:.1f} | {over * 1e3:.1f} "
              f"| {rp50 * 1e3:.1f} / {rp95 * 1e3:.1f} |")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(raw, indent=1))


if __name__ == "__main__":
    main()
