"""The `report` command: re-render a run directory from its artifacts, without re-running anything.

Thin: `load_run` (which checks run.json and both parquet files against their schemas) ->
`vvbench.reports.document.build_report` -> a renderer -> stdout or `--out`. `--prebuffer-ms`
lists the prebuffers continuity is re-simulated at (the run's own is always added). A directory
that cannot be read (missing or corrupt files, a newer schema) or a bad flag is one line on
stderr and exit 2. Imports neither torch nor Locust. A tune directory (`summary.json` and
`trials.json`) is rendered by `vvbench.reports.tune_report` from its JSON files and plots.
"""

from __future__ import annotations

import math
from pathlib import Path

import click

from vvbench.core.errors import InputError
from vvbench.core.files import write_atomic


def parse_prebuffers(raw: str | None) -> list[float] | None:
    """`0,100,250` -> [0.0, 100.0, 250.0] (None when not given); InputError for anything but non-negative numbers."""
    if raw is None:
        return None
    out = []
    for part in raw.split(","):
        try:
            value = float(part.strip())
        except ValueError:
            raise InputError(f"--prebuffer-ms: {part.strip()!r} is not a number (expected e.g. 0,100,250)", param="prebuffer_ms") from None
        if not math.isfinite(value) or not 0 <= value <= 60_000:
            raise InputError(f"--prebuffer-ms: {part.strip()} is outside 0..60000 ms", param="prebuffer_ms")
        out.append(value)
    return out


def render(run, fmt: str, prebuffers_ms: list[float] | None = None) -> str:
    """The report of a loaded run as `md`, `html` or `json` text."""
    from vvbench.reports.document import build_report, report_json, report_markdown

    report = build_report(run, prebuffers_ms)
    if fmt == "html":
        from vvbench.reports.page import render_page

        return render_page(report)
    return report_json(report) if fmt == "json" else report_markdown(report)


@click.command("report")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["md", "html", "json"]), default="md", show_default=True,
              help="md: the summary for CI logs; html: the self-contained page with charts; json: the record and the computed report data")
@click.option("--prebuffer-ms", "prebuffer_ms", default=None, metavar="A,B,...",
              help="prebuffers to re-simulate continuity at (default 0,50,100,200,300,500,1000,2000; the run's own is added)")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="write to this file instead of stdout")
def report_cmd(run_dir: str, fmt: str, prebuffer_ms: str | None, out: str | None) -> None:
    """Render RUN_DIR (a `vvbench run` directory, or a `vvbench tune` directory) as Markdown, HTML or JSON."""
    from vvbench.artifacts.reader import load_run
    from vvbench.reports import tune_report

    if tune_report.is_tune_dir(Path(run_dir)):
        data = tune_report.load_tune(Path(run_dir))
        text = {"md": tune_report.tune_markdown, "html": tune_report.tune_page, "json": tune_report.tune_json}[fmt](data)
        _emit(text, out)
        return
    prebuffers = parse_prebuffers(prebuffer_ms)
    run = load_run(run_dir)
    _ = run.requests, run.samples  # read and check both parquet files: a report of a broken run is an error
    _emit(render(run, fmt, prebuffers), out)


def _emit(text: str, out: str | None) -> None:
    if out:
        write_atomic(Path(out), text)
        click.echo(f"wrote {out}", err=True)
    else:
        click.echo(text, nl=False)
