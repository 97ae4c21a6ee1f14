"""Tuned against default on `small` with a short-burst-shaped open-loop scenario, side by side.

    python bench/tune_vs_default.py --out bench-out/tvd [--tune-dir DIR] [--trials 10]
        [--rates 0.25,0.5,0.75,1,1.5,2] [--duration 40] [--repeats 3]

1. **Tune** (skipped when `--tune-dir` already holds `recommended.yaml`): `vvbench tune --preset
   small --scenario bench/scenarios/short-burst-tune.yaml --quality-floor 30 --finalists 2
   --repeats 3` (short-burst's requests at 0.5 req/s, 25 s per trial, its TTFA and success SLOs),
   the tuner alone deciding.
2. Both configs are served at once as two warm embedded services (`small` defaults, and the
   tune's `recommended.yaml`), so that the runs can alternate.
3. **Sweep** (b): `short-burst` at each rate, ascending, the default's run then the tuned one's
   at the same rate (interleaved). Each run is judged by its own SLO verdicts, once under the
   TTFA and success SLOs alone and once under all three (continuity included). A config's
   capacity under a set is the highest rate at which it and every lower rate met the set.
4. **At the default's capacity** (a) under TTFA and success: `--repeats` more runs of each config,
   interleaved (D T D T ...), and the TTFA p95 ratio default/tuned with a bootstrap interval over
   the pooled requests (`vvbench.reports.compare.compare_pooled`, the same statistics as
   `vvbench compare`).
5. The tuned config's quality: its trial's mel SNR against the reference audio (the tune's
   `trials.json`) and the audio checks.

Writes OUT/result.json and OUT/result.md (the tables docs/benchmarks.md quotes) and keeps every
run directory under OUT/runs. Bounded: at most len(rates) x 2 + 2 x repeats runs of `--duration`
seconds each (plus warm-up and drain), and the tune's own `--trials`.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vvbench.artifacts.reader import load_run  # noqa: E402
from vvbench.artifacts.scenarios import resolve_scenario  # noqa: E402
from vvbench.harness.capacity import scenario_at  # noqa: E402
from vvbench.harness.run import run  # noqa: E402
from vvbench.harness.targets import EmbeddedTarget  # noqa: E402
from vvbench.reports.compare import compare_pooled  # noqa: E402
from vvbench.runtime.config import RuntimeConfig, load_runtime_config  # noqa: E402

TTFA_SUCCESS = ("ttfa_p95_s", "success_min")


def tune(out: Path, trials: int) -> Path:
    tune_dir = out / "tune"
    if (tune_dir / "recommended.yaml").exists():
        return tune_dir
    cmd = [sys.executable, "-m", "vvbench.cli", "tune", "--preset", "small", "--scenario",
           str(ROOT / "bench/scenarios/short-burst-tune.yaml"), "--trials", str(trials), "--seed", "0", "--quality-floor", "30", "--finalists", "2", "--repeats", "3",
           "--out", str(tune_dir), "--json"]
    print("tune:", " ".join(cmd[2:]), flush=True)
    t0 = time.monotonic()
    done = subprocess.run(cmd, cwd=ROOT, text=True, capture_output=True)
    (out / "tune.log").write_text(done.stdout + done.stderr)
    print(f"tune: exit {done.returncode} in {time.monotonic() - t0:.0f} s", flush=True)
    if not (tune_dir / "recommended.yaml").exists():
        raise SystemExit(f"tune wrote no recommended.yaml (exit {done.returncode}); see {out / 'tune.log'}")
    return tune_dir


def met(record, slos) -> bool:
    verdicts = {v.slo: v.passed for v in record.slos}
    return record.status.completed and all(verdicts.get(s, False) for s in slos)


def capacity(points: list[dict], slos) -> float | None:
    best = None
    for p in sorted(points, key=lambda p: p["rate"]):
        if not met(p["record"], slos):
            break
        best = p["rate"]
    return best


def one_run(scenario, rate: float, target, out: Path, duration: float, label: str) -> dict:
    t0 = time.monotonic()
    result = run(scenario_at(scenario, "rate", rate), target=target, out=out / "runs", duration_s=duration)
    rec = result.record
    s = rec.summary
    print(f"{label:8s} rate {rate:5.2f}: {rec.status.value:10s} ttfa_p95 {s.get('ttfa_p95_s')!s:>8.8} "
          f"success {s.get('success')!s:>6.6} c100 {s.get('c100')!s:>6.6} ({time.monotonic() - t0:.0f} s)", flush=True)
    return {"rate": rate, "label": label, "run_dir": str(result.run_dir), "record": rec,
            "summary": {k: s.get(k) for k in ("ttfa_p95_s", "ttfa_p50_s", "success", "c100", "goodput_rps", "audio_s_per_s")},
            "verdicts": {v.slo: v.passed for v in rec.slos}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--rates", default="0.25,0.5,0.75,1,1.5,2")
    ap.add_argument("--duration", type=float, default=40.0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    rates = sorted(float(r) for r in args.rates.split(","))

    tune_dir = tune(out, args.trials)
    configs = {"default": RuntimeConfig(preset="small"), "tuned": load_runtime_config(tune_dir / "recommended.yaml")}
    trials = json.loads((tune_dir / "trials.json").read_text())
    summary = json.loads((tune_dir / "summary.json").read_text())
    scenario = resolve_scenario("short-burst")
    targets = {name: EmbeddedTarget(cfg, out / "logs" / name) for name, cfg in configs.items()}
    points: dict[str, list[dict]] = {"default": [], "tuned": []}
    repeats: dict[str, list[dict]] = {"default": [], "tuned": []}
    t0 = time.monotonic()
    try:
        for target in targets.values():
            target.start()
        stopped = {name: 0 for name in targets}
        for rate in rates:  # (b) the sweep, interleaved per rate
            for name in ("default", "tuned"):
                if stopped[name] >= 2:  # two rates in a row failed under TTFA and success: higher ones would too
                    continue
                p = one_run(scenario, rate, targets[name], out, args.duration, name)
                points[name].append(p)
                stopped[name] = stopped[name] + 1 if not met(p["record"], TTFA_SUCCESS) else 0
        rate_a = capacity(points["default"], TTFA_SUCCESS) or rates[0]
        for p in (q for name in points for q in points[name] if q["rate"] == rate_a):
            repeats[p["label"]].append(p)
        for _ in range(args.repeats - 1):  # (a) the repeats at the default's capacity, interleaved
            for name in ("default", "tuned"):
                repeats[name].append(one_run(scenario, rate_a, targets[name], out, args.duration, name))
    finally:
        for target in targets.values():
            target.stop()

    runs = {name: [load_run(p["run_dir"]) for p in repeats[name]] for name in repeats}
    change = compare_pooled(runs["default"], runs["tuned"], ["ttfa_p95_s"])[0]
    ratio = {"default_over_tuned": 1 / change.ratio if change.ratio else None,
             "interval": [1 / change.ci_high, 1 / change.ci_low] if change.ci_low and change.ci_high else None,
             "verdict": change.verdict, "p_adjusted": change.p_adjusted}
    chosen = next((t for t in trials if t["number"] == summary.get("recommended_trial")), None)
    cap = {name: {"ttfa_success": capacity(points[name], TTFA_SUCCESS), "all": capacity(points[name], tuple(scenario.slos))}
           for name in points}
    cap_ratio = (cap["tuned"]["ttfa_success"] / cap["default"]["ttfa_success"]
                 if cap["tuned"]["ttfa_success"] and cap["default"]["ttfa_success"] else None)
    result = {
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}",
        "wall_s": round(time.monotonic() - t0, 1), "duration_s": args.duration, "rates": rates,
        "tuned_config": configs["tuned"].model_dump(mode="json", exclude_defaults=True),
        "tuned_trial": {k: chosen.get(k) for k in ("number", "params", "values", "quality_db", "waveform_db", "feasible")} if chosen else None,
        "tune_summary": {k: summary.get(k) for k in ("trials", "complete", "feasible", "pruned", "failed", "why", "recommended_trial")},
        "sweep": {name: [{k: p[k] for k in ("rate", "run_dir", "summary", "verdicts")} for p in points[name]] for name in points},
        "capacity": cap, "capacity_ratio_ttfa_success": cap_ratio,
        "at_default_capacity": {"rate": rate_a, "ttfa_p95_ratio": ratio,
                                "runs": {name: [p["run_dir"] for p in repeats[name]] for name in repeats}},
    }
    (out / "result.json").write_text(json.dumps(result, indent=2, default=str))
    lines = ["| config | rate (req/s) | TTFA p95 (s) | success | c100 | goodput (req/s) | TTFA+success | all SLOs |", "|---|---|---|---|---|---|---|---|"]
    for name in points:
        for p in points[name]:
            s, v = p["summary"], p["verdicts"]
            lines.append(f"| {name} | {p['rate']:g} | {s['ttfa_p95_s']:.3g} | {s['success']:.2f} | {s['c100']:.2f} | "
                         f"{s['goodput_rps']:.3g} | {'met' if all(v.get(x) for x in TTFA_SUCCESS) else 'missed'} | "
                         f"{'met' if all(v.values()) else 'missed'} |" if s.get("ttfa_p95_s") is not None else
                         f"| {name} | {p['rate']:g} | - | - | - | - | missed | missed |")
    (out / "result.md").write_text("\n".join(lines) + "\n\n" + json.dumps({"capacity": cap, "capacity_ratio": cap_ratio,
                                                                        "at_default_capacity": result["at_default_capacity"]["ttfa_p95_ratio"]}, indent=2) + "\n")
    print((out / "result.md").read_text())


if __name__ == "__main__":
    main()
