"""The regression gate's false alarms and detections on real runs of the embedded `tiny` service.

    python bench/gate_false_alarms.py collect --durations 10s,20s --pairs 10 --out gate-runs
    python bench/gate_false_alarms.py collect --durations 10s --pairs 10 --concurrent --out gate-runs
    python bench/gate_false_alarms.py collect --durations 20s --pairs 10 --arrival poisson:1.5 --out gate-runs
    python bench/gate_false_alarms.py analyze gate-runs            # a Markdown table per run length
    python bench/gate_false_alarms.py analyze gate-runs --threshold 10%    # the same runs, judged at compare --threshold 10%

`collect` runs, for each measured duration, `--pairs` A/A pairs (the same config twice) and
`--pairs` A/B pairs (the default config, then `faults.slow_factor` `--factor`), interleaved in
time (A A, A B, A A, A B, ...), every run back to back as a nightly job meets its baseline: one
`vvbench run` process each, with its own freshly started embedded service on one thread
(`--concurrent`: the two runs of a pair at the same time, so both meet the same contention). Each run
directory is listed in `manifest.jsonl` as it finishes, so an interrupted collection keeps what it
has. `analyze` compares every pair with `vvbench.reports.compare.compare_runs` (the gate's library
function, at compare's `--threshold`, default 5%) and counts false alarms (an A/A pair with any
metric regressed) and detections (an A/B pair with a TTFA or E2E metric regressed); a pair that
`vvbench compare` refuses because a run was measured on a host busy with other work
(`contended`) is counted apart, as neither. Collection and analysis are apart so
that a change to compare's statistics is re-measured on the same runs.

The scenario is the gate scenario of tests/e2e/test_compare_runs.py: short texts of 30-40
characters, 3 s warm-up, by default two closed-loop users (`--arrival closed:2`); `--arrival
closed:N` or `poisson:RATE` (open loop, the same seeded arrival times and texts in every run)
changes how requests arrive.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import yaml

SCENARIO = {
    "name": "gate", "seed": 0, "description": "two closed-loop users, short texts of similar length",
    "classes": [{"name": "short", "text": {"corpus": "short"}, "length": {"min_chars": 30, "max_chars": 40}, "timeout": "30s"}],
    "arrival": {"closed": {"users": 2}}, "warmup": "3s", "duration": "20s", "drain": "20s", "prebuffer_ms": 200,
}


def start_run(scenario: Path, out: Path, duration: str, factor: float | None) -> subprocess.Popen:
    """Start one `vvbench run` writing into its own folder `out`."""
    flags = ["--allow-faults", "--slow-factor", str(factor)] if factor else []
    return subprocess.Popen([sys.executable, "-m", "vvbench.cli", "run", str(scenario), "--threads", "1", "--out", str(out),
                             "--duration", duration, *flags], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish_run(p: subprocess.Popen, out: Path, t0: float) -> tuple[Path | None, float, int]:
    """Wait for a started run; (its run directory or None, wall seconds, exit code)."""
    _, err = p.communicate(timeout=600)
    wall = time.monotonic() - t0
    new = [d for d in out.iterdir() if d.is_dir() and not d.name.startswith(".")] if out.exists() else []
    if p.returncode not in (0, 1) or len(new) != 1:
        print(f"run failed (exit {p.returncode}): {err[-500:]}", file=sys.stderr)
        return None, wall, p.returncode
    return new[0], wall, p.returncode


def run_pair(scenario: Path, folder: Path, duration: str, factor: float | None, concurrent: bool):
    """The base run and the new run (one after the other, or at the same time); [(dir, wall, exit)] * 2."""
    outs = [folder / "base", folder / "new"]
    if concurrent:
        t0 = time.monotonic()
        procs = [start_run(scenario, outs[0], duration, None), start_run(scenario, outs[1], duration, factor)]
        return [finish_run(p, o, t0) for p, o in zip(procs, outs)]
    done = []
    for out, f in zip(outs, (None, factor)):
        t0 = time.monotonic()
        done.append(finish_run(start_run(scenario, out, duration, f), out, t0))
    return done


def arrival(spec: str) -> dict:
    """`closed:N` or `poisson:RATE` as the scenario's arrival block."""
    kind, _, value = spec.partition(":")
    if kind == "closed":
        return {"closed": {"users": int(value or 2)}}
    if kind == "poisson":
        return {"poisson": {"rate": float(value)}}
    raise SystemExit(f"--arrival {spec}: give closed:N or poisson:RATE")


