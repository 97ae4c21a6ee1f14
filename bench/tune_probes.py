"""The tuner's quality probes: sent together to a batch-invariant config against one at a time.

    python bench/tune_probes.py [--preset tiny] [--scenario smoke] [--repeats 6] [--out OUT]

Starts the embedded service once (`--preset`, the runtime's defaults: batch-invariant), takes
the tuning scenario's first two requests as the tuner does (`scenario_probes`) and synthesises
them with `vvbench.tuner.quality.synthesise`, interleaved: one at a time, together, one at a
time, together, ... (`--repeats` of each). Checks that both ways give the same samples, and
prints the seconds per probe set (median), the ratio together / one at a time and its 95%
bootstrap interval over the pairs (scipy). Bounded: 2 x `--repeats` probe sets on one service.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import stats

from vvbench.artifacts.scenarios import resolve_scenario
from vvbench.harness.targets import EmbeddedSpec
from vvbench.runtime.config import RuntimeConfig
from vvbench.tuner.quality import scenario_probes, synthesise


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="tiny")
    p.add_argument("--scenario", default="smoke")
    p.add_argument("--repeats", type=int, default=6)
    p.add_argument("--out", type=Path, default=None, help="write result.json here")
    args = p.parse_args()
    probes = scenario_probes(resolve_scenario(args.scenario), 2)
    with tempfile.TemporaryDirectory() as tmp:
        target = EmbeddedSpec().build(RuntimeConfig(preset=args.preset), Path(tmp))
        url = target.start()
        try:
            reference = synthesise(url, probes, target.api_key)  # also warms the service for these texts
            seconds: dict[str, list[float]] = {"one at a time": [], "together": []}
            for _ in range(args.repeats):
                for mode, together in (("one at a time", False), ("together", True)):
                    t0 = time.perf_counter()
                    audio = synthesise(url, probes, target.api_key, together=together)
                    seconds[mode].append(time.perf_counter() - t0)
                    assert all(np.array_equal(a, b) for a, b in zip(reference, audio, strict=True)), f"{mode}: other samples"
        finally:
            target.stop()
    ratios = np.array(seconds["together"]) / np.array(seconds["one at a time"])
    ci = stats.bootstrap((ratios,), np.median, confidence_level=0.95, random_state=0).confidence_interval
    audio_s = [len(a) / 24_000 for a in reference]
    result = {"preset": args.preset, "scenario": args.scenario, "probe_audio_s": audio_s, "seconds": seconds,
              "ratio_median": float(np.median(ratios)), "ratio_ci": [float(ci.low), float(ci.high)], "machine": platform.platform(),
              "cpus": __import__("os").cpu_count()}
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "result.json").write_text(json.dumps(result, indent=2))
    print(f"{args.preset}, {args.scenario}'s first two requests ({audio_s[0]:.1f} s and {audio_s[1]:.1f} s of audio), "
          f"{args.repeats} pairs, interleaved; the same samples both ways")
    print("| probes sent | median s per probe set |\n|---|---|")
    for mode, values in seconds.items():
        print(f"| {mode} | {statistics.median(values):.2f} |")
    print(f"together / one at a time: x{result['ratio_median']:.2f} [{ci.low:.2f}, {ci.high:.2f}] (median of the pairs, 95% bootstrap)")


if __name__ == "__main__":
    main()
