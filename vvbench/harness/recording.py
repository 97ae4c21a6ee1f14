"""Writing a finished (or failed) run: rows, samples, the summary, the SLO verdicts, `run.json`.

`build_record` gathers what the run left (the load processes' parquet parts, the sampling loop's
rows, Locust's CSV), writes `requests.parquet` and `samples.parquet` through their schemas,
computes the summary over the metric table, judges the SLOs and the load generator's own timing
(`vvbench.reports.trust`: its loop stalls, from `loop.parquet`), and writes the `RunRecord`
(`run.json`) and its renderings (`summary.md`, `report.html`), read back through `load_run` so
they are byte for byte what `vvbench report` renders from the same directory. A run that ended early keeps its
status (target or load failure, abort); one that ran to its end is `ok` or `slo_failed`.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

import pyarrow as pa

from vvbench import __version__
from vvbench.artifacts.metrics import metric_table
from vvbench.artifacts.reader import load_run
from vvbench.artifacts.record import Counts, GitFacts, LoadFacts, RunRecord, RunStatus, Tool, Window
from vvbench.artifacts.rundir import RunDir
from vvbench.artifacts.scenarios import Scenario
from vvbench.artifacts.schemas import LOOP
from vvbench.harness.facts import git_facts, host_facts
from vvbench.load.records import concat_parts
from vvbench.reports.document import build_report, report_markdown
from vvbench.reports.page import render_page
from vvbench.reports.slo import judge, request_thresholds
from vvbench.reports.summary import summarize
from vvbench.reports.trust import judge_trust


def locust_counts(folder: Path) -> dict[str, int]:
    """Locust's own request count per request type (SPEECH, JOB, TTFA), summed over names."""
    out: dict[str, int] = {}
    try:
        with open(folder / "locust_stats.csv", newline="") as f:
            for row in csv.DictReader(f):
                if row["Type"]:
                    out[row["Type"]] = out.get(row["Type"], 0) + int(row["Request Count"])
    except (OSError, KeyError, ValueError):
        return {}
    return out


def build_record(rd: RunDir, opts, scenario: Scenario, target, runtime_config: dict | None, loop, load,
                 status: RunStatus | None, error: str | None, started_at: float) -> RunRecord:
    """Write the run's files and return its record (see the module docstring); `status` None: it completed."""
    table = concat_parts(rd.work / "rows")
    rd.write_requests(table)
    loop_rows = concat_parts(rd.work / "loop", LOOP)
    rd.write_loop(loop_rows)
    rows = table.to_pandas()
    sample_rows = list(loop.rows) if loop is not None else []
    rd.write_samples(pa.Table.from_pylist(sample_rows) if sample_rows else pa.table({}))
    samples = loop.frame() if loop is not None else None
    rd.adopt(rd.work / "locust", "locust")
    prog = (load.progress() if load is not None else None) or {}
    summary = summarize(rows, samples, window_s=scenario.duration or 0.0, request_slos=request_thresholds(scenario.slos))
    verdicts = judge(scenario.slos, summary)
    met = all(v.passed for v in verdicts)
    if status is None:
        status = RunStatus.OK if met else RunStatus.SLO_FAILED
    locust = locust_counts(rd.path / "locust")
    start = prog.get("start_at")
    record = RunRecord(
        tool=Tool(version=__version__), git=GitFacts(**git_facts()), run_id=rd.name, status=status, error=error,
        created_at=started_at, finished_at=time.time(), host=host_facts(), target=target.describe(),
        runtime_config=runtime_config, scenario=scenario,
        load=LoadFacts(mode=load.mode if load else None, workers=opts.workers, locust_requests=locust, sample_hz=opts.sample_hz),
        window=Window(start_at=start, warmup_end=start + scenario.warmup if start else None, window_end=prog.get("window_end")),
        metrics=metric_table(), summary=summary, slos=verdicts,
        passed=status is RunStatus.OK,
        summary_counts=Counts(rows=len(rows), warmup_rows=int(rows["warmup"].sum()) if len(rows) else 0,
                              failed_rows=int((rows["status"] != "ok").sum()) if len(rows) else 0,
                              rows_match_locust=len(rows) == locust.get("SPEECH", 0) + locust.get("JOB", 0)),
        notes=loop.notes if loop is not None else [],
        trust=judge_trust(rows, loop_rows.to_pandas(), opts.stall_threshold_ms / 1000),
    )
    rd.write_record(record)
    # rendered from the files just written, exactly as `vvbench report` re-renders them later
    report = build_report(load_run(rd.path))
    rd.write_text("summary.md", report_markdown(report))
    rd.write_text("report.html", render_page(report))
    return record
