"""The watchdog's own cost and the exporter's scrape time, against a real `vvbench serve --preset tiny`.

Runs `vvbench watch --sample-hz HZ --canary-every P --metrics-port 0 -- vvbench serve --preset tiny
--port 0` (the watchdog in its own process, as deployed), waits for the service to be ready and the
first canary, then over `--seconds`:

- the watchdog process's own CPU time (user + system; its children — the service — are not
  counted) as a share of one core, and its RSS (mean and peak, read every 0.5 s);
- the service's CPU share over the same period (what the sampling, probes and canaries cost it
  includes the canary syntheses);
- then `--scrapes` sequential `GET /metrics` from this process: wall time per scrape (p50, p95).

Each configuration in `--canary` (default: 10 s, and 0 = off, to separate the canary's share)
runs with a fresh watchdog and service. Load average is printed before and after.

    python bench/watchdog_cost.py --seconds 60 --hz 5 --canary 10,0 --scrapes 200
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil
import watchproc  # bench/watchproc.py, beside this script


def measure(hz: float, canary_s: float, seconds: float, scrapes: int) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="vvbench-watch-bench-"))
    events = tmp / "events.jsonl"
    serve = [sys.executable, "-m", "vvbench.cli", "serve", "--preset", "tiny", "--port", "0", "--data-dir", str(tmp / "data")]
    args = ["--sample-hz", str(hz), "--canary-every", f"{canary_s}s", "--metrics-port", "0", "--run-for", f"{seconds + 300:.0f}s"]
    proc = watchproc.start(args, events, tmp / "watch.log", serve)
    try:
        ready = watchproc.wait_event(events, "ready", 240, proc)
        port = watchproc.wait_event(events, "metrics", 10, proc)["port"]
        if canary_s > 0:
            watchproc.wait_event(events, "canary_baseline", 120, proc)
        time.sleep(2.0)
        watch, service = psutil.Process(proc.pid), psutil.Process(ready["pid"])
        w0, s0, t0 = watch.cpu_times(), service.cpu_times(), time.monotonic()
        rss = []
        while time.monotonic() - t0 < seconds:
            rss.append(watch.memory_info().rss)
            time.sleep(0.5)
        wall = time.monotonic() - t0
        w1, s1 = watch.cpu_times(), service.cpu_times()
        times = []
        for _ in range(scrapes):
            a = time.perf_counter()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
                body = r.read()
            times.append(time.perf_counter() - a)
        times.sort()
        return {
            "hz": hz, "canary_s": canary_s, "wall_s": round(wall, 1),
            "watch_core_share": round((w1.user + w1.system - w0.user - w0.system) / wall, 4),
            "watch_rss_mib_mean": round(statistics.mean(rss) / 2**20, 1), "watch_rss_mib_peak": round(max(rss) / 2**20, 1),
            "service_core_share": round((s1.user + s1.system - s0.user - s0.system) / wall, 4),
            "scrape_ms_p50": round(1000 * times[len(times) // 2], 2), "scrape_ms_p95": round(1000 * times[int(len(times) * 0.95) - 1], 2),
            "scrape_bytes": len(body),
        }
    finally:
        watchproc.stop(proc, 90)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--hz", type=float, default=5.0)
    p.add_argument("--canary", default="10,0", help="canary periods in seconds, comma-separated (0: off)")
    p.add_argument("--scrapes", type=int, default=200)
    args = p.parse_args()
    print(f"load average before: {os.getloadavg()}", file=sys.stderr)
    for canary_s in [float(c) for c in args.canary.split(",")]:
        print(json.dumps(measure(args.hz, canary_s, args.seconds, args.scrapes)), flush=True)
    print(f"load average after: {os.getloadavg()}", file=sys.stderr)


if __name__ == "__main__":
    main()
