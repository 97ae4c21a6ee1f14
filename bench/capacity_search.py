"""`vvbench capacity --search` against a sweep of every load: runs and minutes for the same answer.

    python bench/capacity_search.py --rounds 2 --max-users 8 -- --max-batch 2

Runs `vvbench capacity SCENARIO` (default `capacity-smoke` on the embedded `tiny` runtime) as a
user does, interleaved: a sweep over every integer load 1..max-users (the resolution a search
reaches), then `--search --max max-users` (bracket from 1 by doubling, then bisect), then the
sweep again, then the search, ... Each capacity run starts its own embedded service once and
keeps it up over its points. Prints per run: the answer, the points run, the wall minutes of
the whole command (service start included) and the capacity result's own elapsed minutes, then
the load average of the machine before and after, as Markdown. Flags after `--` go to every
`vvbench capacity` command (target and knob flags).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def capacity(scenario: str, mode_args: list[str], extra: list[str], out: Path) -> tuple[dict, float]:
    """(capacity.json, wall seconds) of one `vvbench capacity` process."""
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "vvbench.cli", "capacity", scenario, *mode_args, *extra, "--out", str(out), "--json"],
                       capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode not in (0, 1):
        sys.exit(f"vvbench capacity failed ({r.returncode}): {r.stderr[-2000:]}")
    return json.loads(r.stdout), wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="capacity-smoke")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--max-users", type=int, default=8)
    ap.add_argument("extra", nargs="*", help="flags for every `vvbench capacity` (after --)")
    a = ap.parse_args()
    modes = {"sweep": ["--sweep", "users=" + ",".join(str(u) for u in range(1, a.max_users + 1))],
             "search": ["--search", "--key", "users", "--max", str(a.max_users)]}
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print()
    print("| round | mode | capacity (users) | points run (loads) | wall min | capacity elapsed min |")
    print("|---|---|---|---|---|---|")
    answers: dict[str, list] = {"sweep": [], "search": []}
    with tempfile.TemporaryDirectory() as tmp:
        for rnd in range(a.rounds):
            for mode, args in modes.items():
                res, wall = capacity(a.scenario, args, a.extra, Path(tmp) / f"{mode}-{rnd}")
                answers[mode].append(res["capacity"])
                loads = ",".join(f"{p['load']:g}" for p in res["points"])
                print(f"| {rnd} | {mode} | {res['capacity']} | {res['runs']} ({loads}) | {wall / 60:.2f} | {res['elapsed_s'] / 60:.2f} |",
                      flush=True)
    print()
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    agree = [s == t for s, t in zip(answers["sweep"], answers["search"])]
    print(f"same answer in a round: {sum(agree)} of {len(agree)} rounds (sweep {answers['sweep']}, search {answers['search']})")


if __name__ == "__main__":
    main()
