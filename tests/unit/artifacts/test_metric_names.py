"""Every part that names a metric names one of the table's: summaries, SLOs, the live view, the exporter's sources."""

from __future__ import annotations

import io

from rich.console import Console

from vvbench.artifacts.metrics import METRIC_BY_NAME, METRICS, parse_slo
from vvbench.artifacts.scenarios import load_scenario, shipped_scenarios
from vvbench.artifacts.schemas import SAMPLE_COLUMNS
from vvbench.cli import view
from vvbench.load import context
from vvbench.monitor.exporter import SAMPLE_GAUGES
from vvbench.reports.render import SHOWN, render_markdown
from vvbench.reports.slo import request_thresholds


def _run(summary: dict) -> dict:
    return {"run_id": "r", "scenario": {"name": "s"}, "summary": summary, "slos": [], "summary_counts": {}}


def test_the_summaries_show_exactly_the_table_metrics_marked_summary():
    summary = {m.name: 1.0 for m in METRICS}
    md = render_markdown(_run(summary))
    shown = {line.split("|")[1].strip() for line in md.splitlines() if line.startswith("| ") and "metric" not in line}
    assert shown == {m.name for m in METRICS if m.summary} == {m.name for m in SHOWN}
    console = Console(file=io.StringIO(), width=300)
    for renderable in view.summary_tables(_run(summary)):
        console.print(renderable)
    text = console.file.getvalue()
    for m in METRICS:
        if m.summary and m.column not in view.LATENCY_LABELS:
            assert m.name in text, m.name


def test_names_used_by_the_view_the_load_progress_and_the_shipped_slos_exist():
    assert view.LIVE_METRIC.name in METRIC_BY_NAME and context.LIVE_METRIC is METRIC_BY_NAME[view.LIVE_METRIC.name]
    assert set(view.LATENCY_LABELS) <= {m.column for m in METRICS if m.group == "latency"}
    for name, path in shipped_scenarios().items():
        for key, threshold in load_scenario(path).slos.items():
            assert parse_slo(key, threshold).metric in METRIC_BY_NAME, (name, key)


def test_sources_and_slo_forms_are_consistent():
    for m in METRICS:
        if m.rows == "samples":
            assert m.column in SAMPLE_COLUMNS, m.name
        if m.per_request:
            column = m.per_request.partition("<=")[0]
            assert column == m.column, m.name
    assert set(SAMPLE_GAUGES.values()) <= set(SAMPLE_COLUMNS)
    memory = {m.column for m in METRICS if m.group in ("memory", "cpu") and m.rows == "samples"}
    assert {"rss_bytes", "sys_cpu_idle", "sys_cpu_iowait"} <= memory & set(SAMPLE_GAUGES.values())
    assert request_thresholds({"ttfa_p95_s": 2.0, "c100_min": 0.99, "success_min": 0.9}) == {"ttfa_s": 2.0, "max_stall_s": 0.1}
