"""Short-first admission: TTFA of streaming clients while long-form jobs run, with and without it.

For each mode (`--short-first`, `--no-short-first`) this starts `vvbench serve` on loopback
(default: `small` preset, 2 slots, so that slots are contended), submits `--jobs` long-form jobs,
then runs 3 closed-loop streaming clients that each send `--requests` short requests (with
`--job-after-s S` the jobs arrive S seconds after the clients started instead). Per
streaming request it records the time from sending to the first audio byte (TTFA) and whether it
succeeded (a request still waiting after `--request-timeout-s` fails with 503). Reported per
mode: successes, TTFA p50 and p95 of the successful requests, and how far the jobs got.

Short-first: streaming requests are priority 0 and jobs priority 1, and jobs hold at most
`max_batch // 2` slots. Without it: one FIFO queue, and jobs may hold every slot.

    python bench/short_first.py --preset small --jobs 1
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vvbench.harness.targets import EmbeddedTarget  # noqa: E402
from vvbench.runtime.config import RuntimeConfig  # noqa: E402

SHORT = ["Yes, that works for me.", "Please hold on a second.", "The meeting starts at noon.",
         "Thanks, see you tomorrow.", "Could you repeat that?", "It is raining again."]
LONG = "This is a long-form narration that goes on and on, paragraph after paragraph, for many minutes. " * 40


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def client(url: str, api_key: str, idx: int, n: int, out: list, lock: threading.Lock) -> None:
    rng = random.Random(idx)
    with httpx.Client(base_url=url, timeout=600, headers={"Authorization": f"Bearer {api_key}"}) as c:
        for i in range(n):
            body = {"input": rng.choice(SHORT), "seed": idx * 1000 + i, "response_format": "pcm"}
            t0 = time.perf_counter()
            first, status = None, None
            with c.stream("POST", "/v1/audio/speech", json=body) as resp:
                status = resp.status_code
                for chunk in resp.iter_raw():
                    if chunk and first is None and status == 200:
                        first = time.perf_counter() - t0
            with lock:
                out.append((status, first))


def run_mode(args, short_first: bool) -> dict:
    log_dir = tempfile.mkdtemp(prefix="vvbench-bench-")
    config = RuntimeConfig(preset=args.preset, max_batch=args.max_batch, batch_window_ms=5, request_timeout_s=args.request_timeout_s)
    child = EmbeddedTarget(config, Path(log_dir), serve_args=["--short-first" if short_first else "--no-short-first"])
    child.start()
    try:
        with httpx.Client(base_url=child.url, timeout=60, headers={"Authorization": f"Bearer {child.api_key}"}) as c:
            def submit_jobs() -> list[str]:
                return [c.post("/v1/jobs", json={"input": LONG, "seed": j}).json()["id"] for j in range(args.jobs)]

            jobs = []
            if args.job_after_s is None:
                jobs = submit_jobs()
                time.sleep(1.0)  # the jobs hold their slots before the clients arrive
            results: list = []
            lock = threading.Lock()
            t0 = time.perf_counter()
            threads = [threading.Thread(target=client, args=(child.url, child.api_key, k, args.requests, results, lock)) for k in range(3)]
            for t in threads:
                t.start()
            if args.job_after_s is not None:
                time.sleep(args.job_after_s)  # the jobs arrive while the clients keep the slots busy
                jobs = submit_jobs()
            for t in threads:
                t.join()
            wall = time.perf_counter() - t0
            progress = [c.get(f"/v1/jobs/{j}").json()["progress"] for j in jobs]
            for j in jobs:
                c.delete(f"/v1/jobs/{j}")
    finally:
        child.stop()
        shutil.rmtree(log_dir, ignore_errors=True)
    ok = [f for s, f in results if s == 200 and f is not None]
    return {"mode": "short-first" if short_first else "no-short-first", "requests": len(results), "ok": len(ok),
            "ttfa_p50_s": statistics.median(ok) if ok else None, "ttfa_p95_s": pct(ok, 95) if ok else None,
            "job_progress": progress, "wall_s": wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--max-batch", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--requests", type=int, default=6, help="requests per streaming client")
    ap.add_argument("--request-timeout-s", type=float, default=30.0)
    ap.add_argument("--job-after-s", type=float, default=None,
                    help="submit the jobs this long after the clients start (default: before them)")
    args = ap.parse_args()
    load_before = os.getloadavg()[0]
    rows = [run_mode(args, True), run_mode(args, False)]
    when = "before the clients" if args.job_after_s is None else f"{args.job_after_s:g} s after the clients started"
    print(f"preset {args.preset}, max_batch {args.max_batch}, {args.jobs} long job(s) submitted {when}, 3 streaming clients x "
          f"{args.requests} requests, request_timeout_s {args.request_timeout_s:g}; "
          f"load average before {load_before:.2f}, after {os.getloadavg()[0]:.2f}")
    print("| mode | streaming ok / sent | TTFA p50 (s) | TTFA p95 (s) | job progress at the end | wall (s) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        p50 = f"{r['ttfa_p50_s']:.2f}" if r["ttfa_p50_s"] is not None else "n/a"
        p95 = f"{r['ttfa_p95_s']:.2f}" if r["ttfa_p95_s"] is not None else "n/a"
        prog = ", ".join(f"{p:.0%}" for p in r["job_progress"])
        print(f"| {r['mode']} | {r['ok']} / {r['requests']} | {p50} | {p95} | {prog} | {r['wall_s']:.0f} |")


if __name__ == "__main__":
    main()
