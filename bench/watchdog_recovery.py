"""Time from a memory threshold crossing to the service ready again, under the watchdog, per preset.

For each preset and repeat: `vvbench watch --sample-hz 10 --rss-max +LIMIT --consecutive 1
--trend-horizon 0 -- vvbench serve --preset P --allow-faults --leak-mb-per-request 20 --max-batch 2 --port PORT`
(only the threshold rule, so that the crossing is a well-defined instant), then two closed-loop
client threads send short speech requests until the watchdog restarts the service. This process
reads the old service's RSS independently at 20 Hz; the crossing is the first reading at or over
the limit the watchdog reports in its `restart` event. Reported, from the events' timestamps:

- detect: crossing -> restart decision (at most one sampling period with K = 1, plus the
  reading's own lag);
- drain: decision -> old process exited (SIGTERM; in-flight requests finish; their leak too);
- backoff: exit -> new process started (the configured 0.5 s);
- start: new process started -> ready (model load and warm-up; `/readyz` polled every 0.2 s);
- total: crossing -> ready again (from the decision when the trend rule restarted it before any
  crossing); and how far the old process's RSS got past the limit (negative: it never reached it).

`--trend-horizon S` adds the trend rule (fitted over 3 s): it restarts while the RSS is still below
the limit, so the drain's own growth (in-flight requests finishing, each leaking) stays under it.

The watchdog runs with `--memory-settle 0s`: the growth base is the first reading after ready and
trends are judged from ready on, as when the figures in docs/benchmarks.md were measured. The leak
starts with the first request, and what is timed is the crossing, not the warm-up.

    python bench/watchdog_recovery.py --presets tiny,small --repeats 3
    python bench/watchdog_recovery.py --presets tiny,small --repeats 3 --trend-horizon 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import watchproc  # noqa: E402  (bench/watchproc.py, beside this script)

from vvbench.core.net import free_port  # noqa: E402


def load(url: str, stop: threading.Event, worker: int) -> None:
    with httpx.Client(timeout=60) as c:
        for n in range(10_000):
            if stop.is_set():
                return
            try:
                c.post(f"{url}/v1/audio/speech", json={"input": "A short sentence keeps the engine busy.", "voice": "alloy",
                                                       "seed": worker * 10_000 + n, "stream": False, "response_format": "wav"})
            except httpx.HTTPError:
                stop.wait(0.2)


def one(preset: str, growth_mb: int, hz: float, trend_horizon_s: float) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="vvbench-recovery-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    ev = tmp / "events.jsonl"
    serve = [sys.executable, "-m", "vvbench.cli", "serve", "--preset", preset, "--port", str(port), "--data-dir", str(tmp / "data"),
             "--allow-faults", "--leak-mb-per-request", "20", "--max-batch", "2"]
    args = ["--url", url, "--sample-hz", str(hz), "--rss-max", f"+{growth_mb}MB", "--consecutive", "1", "--trend-window", "3s",
            "--trend-horizon", f"{trend_horizon_s}s", "--memory-settle", "0s", "--canary-every", "0", "--probe-every", "1s",
            "--grace", "30s", "--backoff", "0.5s", "--run-for", "600s"]
    proc = watchproc.start(args, ev, tmp / "watch.log", serve)
    stop = threading.Event()
    try:
        first = watchproc.wait_event(ev, "ready", 300, proc, count=1)
        old = psutil.Process(first["pid"])
        trace: list[tuple[float, int]] = []
        threads = [threading.Thread(target=load, args=(url, stop, i), daemon=True) for i in range(2)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                trace.append((time.time(), old.memory_info().rss))
            except psutil.Error:
                break
            if any(e["kind"] == "exit" for e in watchproc.read_events(ev)):
                break
            time.sleep(0.05)
        stop.set()
        restart = watchproc.wait_event(ev, "restart", 60, proc, count=1)
        exit_ = next(e for e in watchproc.read_events(ev) if e["kind"] == "exit")
        start2 = watchproc.wait_event(ev, "start", 60, proc, count=2)
        ready2 = watchproc.wait_event(ev, "ready", 300, proc, count=2)
        limit = restart["values"]["limit_bytes"]
        crossing = next((t for t, rss in trace if rss >= limit), None)
        since = restart["t"] if crossing is None else crossing
        return {"preset": preset, "rule": restart["reason"], "crossed": crossing is not None,
                "detect_s": None if crossing is None else round(restart["t"] - crossing, 3),
                "drain_s": round(exit_["t"] - restart["t"], 3), "backoff_s": round(start2["t"] - exit_["t"], 3),
                "start_s": round(ready2["t"] - start2["t"], 3), "total_s": round(ready2["t"] - since, 3),
                "watchdog_recovery_s": ready2["recovery_s"], "peak_over_limit_mib": round((max(r for _, r in trace) - limit) / 2**20, 1)}
    finally:
        stop.set()
        watchproc.stop(proc, 120)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", default="tiny,small")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--growth-mb", type=int, default=150, help="threshold: RSS at ready + this")
    p.add_argument("--hz", type=float, default=10.0)
    p.add_argument("--trend-horizon", type=float, default=0.0, help="seconds; 0: threshold rule only (default)")
    args = p.parse_args()
    print(f"load average before: {os.getloadavg()}", file=sys.stderr)
    for preset in args.presets.split(","):
        rows = []
        for _ in range(args.repeats):
            rows.append(one(preset, args.growth_mb, args.hz, args.trend_horizon))
            print(json.dumps(rows[-1]), flush=True)
        summary = {k: round(statistics.median(r[k] for r in rows), 3) for k in rows[0]
                   if isinstance(rows[0][k], float) and all(r[k] is not None for r in rows)}
        print(json.dumps({"preset": preset, "median": summary}), flush=True)
    print(f"load average after: {os.getloadavg()}", file=sys.stderr)


if __name__ == "__main__":
    main()
