"""What a `vvbench run` costs beyond its measurement window, phase by phase, against the fake server.

    python bench/run_overhead.py --repeats 5 [--label NAME] [--json-out FILE]

Starts the scripted fake TTS server (`vvbench.load.fakeserver`: exact timing, no model, so
the figures are the harness's own), then runs `vvbench run` in a fresh process `--repeats`
times on a closed loop of 2 users with a `--window`-second window and no warm-up. Each run is
split at the stamps it records itself (events.jsonl, run.json's window, the request rows):

- `start`: process start -> `load_started` (imports, the target, the sample loop, the plan);
- `spawn`: `load_started` -> the window's start (the load process's imports and its users);
- `window`: the window itself (the scenario's, not overhead);
- `drain`: the window's end -> the last request's end (requests in flight finish);
- `stop`: the last request's end -> `done` (the load process notices, stops and exits);
- `record`: `done` -> the process's exit (the record, the report, the history index).

Prints one JSON line per run, then the medians as a Markdown table. For an A/B comparison of
two revisions, run it alternately at each (A B A B ...) with `--label`, `--repeats 1` and one
`--json-out` file, then `--summarise FILE`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

PHASES = ("start", "spawn", "window", "drain", "stop", "record", "total", "overhead")


def _scenario(path: Path, window_s: float) -> Path:
    data = {
        "name": "overhead", "seed": 1,
        "classes": [{"name": "short", "text": {"corpus": "short"}, "length": {"min_chars": 30, "max_chars": 60}, "timeout": "20s"}],
        "arrival": {"closed": {"users": 2}}, "warmup": "0s", "duration": f"{window_s:g}s", "drain": "10s", "prebuffer_ms": 200,
    }
    path.write_text(yaml.safe_dump(data))
    return path


def _fake() -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "vvbench.load.fakeserver", "--port", "0"], stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if "http://" in line:
            return proc, line[line.index("http://"):].split()[0]
    proc.kill()
    raise SystemExit("the fake server announced no URL")


def one_run(url: str, scenario: Path, out: Path) -> dict:
    t0 = time.time()
    r = subprocess.run([sys.executable, "-m", "vvbench.cli", "run", str(scenario), "--target", "http", "--url", url, "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    t_exit = time.time()
    if r.returncode != 0:
        raise SystemExit(f"vvbench run failed ({r.returncode}): {r.stderr[-500:]}")
    run_dir = next(p for p in out.iterdir() if p.is_dir() and not p.name.startswith("."))
    events = {e["event"]: e["t"] for e in map(json.loads, (run_dir / "events.jsonl").read_text().splitlines())}
    window = json.loads((run_dir / "run.json").read_text())["window"]
    rows = pd.read_parquet(run_dir / "requests.parquet", columns=["t_start", "e2e_s"])
    last_end = float((rows["t_start"] + rows["e2e_s"].fillna(0)).max())
    phases = {
        "start": events["load_started"] - t0,
        "spawn": window["start_at"] - events["load_started"],
        "window": window["window_end"] - window["start_at"],
        "drain": last_end - window["window_end"],
        "stop": events["done"] - last_end,
        "record": t_exit - events["done"],
        "total": t_exit - t0,
    }
    phases["overhead"] = phases["total"] - phases["window"] - phases["drain"]
    return {k: round(v, 3) for k, v in phases.items()}


def table(rows: list[dict]) -> str:
    labels = list(dict.fromkeys(r.get("label", "") for r in rows))
    head = "| phase | " + " | ".join(f"{lab or 'median'} (s, n={sum(1 for r in rows if r.get('label', '') == lab)})" for lab in labels) + " |"
    out = [head, "|---" * (len(labels) + 1) + "|"]
    for phase in PHASES:
        cells = [f"{statistics.median(r[phase] for r in rows if r.get('label', '') == lab):.3f}" for lab in labels]
        out.append(f"| {phase} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--window", type=float, default=2.0, help="the scenario's window in seconds")
    p.add_argument("--label", default="", help="a name for these runs (an A/B comparison's revision)")
    p.add_argument("--json-out", type=Path, default=None, help="append each run's line to this file")
    p.add_argument("--summarise", type=Path, default=None, help="print the table of a --json-out file and exit")
    args = p.parse_args()
    if args.summarise:
        print(table([json.loads(line) for line in args.summarise.read_text().splitlines() if line.strip()]))
        return
    rows = []
    fake, url = _fake()
    try:
        with tempfile.TemporaryDirectory(prefix="vvbench-overhead-") as tmp:
            scenario = _scenario(Path(tmp) / "s.yaml", args.window)
            for i in range(args.repeats):
                row = {"label": args.label, **one_run(url, scenario, Path(tmp) / f"runs{i}")}
                rows.append(row)
                print(json.dumps(row), flush=True)
                if args.json_out:
                    with args.json_out.open("a") as f:
                        f.write(json.dumps(row) + "\n")
    finally:
        fake.terminate()
        fake.wait(10)
    print(table(rows))


if __name__ == "__main__":
    main()