def collect(args) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    scenario = Path(tempfile.mkdtemp(prefix="gate-")) / "gate.yaml"
    scenario.write_text(yaml.safe_dump({**SCENARIO, "arrival": arrival(args.arrival)}))
    manifest = out / "manifest.jsonl"
    for duration in args.durations.split(","):
        for i in range(args.pairs):
            for kind, factor in (("aa", None), ("ab", args.factor)):
                mode = "concurrent" if args.concurrent else "sequential"
                folder = out / mode / args.arrival.replace(":", "-") / duration / f"{kind}-{i}"
                (base, wall_b, rc_b), (new, wall_n, rc_n) = run_pair(scenario, folder, duration, factor,
                                                                     args.concurrent)
                line = {"duration": duration, "mode": mode, "arrival": args.arrival, "pair": i, "kind": kind, "factor": factor or 1.0,
                        "base": str(base) if base else None, "new": str(new) if new else None,
                        "wall_s": [round(wall_b, 1), round(wall_n, 1)], "exit": [rc_b, rc_n], "at": time.time()}
                with open(manifest, "a") as f:
                    f.write(json.dumps(line) + "\n")
                print(json.dumps(line), flush=True)


def analyze(args) -> None:
    from vvbench.artifacts.reader import load_run
    from vvbench.cli.compare import parse_thresholds
    from vvbench.reports.compare import compare_runs, contended

    default, per_metric = parse_thresholds(tuple(args.threshold))

    lines = [json.loads(x) for x in (Path(args.out) / "manifest.jsonl").read_text().splitlines() if x.strip()]
    table: dict[str, dict] = defaultdict(lambda: {"aa": [], "ab": [], "wall": [], "aa_ratio": [], "ab_ratio": [], "refused": 0})
    for line in lines:
        if not (line["base"] and line["new"]):
            continue
        line["duration"] = f"{line['duration']} {line.get('mode', 'sequential')} {line.get('arrival', 'closed:2')}"
        base, new = load_run(line["base"]), load_run(line["new"])
        row = table[line["duration"]]
        busy = [why for r in (base, new) if (why := contended(r))]
        if busy and not args.with_contended:  # vvbench compare refuses these (exit 2): neither a pass nor an alarm
            row["refused"] += 1
            if args.verbose:
                print(line["duration"], line["kind"], line["pair"], "refused:", busy, file=sys.stderr)
            continue
        cmp = compare_runs(base, new, per_metric, default_threshold=default)
        regressed = cmp.regressed
        row["wall"] += line["wall_s"]
        ttfa = next(c for c in cmp.changes if c.metric == "ttfa_p50_s").ratio
        row[f"{line['kind']}_ratio"].append(ttfa)
        if line["kind"] == "aa":
            row["aa"].append(regressed)
        else:
            row["ab"].append([m for m in regressed if m.startswith(("ttfa_", "e2e_"))])
        if args.verbose:
            print(line["duration"], line["kind"], line["pair"], f"TTFA p50 x{ttfa:.3f}", regressed, file=sys.stderr)
    print(f"compare at --threshold {', '.join(args.threshold) or '5%'} (the whole interval past it, Holm over every metric)\n")
    print("| measured duration, pairs, arrival | A/A pairs | false alarms | metrics falsely regressed | A/A TTFA p50 ratios | "
          "A/B pairs (slow_factor) | detected | A/B TTFA p50 ratios | refused: host busy | median run wall s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for duration, row in table.items():
        false = [r for r in row["aa"] if r]
        names = sorted({m for r in false for m in r})
        detected = sum(1 for r in row["ab"] if r)
        walls = sorted(row["wall"])
        median = walls[len(walls) // 2] if walls else float("nan")
        factor = next((x["factor"] for x in lines if x.get("duration") == duration and x["kind"] == "ab"), None)
        print(f"| {duration} | {len(row['aa'])} | {len(false)} | {', '.join(names) or '-'} | {_span(row['aa_ratio'])} | "
              f"{len(row['ab'])} ({factor}) | {detected} | {_span(row['ab_ratio'])} | {row['refused']} | {median:.0f} |")


def _span(ratios: list) -> str:
    """min-max (median) of a list of ratios."""
    r = sorted(x for x in ratios if x is not None)
    return f"{r[0]:.2f}-{r[-1]:.2f} (median {r[len(r) // 2]:.2f})" if r else "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect")
    c.add_argument("--durations", default="10s,20s", help="measured durations to try, shortest first")
    c.add_argument("--pairs", type=int, default=10)
    c.add_argument("--factor", type=float, default=1.2, help="slow_factor of the A/B pairs' second run")
    c.add_argument("--concurrent", action="store_true",
                   help="run the two runs of each pair at the same time (both see the same contention) instead of one after the other")
    c.add_argument("--arrival", default="closed:2", help="closed:N users, or poisson:RATE (open loop)")
    c.add_argument("--out", required=True)
    a = sub.add_parser("analyze")
    a.add_argument("out")
    a.add_argument("-v", "--verbose", action="store_true")
    a.add_argument("--threshold", action="append", default=[], metavar="[METRIC=]PCT",
                   help="compare's --threshold (default 5%%), e.g. 10%% or ttfa_p95=10%%")
    a.add_argument("--with-contended", action="store_true", help="judge pairs compare would refuse (a run on a busy host) too")
    args = ap.parse_args()
    collect(args) if args.cmd == "collect" else analyze(args)


if __name__ == "__main__":
    main()
