"""The run report from a run directory: its sections, its bounds, its determinism, its bad input."""

from __future__ import annotations

import json
import re

import pyarrow.parquet as pq
import pytest
from runkit import one_line_exit_2, vv, vv_process, write_run

from vvbench.artifacts.reader import load_run
from vvbench.cli.report import render
from vvbench.reports.document import build_report
from vvbench.reports.series import TIMELINE_MAX

CHARTS = ("ttfa_s", "e2e_s", "rtf", "timeline", "throughput", "memory", "cpu", "continuity")
URL = re.compile(r"(?i)(?:https?:|ftp:|file:|data:|//[a-z0-9])")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return write_run(tmp_path_factory.mktemp("runs"), n=400, seed=1)


def test_page_has_every_chart_and_section_and_no_url(run_dir):
    page = render(load_run(run_dir), "html")
    for name in CHARTS:
        assert f"id='chart-{name}'><svg" in page, name
    for heading in ("SLOs", "Summary", "Latency", "RTF by text length", "Over time", "Continuity against prebuffer", "Facts"):
        assert f"<h2>{heading}</h2>" in page
    assert "lower is better" in page and "higher is better" in page  # directions from the metric table
    assert "rtf = e2e_s / audio_s" in page and "linear interpolation" in page and "ci-host" in page
    assert not URL.search(page), URL.search(page)
    assert "<script" not in page and "<img" not in page and "<link" not in page


def test_rerendering_gives_the_same_bytes(run_dir):
    first = vv_process("report", str(run_dir), "--format", "html")  # two fresh processes: nothing shared but the files
    second = vv_process("report", str(run_dir), "--format", "html")
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout and len(first.stdout) > 100_000


def test_continuity_at_the_runs_own_prebuffer_is_the_recorded_one(run_dir):
    run = load_run(run_dir)
    c = build_report(run, [0, 1000]).continuity
    assert c.prebuffers_ms == [0.0, 200.0, 1000.0]  # the run's own 200 ms added
    for metric in ("c50", "c100", "c200"):
        assert c.values[metric][1] == pytest.approx(run.record.summary[metric])
        assert c.values[metric][0] <= c.values[metric][1] <= c.values[metric][2]  # more buffer, fewer stalls
    assert c.values["c100"][0] < c.values["c100"][2]


def test_a_long_run_thins_the_timeline_and_says_so(tmp_path):
    run = load_run(write_run(tmp_path, n=1500, seed=2, duration_s=300))
    report = build_report(run)
    assert len(report.timeline.starts) <= TIMELINE_MAX < report.timeline.total == 1500
    assert "every 5th in start order" in report.timeline.note
    page = render(run, "html")
    assert report.timeline.note in page
    assert len(page) < 2_000_000


def test_markdown_and_json_carry_the_same_figures(run_dir):
    md = vv("report", str(run_dir), "--format", "md", "--prebuffer-ms", "0,500")
    assert md.returncode == 0, md.stderr
    assert "## Continuity against prebuffer" in md.stdout and "| 200 ms (the run's) |" in md.stdout
    assert "## RTF by text length" in md.stdout
    data = json.loads(vv("report", str(run_dir), "--format", "json").stdout)
    assert data["run"]["run_id"] == run_dir.name
    cont = data["report"]["continuity"]
    assert len(cont["prebuffer_ms"]) == len(cont["c100"]) == 8  # the default list holds the run's 200 ms already
    assert sum(b["n"] for b in data["report"]["rtf_by_length"]) == data["run"]["summary"]["ok"]


@pytest.mark.parametrize("args, needle", [
    (["--prebuffer-ms", "0,abc"], "--prebuffer-ms"),
    (["--prebuffer-ms", "-5"], "--prebuffer-ms"),
])
def test_bad_prebuffers_are_one_line(run_dir, args, needle):
    assert needle in one_line_exit_2(vv("report", str(run_dir), *args))


def test_a_directory_that_is_not_a_run_is_one_line(tmp_path):
    assert "run.json: missing" in one_line_exit_2(vv_process("report", str(tmp_path)))


def test_a_run_without_rows_or_arrivals_still_renders(tmp_path):
    empty = render(load_run(write_run(tmp_path / "empty", n=0)), "html")
    assert "No successful measured requests" in empty and "id='chart-timeline'><svg" in empty
    old = write_run(tmp_path / "old", n=30)
    data = json.loads((old / "run.json").read_text())
    data["schema_version"] = 1
    (old / "run.json").write_text(json.dumps(data))
    pq.write_table(pq.read_table(old / "requests.parquet").drop_columns(["arrival_t_s", "arrival_samples"]), old / "requests.parquet")
    page = render(load_run(old), "html")
    assert "schema 1 run: no arrival timelines stored, so playback cannot be re-simulated" in page
