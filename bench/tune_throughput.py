"""Tuning throughput: trials per hour with hot-knob batching against a restart per trial, same space.

    python bench/tune_throughput.py --out bench-out/tput [--preset tiny] [--scenario smoke] [--trials 6] [--repeats 2]

Runs `vvbench tune` (the default space, `--finalists 0`, `--seed 0`) `--repeats` times in each
mode, interleaved (batched, per-trial restart, batched, ...):
- **batched**: the tuner as shipped: `--hot-trials 3` trials per server config, hot knobs
  applied with `Target.reconfigure` on the warm service, a restart only when a restart-only knob
  changed;
- **restart**: the same, plus `--restart-each-trial`: a freshly started service for every trial,
  as tuners that restart the server per trial do.

Per study it reads the trials back from the study's storage: the trial loop's time (the first
trial's start to the last trial's end), trials per hour over it, how each trial's config was
applied (start / restart / hot / unchanged) and the mean seconds of applying it. The command's
whole wall time (imports, the reference audio, writing the outputs) is printed beside it; both
modes pay that the same. Writes OUT/result.json and prints the Markdown table docs/benchmarks.md
quotes. Bounded: 2 x `--repeats` studies of `--trials` trials each.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna

MODES = {"batched": [], "restart": ["--restart-each-trial"]}


def one_study(out: Path, mode: str, preset: str, scenario: str, trials: int) -> dict:
    cmd = [sys.executable, "-m", "vvbench.cli", "tune", "--preset", preset, "--scenario", scenario, "--trials", str(trials),
           "--seed", "0", "--finalists", "0", "--out", str(out), "--json", *MODES[mode]]
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        raise SystemExit(f"{mode}: vvbench tune exited {p.returncode}: {p.stderr.strip()[-800:]}")
    study = optuna.load_study(study_name="vvbench-tune", storage=f"sqlite:///{out / 'study.db'}")
    done = [t for t in study.get_trials(deepcopy=False) if t.datetime_complete is not None]
    loop_s = (max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)).total_seconds()
    hows = Counter(t.user_attrs.get("how", "none") for t in done)
    apply_s = [t.user_attrs["apply_s"] for t in done if "apply_s" in t.user_attrs]
    return {"mode": mode, "trials": len(done), "loop_s": round(loop_s, 1), "wall_s": round(wall, 1),
            "trials_per_hour": round(3600 * len(done) / loop_s, 1), "how": dict(hows),
            "mean_apply_s": round(statistics.fmean(apply_s), 2) if apply_s else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--scenario", default="smoke")
    ap.add_argument("--trials", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    out = Path(args.out)
    rows = []
    for i in range(args.repeats):
        for mode in MODES:
            row = one_study(out / f"{mode}-{i}", mode, args.preset, args.scenario, args.trials)
            rows.append(row)
            print(json.dumps(row), flush=True)
    per = {m: [r for r in rows if r["mode"] == m] for m in MODES}
    tph = {m: statistics.median(r["trials_per_hour"] for r in rs) for m, rs in per.items()}
    result = {"machine": f"{platform.node()} {platform.machine()}", "args": vars(args), "rows": rows, "median_trials_per_hour": tph,
              "ratio": round(tph["batched"] / tph["restart"], 2)}
    (out / "result.json").write_text(json.dumps(result, indent=2))
    print("| study | mode | trials | trial loop (s) | trials/hour | applied as | mean apply (s) | command wall (s) |")
    print("|---|---|---|---|---|---|---|---|")
    for n, r in enumerate(rows):
        how = ", ".join(f"{k} {v}" for k, v in sorted(r["how"].items()))
        print(f"| {n + 1} | {r['mode']} | {r['trials']} | {r['loop_s']} | {r['trials_per_hour']} | {how} | {r['mean_apply_s']} | {r['wall_s']} |")
    print(f"\nmedian trials/hour: batched {tph['batched']}, restart per trial {tph['restart']}; ratio {result['ratio']}x")


if __name__ == "__main__":
    main()
