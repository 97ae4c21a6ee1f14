"""The `report` command: re-render a run directory from its artifacts, without re-running anything.

Thin: `load_run` (which checks run.json and both parquet files against their schemas) -> a
renderer -> stdout or `--out`. A directory that cannot be read (missing or corrupt files, a
newer schema) is one line on stderr and exit 2. Imports neither torch nor Locust.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from vvbench.core.files import write_atomic


@click.command("report")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["md", "html", "json"]), default="md", show_default=True,
              help="md: the summary for CI logs; html: the self-contained page; json: the run record")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="write to this file instead of stdout")
def report_cmd(run_dir: str, fmt: str, out: str | None) -> None:
    """Render RUN_DIR (a `vvbench run` directory) as Markdown, HTML or JSON."""
    from vvbench.artifacts.reader import load_run
    from vvbench.reports.render import render_html, render_markdown

    run = load_run(run_dir)
    _ = run.requests, run.samples  # read and check both parquet files: a report of a broken run is an error
    data = run.record.model_dump(mode="json")
    if fmt == "json":
        text = json.dumps(data, indent=2) + "\n"
    else:
        text = render_markdown(data) if fmt == "md" else render_html(data)
    if out:
        write_atomic(Path(out), text)
        click.echo(f"wrote {out}", err=True)
    else:
        click.echo(text, nl=False)
