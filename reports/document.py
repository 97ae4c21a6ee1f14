"""A run report: everything the HTML page, the Markdown summary and the JSON show, computed once.

`build_report(run, prebuffers_ms)` reads a `Run` (from `load_run`) and gathers the record's
summary and verdicts with what is computed from the raw rows: CDF points, RTF per text-length
bucket, the request timeline, throughput and in-flight requests, memory and CPU, and continuity
against prebuffer (`reports.series`). The renderers (`reports.page`, `report_markdown`,
`report_json`) only format it. The same run directory always gives the same report: nothing
here reads a clock or the environment.

Warnings are gathered from the record's own fields, whatever wrote them: an error (a run that
did not complete), every note (the sampler's, and any a load or target check records), and a
row count that does not match Locust's.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vvbench.reports import series
from vvbench.reports.charts import TimeAxis
from vvbench.reports.render import fmt, render_markdown, trust_lines
from vvbench.reports.summary import measured_rows

PERCENTILES = (50, 90, 95, 99)


@dataclass(frozen=True)
class RunReport:
    """One run's report data (see the module docstring)."""

    record: dict  # run.json, as JSON types
    axis: TimeAxis
    latency: dict[str, np.ndarray]  # ttfa_s / e2e_s of the successful measured requests
    rtf_buckets: list[dict]
    timeline: series.Timeline
    throughput: dict[str, np.ndarray]
    resources: dict[str, np.ndarray]
    continuity: series.Continuity
    warnings: list[str]


def warnings_of(record: dict) -> list[str]:
    """What a reader must know before trusting the figures, from the record's fields."""
    out = []
    if record.get("error"):
        out.append(f"the run did not complete ({record.get('status')}): {record['error']}")
    counts = record.get("summary_counts") or {}
    if counts and not counts.get("rows_match_locust", True):
        out.append(f"{counts.get('rows')} request rows but Locust counted {sum((record.get('load') or {}).get('locust_requests', {}).values())} "
                   "requests: rows may be missing")
    out += trust_lines(record)[1]
    out += [str(n) for n in record.get("notes") or []]
    return out


def build_report(run, prebuffers_ms: list[float] | None = None) -> RunReport:
    """The report of `run` (a `vvbench.artifacts.reader.Run`), continuity at `prebuffers_ms` plus the run's own."""
    axis = series.time_axis(run)
    ok = measured_rows(run.requests)[1]
    own = float(run.record.scenario.prebuffer_ms)
    stalls = run.stalls(own) if run.has_arrivals else pd.DataFrame({"row": [], "at_s": [], "stall_s": []})
    return RunReport(
        record=run.record.model_dump(mode="json"), axis=axis,
        latency={c: ok[c].to_numpy(dtype=float, na_value=np.nan) for c in ("ttfa_s", "e2e_s")},
        rtf_buckets=series.rtf_by_length(run), timeline=series.timeline(run, axis, stalls),
        throughput=series.throughput(run, axis), resources=series.resources(run, axis),
        continuity=series.continuity(run, list(prebuffers_ms if prebuffers_ms is not None else series.DEFAULT_PREBUFFERS_MS)),
        warnings=warnings_of(run.record.model_dump(mode="json")),
    )


def percentile_table(report: RunReport) -> list[tuple[str, list[str]]]:
    """(column, its percentiles as text) for TTFA and E2E: the numbers beside the CDFs."""
    out = []
    for column, values in report.latency.items():
        v = values[np.isfinite(values)]
        out.append((column, [fmt(float(np.percentile(v, q)), "s") if len(v) else "NA" for q in PERCENTILES]))
    return out


def _share(v: float | None) -> str:
    return "NA" if v is None else f"{100 * v:.1f}%"


def continuity_rows(report: RunReport) -> list[list[str]]:
    """One row per prebuffer: the prebuffer (the run's own marked) and each continuity metric."""
    c = report.continuity
    rows = []
    for i, p in enumerate(c.prebuffers_ms):
        label = f"{p:g} ms" + (" (the run's)" if p == c.own_ms else "")
        rows.append([label] + [_share(c.values[m][i]) for m in c.metrics])
    return rows


def report_markdown(report: RunReport) -> str:
    """summary.md: the record's summary and verdicts, then warnings, continuity against prebuffer and RTF by length."""
    lines = [render_markdown(report.record).rstrip("\n"), ""]
    if report.warnings:
        lines += ["## Notes and warnings", ""] + [f"- {w}" for w in report.warnings] + [""]
    c = report.continuity
    lines += ["## Continuity against prebuffer (re-simulated from the stored arrivals)", ""]
    if c.note:
        lines += [c.note, ""]
    else:
        lines += ["| prebuffer | " + " | ".join(c.metrics) + " |", "|---|" + "---|" * len(c.metrics)]
        lines += ["| " + " | ".join(r) + " |" for r in continuity_rows(report)] + [""]
    if report.rtf_buckets:
        lines += ["## RTF by text length", "", "| characters | requests | rtf p50 | rtf p95 |", "|---|---|---|---|"]
        lines += [f"| {b['chars']} | {b['n']} | {b['rtf_p50']:.3f} | {b['rtf_p95']:.3f} |" for b in report.rtf_buckets] + [""]
    return "\n".join(lines)


def _clean(value):
    """JSON-safe: arrays to lists, NaN to null."""
    if isinstance(value, np.ndarray):
        return [_clean(v) for v in value.tolist()]
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def report_json(report: RunReport) -> str:
    """The record and the computed report data (continuity, RTF buckets, percentiles, warnings) as JSON."""
    c = report.continuity
    data = {
        "run": report.record,
        "report": {
            "warnings": report.warnings,
            "percentiles": {col: dict(zip((f"p{q}" for q in PERCENTILES), (_clean(float(np.percentile(v[np.isfinite(v)], q)))
                                                                            if np.isfinite(v).any() else None for q in PERCENTILES)))
                            for col, v in report.latency.items()},
            "rtf_by_length": report.rtf_buckets,
            "continuity": {"prebuffer_ms": c.prebuffers_ms, "run_prebuffer_ms": c.own_ms, "note": c.note or None,
                           **{m: c.values[m] for m in c.metrics}},
            "timeline": {"requests": report.timeline.total, "shown": len(report.timeline.starts), "note": report.timeline.note or None},
        },
    }
    return json.dumps(_clean(data), indent=2) + "\n"
