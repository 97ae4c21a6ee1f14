"""Timing error of one load worker against an independent clock, with and without kernel stamps.

For each load (concurrent real-time streams on one worker: closed-loop users, each request a
4 s answer streamed in 0.4 s chunks at real time by the scripted fake server) and each clock
(`auto`: kernel arrival stamps; `read`: read times), interleaved A B A B, it runs one load
worker process (`python -m vvbench.load.worker --role local`, what `vvbench run` starts) while
`tcpdump -i lo` captures the same connections (`tests/pcapclock.py`: packets reassembled
without vvbench's reader), and reports:

- the timing error |row - packets| of TTFA and E2E over every successful row (warm-up included):
  median, p99 and max;
- the worker's event-loop lag from its `loop.parquet` ticks: p50, p99, max;
- the worker's CPU per request: its process CPU time summed over its loop ticks (so from its
  loop's first tick on, without the start-up imports) / rows.

Optional: `--stall AT:DUR` injects a loop stall (the test hook) into every run. Needs tcpdump
and the right to capture (root or CAP_NET_RAW). The fake server and tcpdump share the machine
with the worker; say what else ran when you quote the figures.

    python bench/timing_error.py --streams 10,100,500 --repeats 2 --seconds 6
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the independent clock lives with the tests that use it

import numpy as np  # noqa: E402
import pcapclock  # noqa: E402

from vvbench.artifacts.scenarios import Scenario  # noqa: E402
from vvbench.artifacts.schemas import LOOP  # noqa: E402
from vvbench.core.proc import STDOUT, Child  # noqa: E402
from vvbench.load.context import LoadPlan  # noqa: E402
from vvbench.load.records import concat_parts, read_rows  # noqa: E402


def fake_server(log_dir: Path) -> Child:
    return Child([sys.executable, "-m", "vvbench.load.fakeserver", "--port", "0", "--rtf", "1.0", "--chunk-s", "0.4",
                  "--first-delay-s", "0.05", "--chars-per-s", "15"], stdout=log_dir / "fake.log", stderr=STDOUT, name="fake-tts")


def _stats(values: np.ndarray, prefix: str) -> dict:
    v = np.abs(values) * 1000
    return {f"{prefix}_median_ms": round(float(np.median(v)), 3), f"{prefix}_p99_ms": round(float(np.percentile(v, 99)), 3),
            f"{prefix}_max_ms": round(float(v.max()), 3)}


def one_run(url: str, port: int, streams: int, clock: str, seconds: float, work: Path, stall: str | None) -> dict:
    scenario = Scenario.model_validate({
        "name": "timing", "seed": 0, "warmup": 1, "duration": seconds, "drain": 15, "prebuffer_ms": 200,
        "classes": [{"name": "rt", "text": {"corpus": "short"}, "length": {"dist": "fixed", "min_chars": 60, "max_chars": 60},
                     "response_format": "pcm", "timeout": 30}],
        "arrival": {"closed": {"users": streams}}})
    work.mkdir(parents=True)
    (work / "plan.json").write_text(LoadPlan(scenario=scenario, base_url=url, clock=clock).model_dump_json())
    env = {**os.environ, **({"VVBENCH_INJECT_STALL": stall} if stall else {})}
    with pcapclock.Capture(port) as cap:
        worker = Child([sys.executable, "-m", "vvbench.load.worker", "--role", "local", "--plan", str(work / "plan.json"),
                        "--out", str(work)], stdout=work / "worker.log", stderr=STDOUT, name="load worker", env=env).start()
        code = worker.reap(None)
    rows = read_rows(work / "rows")
    errs = pcapclock.errors(rows, pcapclock.exchanges(cap.path, port))
    cap.cleanup()
    loop = concat_parts(work / "loop", LOOP)
    lags = loop.column("lag_s").to_numpy()
    cpu = float(np.sum(loop.column("cpu_s").to_numpy()))
    return {"streams": streams, "clock": clock, "rows": len(rows), "ok": len(errs), "dropped_packets": cap.dropped,
            "clocks": sorted(set(rows["clock"])), **_stats(errs["ttfa_err_s"].to_numpy(), "ttfa_err"),
            **_stats(errs["e2e_err_s"].to_numpy(), "e2e_err"),
            "loop_lag_p50_ms": round(1000 * float(np.percentile(lags, 50)), 3),
            "loop_lag_p99_ms": round(1000 * float(np.percentile(lags, 99)), 3),
            "loop_lag_max_ms": round(1000 * float(lags.max()), 3),
            "cpu_ms_per_request": round(1000 * cpu / max(1, len(rows)), 2), "exit": code}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--streams", default="10,100,500")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--stall", default=None, help="AT_S:DURATION_S, a loop stall injected into every run")
    args = p.parse_args()
    why = pcapclock.available()
    if why:
        sys.exit(f"timing_error: {why}")
    print(f"load average before: {os.getloadavg()}", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp, fake_server(Path(tmp)) as fake:
        url = fake.wait_url(30)
        port = int(url.rsplit(":", 1)[1])
        k = 0
        for streams in (int(s) for s in args.streams.split(",")):
            for _ in range(args.repeats):
                for clock in ("auto", "read"):  # interleaved: A B A B
                    k += 1
                    result = one_run(url, port, streams, clock, args.seconds, Path(tmp) / str(k), args.stall)
                    print(json.dumps(result), flush=True)
                    time.sleep(1)
    print(f"load average after: {os.getloadavg()}", file=sys.stderr)


if __name__ == "__main__":
    main()
