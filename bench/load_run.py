"""`load_run` on a large run directory: time and memory to read run.json, the rows and the samples.

    python bench/load_run.py --rows 100000 --pieces 40 --repeat 3

Writes a synthetic run of `--rows` request rows (each with an arrival timeline of `--pieces`
pieces, as a streamed request of ~10 s of audio has) and an hour of 5 Hz samples, through the
same writers a run uses (`RunDir`, the Arrow schemas), then times `load_run` (run.json alone),
`.requests` and `.samples` in a fresh process per repeat, with peak RSS. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from vvbench.artifacts.record import Counts, GitFacts, LoadFacts, RunRecord, RunStatus, Tool, Window
from vvbench.artifacts.rundir import RunDir
from vvbench.artifacts.scenarios import resolve_scenario
from vvbench.artifacts.schemas import REQUESTS
from vvbench.core.audio import SAMPLE_RATE

READER = """
import json, resource, sys, time
t0 = time.perf_counter()
from vvbench.artifacts.reader import load_run
t1 = time.perf_counter()
run = load_run(sys.argv[1])
t2 = time.perf_counter()
rows = run.requests
t3 = time.perf_counter()
samples = run.samples
t4 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "record_s": t2 - t1, "requests_s": t3 - t2, "samples_s": t4 - t3,
                  "rows": len(rows), "samples": len(samples),
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def synthetic_run(root: Path, rows: int, pieces: int) -> Path:
    rng = np.random.default_rng(0)
    t_start = 1.7e9 + np.sort(rng.uniform(0, 3600, rows))
    ttfa = rng.uniform(0.2, 2.0, rows)
    gaps = rng.uniform(0.05, 0.4, (rows, pieces)).cumsum(axis=1)
    times = ttfa[:, None] + gaps
    totals = (np.arange(1, pieces + 1) * 6000)[None, :].repeat(rows, axis=0)
    offsets = np.arange(0, rows * pieces + 1, pieces, dtype=np.int32)
    cols = {f.name: pa.nulls(rows, f.type) for f in REQUESTS}
    cols.update({
        "request_id": pa.array([f"w0-{i}" for i in range(rows)]), "cls": pa.array(["short"] * rows), "worker": pa.array(["w0"] * rows),
        "t_start": pa.array(t_start), "ttfb_s": pa.array(ttfa - 0.01), "ttfa_s": pa.array(ttfa), "e2e_s": pa.array(times[:, -1]),
        "audio_s": pa.array(totals[:, -1] / SAMPLE_RATE), "rtf": pa.array(times[:, -1] / (totals[:, -1] / SAMPLE_RATE)),
        "text_chars": pa.array(rng.integers(20, 1200, rows)), "max_stall_s": pa.array(np.zeros(rows)),
        "status": pa.array(["ok"] * rows), "warmup": pa.array(np.zeros(rows, bool)),
        "sample_rate": pa.array(np.full(rows, SAMPLE_RATE)), "underruns": pa.array(np.zeros(rows, np.int64)),
        "arrival_t_s": pa.ListArray.from_arrays(pa.array(offsets), pa.array(times.ravel())),
        "arrival_samples": pa.ListArray.from_arrays(pa.array(offsets), pa.array(totals.ravel())),
    })
    rd = RunDir(root, "bench")
    rd.write_requests(pa.Table.from_pydict(cols, schema=REQUESTS))
    ticks = 3600 * 5
    rd.write_samples(pa.table({"t": 1.7e9 + np.arange(ticks) / 5.0, "rss_bytes": rng.uniform(1e9, 2e9, ticks),
                               "sys_cpu_idle": rng.uniform(0, 1, ticks), "sample_cpu_s": np.full(ticks, 1e-4)}))
    rd.write_record(RunRecord(
        tool=Tool(version="bench"), git=GitFacts(), run_id=rd.name, status=RunStatus.OK, created_at=1.7e9, finished_at=1.7e9 + 3600,
        host={}, target={"kind": "http"}, scenario=resolve_scenario("smoke"), load=LoadFacts(sample_hz=5.0), window=Window(),
        metrics=[], summary={}, slos=[], passed=True,
        summary_counts=Counts(rows=rows, warmup_rows=0, failed_rows=0, rows_match_locust=True)))
    return rd.finalize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--pieces", type=int, default=40, help="arrival pieces per request")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        path = synthetic_run(Path(tmp), a.rows, a.pieces)
        write_s = time.perf_counter() - t0
        size = sum(f.stat().st_size for f in path.iterdir() if f.is_file())
        results = []
        for _ in range(a.repeat):
            out = subprocess.run([sys.executable, "-c", READER, str(path)], capture_output=True, text=True, check=True)
            results.append(json.loads(out.stdout))
    med = {k: float(np.median([r[k] for r in results])) for k in results[0]}
    print(f"{a.rows:,} rows x {a.pieces} arrival pieces, {med['samples']:,.0f} samples: run directory {size / 2**20:.1f} MiB, "
          f"written in {write_s:.2f} s; median of {a.repeat} fresh processes:\n")
    print("| step | seconds |")
    print("|---|---|")
    for key, label in (("import_s", "import vvbench.artifacts.reader"), ("record_s", "load_run (run.json, validated)"),
                       ("requests_s", "requests.parquet -> DataFrame (schema checked)"), ("samples_s", "samples.parquet -> DataFrame")):
        print(f"| {label} | {med[key]:.3f} |")
    print(f"\npeak RSS of the reading process: {med['peak_rss_mib']:.0f} MiB")


if __name__ == "__main__":
    main()
