"""The `history` command: the runs in the history index, their trends and change points.

Thin: open the index (`--db`, else `$VVBENCH_HISTORY_DB`, else `runs/index.sqlite`, where
`vvbench run` registers by default), optionally register run directories written elsewhere
(`--add`), filter (`--scenario`, `--metric`, `--limit`), find each scenario's change points per
metric with Apache Otava (`vvbench.reports.history.change_points`), render, exit 0. Bad input is
one line and exit 2: a `--db` that is not an index (or of a newer schema), an unknown metric, a
scenario with no run in the index, a `--add` directory that is not a run. Imports neither torch
nor Locust.

Without `--metric` the table shows a few headline metrics and change points are looked for in
every metric with a better direction; with it, in the metrics named (a name may drop its `_s`).
"""

from __future__ import annotations

from pathlib import Path

import click

from vvbench.core.errors import InputError
from vvbench.core.files import write_atomic

HEADLINE = ("ttfa_p95_s", "e2e_p50_s", "e2e_p95_s", "rtf_p95", "c100", "success")


def metric_names(values: tuple[str, ...]) -> list[str]:
    """The metrics `--metric` names (repeated or comma-separated), checked against the metric table."""
    from vvbench.artifacts.metrics import METRICS

    names = [m.name for m in METRICS]
    out = []
    for part in (p.strip() for v in values for p in v.split(",")):
        if not part:
            continue
        name = part if part in names else f"{part}_s" if f"{part}_s" in names else None
        if name is None:
            raise InputError(f"--metric: unknown metric {part!r}; metrics: {', '.join(names)}", param="metric")
        out.append(name)
    return out


def fraction(raw: str) -> float:
    text = raw.strip()
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise InputError(f"--min-change: {raw!r} is not a percentage (e.g. 5%)", param="min_change") from None
    if not 0 <= value < 10:
        raise InputError(f"--min-change: {raw} must be 0% or more", param="min_change")
    return value


@click.command("history")
@click.option("--db", envvar="VVBENCH_HISTORY_DB", default=None, type=click.Path(dir_okay=False),
              help="the history index [env VVBENCH_HISTORY_DB; default runs/index.sqlite]")
@click.option("--scenario", default=None, help="only this scenario's runs")
@click.option("--metric", "metrics", multiple=True, metavar="NAME", help="metrics to show and to look for change points in (repeat or commas)")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="only the newest N runs (per the filters)")
@click.option("--add", "add", multiple=True, type=click.Path(file_okay=False), metavar="RUN_DIR",
              help="register these run directories first (runs written elsewhere, or before the index existed)")
@click.option("--max-pvalue", type=click.FloatRange(min=0, max=1, min_open=True), default=None,
              help="change points: largest t-test p-value kept [default 0.001]")
@click.option("--min-change", default=None, help="change points: smallest relative change of the mean kept [default 5%]")
@click.option("--format", "fmt", type=click.Choice(["md", "json", "html"]), default="md", show_default=True,
              help="md: tables for CI logs; json: every figure; html: a page with a trend chart per scenario and metric")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="write to this file instead of stdout")
def history_cmd(db: str | None, scenario: str | None, metrics: tuple[str, ...], limit: int | None, add: tuple[str, ...],
                max_pvalue: float | None, min_change: str | None, fmt: str, out: str | None) -> None:
    """List the runs in the history index and name the run where each metric's shift began."""
    from vvbench.artifacts.reader import load_run
    from vvbench.reports.history import MAX_PVALUE, MIN_MAGNITUDE, TRENDED, HistoryIndex, change_points
    from vvbench.reports.history_render import History, history_html, history_json, history_markdown

    chosen = metric_names(metrics)
    min_magnitude = fraction(min_change) if min_change is not None else MIN_MAGNITUDE
    max_pvalue = max_pvalue if max_pvalue is not None else MAX_PVALUE
    path = Path(db) if db else Path("runs") / "index.sqlite"
    runs_to_add = [load_run(d) for d in add]  # every directory checked before the index is touched
    with HistoryIndex(path, create=bool(runs_to_add)) as index:
        for run in runs_to_add:
            index.register(run.path, run.record)
        known = index.scenarios()
        if scenario is not None and scenario not in known:
            raise InputError(f"--scenario: no run of {scenario!r} in {path}; scenarios there: {', '.join(known) or 'none'}",
                             param="scenario")
        listed = index.runs(scenario, limit=limit)
        trended = {sc: index.runs(sc, limit=limit, completed=True) for sc in ([scenario] if scenario else known)}
    h = History(str(path), listed, chosen or list(HEADLINE), max_pvalue=max_pvalue, min_magnitude=min_magnitude)
    h.series_runs = trended
    for sc, runs in trended.items():
        h.shifts[sc] = {m: change_points(runs, m, max_pvalue=max_pvalue, min_magnitude=min_magnitude) for m in (chosen or TRENDED)}
    text = {"md": history_markdown, "json": history_json, "html": history_html}[fmt](h)
    if out:
        write_atomic(Path(out), text)
        click.echo(f"wrote {out}", err=True)
    else:
        click.echo(text, nl=False)
