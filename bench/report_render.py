"""`vvbench report` on large runs: wall time and output size of the HTML page, the Markdown and the JSON.

    python bench/report_render.py --rows 1000,10000,100000 --repeat 3

For each size, writes a synthetic run of that many request rows of the real schema (each with a
40-piece arrival timeline, plus an hour of 5 Hz samples: `bench/load_run.py`'s writer, through
the run's own `RunDir` and Arrow schemas), then runs `vvbench report DIR --format F --out FILE`
in a fresh process per repeat — imports, reading, replaying continuity at the default eight
prebuffers, charts and writing all included — and prints the median wall and CPU time (user +
system: what the process itself used, whatever else shares the machine) and the size.
It also checks that two renders of the same directory are byte-identical. Prints Markdown.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from load_run import synthetic_run


def render_s(run_dir: Path, fmt: str, out: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one `vvbench report` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "vvbench.cli", "report", str(run_dir), "--format", fmt, "--out", str(out)],
                   check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="1000,10000,100000", help="comma-separated row counts")
    ap.add_argument("--pieces", type=int, default=40, help="arrival pieces per request")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    print("| rows | format | wall s (median) | CPU s (median) | output |")
    print("|---|---|---|---|---|")
    for rows in (int(r) for r in a.rows.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            run_dir = synthetic_run(Path(tmp), rows, a.pieces)
            for fmt in ("html", "md", "json"):
                outs = [Path(tmp) / f"r{i}.{fmt}" for i in range(a.repeat)]
                times = [render_s(run_dir, fmt, out) for out in outs]
                same = len({out.read_bytes() for out in outs}) == 1
                size = outs[0].stat().st_size
                print(f"| {rows:,} | {fmt} | {np.median([w for w, _ in times]):.2f} | {np.median([c for _, c in times]):.2f} | "
                      f"{size / 2**20:.2f} MiB{'' if same else ' (renders differ!)'} |", flush=True)


if __name__ == "__main__":
    main()
