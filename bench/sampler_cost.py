"""The sampler's cost at 5 Hz and 20 Hz, as a share of one core, against a real `vvbench serve`.

Starts `vvbench serve --preset tiny` (idle, on loopback), then runs the sampling loop `vvbench
run` uses — process tree of the service, system CPU, NVML, and the service's `/v1/stats` — for
`--seconds` at each rate. Reported per rate: CPU time of the sampling thread (`thread_time`,
summed over ticks) and of the whole benchmark process, each as a share of one core over the
wall time; the service's own CPU share over the same period (what answering `/v1/stats` costs
it, compared with a period without sampling); and the achieved tick rate.

    python bench/sampler_cost.py --seconds 20 --rates 0,5,20
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vvbench.harness.targets import EmbeddedTarget  # noqa: E402
from vvbench.monitor.nvml import NvmlSampler  # noqa: E402
from vvbench.monitor.sampleloop import SampleLoop  # noqa: E402
from vvbench.monitor.samplers import ProcessTreeSampler, ServiceStatsSampler, SystemCpuSampler  # noqa: E402
from vvbench.runtime.config import RuntimeConfig  # noqa: E402


def measure(url: str, pid: int, hz: float, seconds: float, api_key: str | None = None) -> dict:
    service = psutil.Process(pid)
    s0 = service.cpu_times()
    p0, w0 = time.process_time(), time.monotonic()
    loop = None
    if hz > 0:
        loop = SampleLoop([ProcessTreeSampler(pid), SystemCpuSampler(), NvmlSampler(pid), ServiceStatsSampler(url, api_key)], hz=hz).start()
    time.sleep(seconds)
    if loop is not None:
        loop.stop()
    wall = time.monotonic() - w0
    s1 = service.cpu_times()
    rows = loop.frame() if loop is not None else None
    return {
        "hz": hz, "wall_s": round(wall, 1), "ticks": 0 if rows is None else len(rows),
        "sampler_thread_core_share": None if rows is None else round(rows["sample_cpu_s"].sum() / wall, 4),
        "bench_process_core_share": round((time.process_time() - p0) / wall, 4),
        "tick_ms_p50": None if rows is None else round(1000 * rows["sample_cpu_s"].median(), 3),
        "service_core_share": round((s1.user + s1.system - s0.user - s0.system) / wall, 4),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--rates", default="0,5,20")
    args = p.parse_args()
    print(f"load average before: {os.getloadavg()}", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        with EmbeddedTarget(RuntimeConfig(preset="tiny", threads=1), Path(tmp) / "log") as service:
            time.sleep(2)  # let start-up work settle
            for hz in (float(r) for r in args.rates.split(",")):
                print(json.dumps(measure(service.url, service.pid, hz, args.seconds, service.api_key)), flush=True)
    print(f"load average after: {os.getloadavg()}", file=sys.stderr)


if __name__ == "__main__":
    main()
