"""The `compare` command: did NEW regress against BASE? Exit 1 only on a regression.

Thin: resolve both runs (`resolve_run`: a run directory today; the history index will add names
such as `latest-passing` there), refuse runs that are not comparable unless `--force`, parse the
thresholds, `vvbench.reports.compare.compare_runs`, render, exit. Exit codes: 0 no metric
regressed, 1 at least one did, 2 bad input — an unreadable run directory (naming the file), an
unknown metric or a malformed value in `--threshold`, or runs of different scenarios, presets,
hosts or GPUs without `--force` — always one line. Imports neither torch nor Locust.

`--threshold` takes a default (`5%`) and per-metric values (`ttfa_p95=10%`, `c100=2%`), given
as several flags or separated by commas; a metric may be named with or without its `_s` suffix.
"""

from __future__ import annotations

import math
from pathlib import Path

import click

from vvbench.core.errors import InputError, VVBenchError
from vvbench.core.files import write_atomic


class NotComparable(VVBenchError):
    """Two runs that must not be compared without `--force` (exit 2)."""


def resolve_run(ref: str):
    """The run a BASE or NEW argument names (a run directory), read and checked, rows included."""
    from vvbench.artifacts.reader import load_run

    run = load_run(ref)
    _ = run.requests, run.samples  # a truncated or corrupt parquet file is an error before any figure
    return run


def _fraction(raw: str, what: str) -> float:
    text = raw.strip()
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise InputError(f"--threshold: {what}: {raw!r} is not a percentage (e.g. 5%)", param="threshold") from None
    if not text.endswith("%") and value >= 1:
        raise InputError(f"--threshold: {what}: write {raw}% for a percentage (a bare number is a fraction, e.g. 0.05)", param="threshold")
    if not math.isfinite(value) or not 0 < value < 10:
        raise InputError(f"--threshold: {what}: {raw} must be above 0%", param="threshold")
    return value


def parse_thresholds(values: tuple[str, ...]) -> tuple[float, dict[str, float]]:
    """(default, per-metric) thresholds as fractions from `--threshold` values; InputError naming an unknown metric."""
    from vvbench.reports.compare import COMPARED, DEFAULT_THRESHOLD

    names = {m.name for m in COMPARED}
    default, per_metric = DEFAULT_THRESHOLD, {}
    for part in (p.strip() for v in values for p in v.split(",")):
        if not part:
            continue
        name, sep, value = part.partition("=")
        if not sep:
            default = _fraction(part, "default")
            continue
        name = name.strip()
        metric = name if name in names else f"{name}_s" if f"{name}_s" in names else None
        if metric is None:
            raise InputError(f"--threshold: unknown metric {name!r}; compared metrics: {', '.join(m.name for m in COMPARED)}",
                             param="threshold")
        per_metric[metric] = _fraction(value, metric)
    return default, per_metric


@click.command("compare")
@click.argument("base")
@click.argument("new")
@click.option("--threshold", "thresholds", multiple=True, metavar="[METRIC=]PCT",
              help="smallest change that counts: a default (5%) and/or per metric (ttfa_p95=10%); repeat or separate with commas")
@click.option("--format", "fmt", type=click.Choice(["md", "json", "html"]), default="md", show_default=True,
              help="md: a table for CI logs; json: every figure; html: a page with the two runs' CDFs overlaid")
@click.option("--force", is_flag=True, help="compare runs of different scenarios, presets, hosts or GPUs (with a warning)")
@click.option("--seed", type=int, default=0, show_default=True, help="seed of the bootstrap resampling")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="write to this file instead of stdout")
@click.pass_context
def compare_cmd(ctx, base: str, new: str, thresholds: tuple[str, ...], fmt: str, force: bool, seed: int, out: str | None) -> None:
    """Compare NEW with BASE (run directories) metric by metric; exit 1 when a metric regressed."""
    from vvbench.reports.compare import compare_runs, differences
    from vvbench.reports.compare_render import compare_html, compare_json, compare_markdown

    default, per_metric = parse_thresholds(thresholds)
    base_run, new_run = resolve_run(base), resolve_run(new)
    reasons = differences(base_run, new_run)
    if reasons and not force:
        raise NotComparable(f"not comparable: {'; '.join(reasons)} (--force compares them anyway)")
    cmp = compare_runs(base_run, new_run, per_metric, default_threshold=default, seed=seed,
                       warnings=[f"compared with --force: {r}" for r in reasons])
    text = {"md": compare_markdown, "json": compare_json}[fmt](cmp) if fmt != "html" else compare_html(cmp, base_run, new_run)
    if out:
        write_atomic(Path(out), text)
        click.echo(f"wrote {out}", err=True)
    else:
        click.echo(text, nl=False)
    ctx.exit(1 if cmp.regressed else 0)
