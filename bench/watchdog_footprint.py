"""The watchdog daemon's footprint: start-up time and resident memory, side by side for two installs.

    python bench/watchdog_footprint.py --python /path/to/old/venv/bin/python --python /path/to/new/venv/bin/python --repeats 5

For each interpreter (each with a vvbench installed), interleaved A B A B: spawn `vvbench watch
--canary-every 0 -- sh -c 'env > FILE; exec sleep 60'`, and measure the time until the watchdog
has started its service (the `start` event in its JSONL log), its RSS 2 s later (its loop has
sampled and probed), whether any torch, gevent or greenlet library is mapped into it, and whether
the service it spawned inherited an `MKL_CBWR` the watchdog set. Prints a Markdown table of medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vvbench.core.proc import Child  # noqa: E402  (light: this process never imports the runtime)

HEAVY = ("libtorch", "torch/_C", "gevent", "greenlet")


def _started(events: Path) -> bool:
    lines = events.read_text().splitlines() if events.exists() else []
    return any(json.loads(x).get("kind") == "start" for x in lines if x.endswith("}"))


def one(python: str, tmp: Path) -> dict:
    events, env_file = tmp / "events.jsonl", tmp / "child.env"
    for f in (events, env_file):
        f.unlink(missing_ok=True)
    argv = [python, "-m", "vvbench.cli", "watch", "--canary-every", "0", "--run-for", "20s", "--events", str(events),
            "--", "sh", "-c", f'env > "{env_file}"; exec sleep 60']
    t0 = time.monotonic()
    proc = Child(argv, env={"MKL_CBWR": None}, stdout=os.devnull, stderr=os.devnull, cwd=tmp, name="vvbench watch").start()
    try:
        while not _started(events):
            if proc.poll() is not None or time.monotonic() - t0 > 60:
                raise SystemExit(f"{python}: the watchdog did not start its service")
            time.sleep(0.005)
        startup = time.monotonic() - t0
        time.sleep(2.0)
        rss = psutil.Process(proc.pid).memory_info().rss
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        heavy = sorted({line.split()[-1].rsplit("/", 1)[-1] for line in maps.splitlines() if any(h in line for h in HEAVY)})
    finally:
        proc.stop(30)
    return {"startup_s": startup, "rss_mib": rss / 2**20, "heavy_libs": len(heavy),
            "mkl_cbwr": "MKL_CBWR=" in env_file.read_text() if env_file.exists() else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--python", action="append", required=True, help="an interpreter with vvbench installed (repeat)")
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    results: dict[str, list[dict]] = {p: [] for p in a.python}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(a.repeats):
            for python in a.python:  # interleaved: A B A B, so drift on a shared machine hits both alike
                results[python].append(one(python, Path(tmp)))
    print("| install | start-up to service spawned, s (median) | RSS after 2 s, MiB (median) | torch/gevent libraries mapped | MKL_CBWR passed to the service |")
    print("|---|---|---|---|---|")
    for python, rows in results.items():
        print(f"| `{python}` | {statistics.median(r['startup_s'] for r in rows):.2f} | {statistics.median(r['rss_mib'] for r in rows):.0f} | "
              f"{max(r['heavy_libs'] for r in rows)} | {json.dumps(any(r['mkl_cbwr'] for r in rows))} |")


if __name__ == "__main__":
    main()
