"""The load generator's own ceiling: what one load worker sustains against a trivial endpoint.

Starts the scripted fake server (`vvbench.load.fakeserver`) answering every request at once with
a tiny streamed WAV (`--rtf 0 --first-delay-s 0`, ~40 ms of audio), then runs one load worker
process (`python -m vvbench.load.worker --role local`, exactly what `vvbench run --workers 1`
starts) open-loop at increasing constant rates. For each rate it reports the achieved rate
(successful requests per second of the window), the send lag p95 (how late requests left
after their scheduled time: the generator falling behind shows here first), and the worker's
CPU time per request (user + system, from `getrusage` of the reaped worker), which is the generator's intrinsic cost:
one dedicated core sustains at most about 1 / (CPU per request).

The fake server runs on the same machine and competes for the CPU; with 2 cores the figures
are a lower bound of the generator's ceiling.

    python bench/load_generator.py --rates 50,100,200,400 --seconds 5
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vvbench.artifacts.scenarios import Scenario  # noqa: E402
from vvbench.core.proc import STDOUT, Child  # noqa: E402
from vvbench.load.context import LoadPlan  # noqa: E402
from vvbench.load.records import read_rows  # noqa: E402


def fake_server(log_dir: Path) -> Child:
    return Child([sys.executable, "-m", "vvbench.load.fakeserver", "--port", "0", "--rtf", "0", "--first-delay-s", "0",
                  "--chars-per-s", "1000", "--chunk-s", "1"], stdout=log_dir / "fake.log", stderr=STDOUT, name="fake-tts")


def one_rate(url: str, rate: float, seconds: float, work: Path) -> dict:
    scenario = Scenario.model_validate({
        "name": "ceiling", "seed": 0, "duration": seconds, "drain": 10, "prebuffer_ms": 0,
        "classes": [{"name": "tiny", "text": {"corpus": "short"}, "length": {"dist": "fixed", "min_chars": 40, "max_chars": 40},
                     "timeout": 10}],
        "arrival": {"constant": {"rate": rate, "max_inflight": 64}}})
    work.mkdir(parents=True)
    (work / "plan.json").write_text(LoadPlan(scenario=scenario, base_url=url).model_dump_json())
    before = resource.getrusage(resource.RUSAGE_CHILDREN)  # CPU of the children reaped so far (the fake is not)
    t0 = time.monotonic()
    worker = Child([sys.executable, "-m", "vvbench.load.worker", "--role", "local", "--plan", str(work / "plan.json"),
                    "--out", str(work)], stdout=work / "worker.log", stderr=STDOUT, name="load worker").start()
    code = worker.reap(None)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    rows = read_rows(work / "rows")
    ok = rows[rows["status"] == "ok"]
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {"offered_rps": rate, "requests": len(rows), "ok": len(ok),
            "achieved_rps": round(len(ok) / seconds, 1),
            "send_lag_p50_ms": round(1000 * rows["lag_s"].quantile(0.5), 2),
            "send_lag_p95_ms": round(1000 * rows["lag_s"].quantile(0.95), 2),
            "ttfb_p50_ms": round(1000 * ok["ttfb_s"].median(), 2) if len(ok) else None,
            "worker_cpu_s": round(cpu, 2), "worker_wall_s": round(wall, 1),
            "cpu_ms_per_request": round(1000 * cpu / max(1, len(rows)), 2), "exit": code}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rates", default="50,100,200,400")
    p.add_argument("--seconds", type=float, default=5.0)
    args = p.parse_args()
    print(f"load average before: {os.getloadavg()}", file=sys.stderr)
    results = []
    with tempfile.TemporaryDirectory() as tmp, fake_server(Path(tmp)) as fake:
        url = fake.wait_url(30)
        for i, rate in enumerate(float(r) for r in args.rates.split(",")):
            results.append(one_rate(url, rate, args.seconds, Path(tmp) / str(i)))
            print(json.dumps(results[-1]), flush=True)
    print(f"load average after: {os.getloadavg()}", file=sys.stderr)
    # CPU = fixed start-up cost + marginal cost x requests (least squares over the rates)
    n = [r["requests"] for r in results]
    c = [r["worker_cpu_s"] for r in results]
    if len(results) >= 2 and len(set(n)) > 1:
        mn, mc = sum(n) / len(n), sum(c) / len(c)
        slope = sum((x - mn) * (y - mc) for x, y in zip(n, c)) / sum((x - mn) ** 2 for x in n)
        print(json.dumps({"fixed_cpu_s": round(mc - slope * mn, 2), "marginal_cpu_ms_per_request": round(1000 * slope, 3),
                          "one_core_ceiling_rps": round(1 / slope) if slope > 0 else None}))


if __name__ == "__main__":
    main()
