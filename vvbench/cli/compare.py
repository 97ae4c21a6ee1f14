"""The `compare` command: did NEW regress against BASE? Exit 1 only on a regression.

Thin: resolve both runs (`resolve_run`: a run directory, or for BASE the name `latest-passing`,
resolved through the history index), refuse runs that are not comparable unless `--force`, parse the
thresholds, `vvbench.reports.compare.compare_runs`, render, exit. Exit codes: 0 no metric
regressed, 1 at least one did, 2 bad input — an unreadable run directory (naming the file), an
unknown metric or a malformed value in `--threshold`, or runs of different scenarios, presets,
hosts or GPUs without `--force`, `latest-passing` with no passing run for NEW in the index —
always one line. Imports neither torch nor Locust.

`vvbench compare --baseline latest-passing NEW` (or `compare latest-passing NEW`) takes as BASE
the newest passing run (status ok, its load generator trusted) in the history index of NEW's
scenario, preset and host that started before NEW (`vvbench.reports.history.HistoryIndex.latest_passing`).
The index is `--db`, else `$VVBENCH_HISTORY_DB`, else `index.sqlite` next to NEW (in its runs
root, where the run registered itself). The chosen baseline is named on stderr and in the output's warnings.

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


LATEST_PASSING = "latest-passing"


def resolve_run(ref: str, *, new=None, db: str | None = None):
    """The run a BASE or NEW argument names, read and checked, rows included.

    `ref` is a run directory, or `latest-passing` (BASE only, given `new`): the index's newest passing run for `new`."""
    from vvbench.artifacts.reader import load_run

    if ref == LATEST_PASSING:
        if new is None:
            raise InputError(f"{LATEST_PASSING} names a baseline: NEW must be a run directory", param="new")
        ref = latest_passing(new, db)
    run = load_run(ref)
    _ = run.requests, run.samples  # a truncated or corrupt parquet file is an error before any figure
    return run


def latest_passing(new, db: str | None) -> str:
    """The directory of the newest passing run comparable with `new` in the history index (InputError when there is none)."""
    import os

    from vvbench.reports.history import DB_ENV, INDEX_NAME, HistoryIndex

    path = Path(db or os.environ.get(DB_ENV) or new.path.parent / INDEX_NAME)
    r = new.record
    preset = (r.runtime_config or {}).get("preset")
    with HistoryIndex(path) as index:
        found = index.latest_passing(r.scenario.name, preset=preset, host=r.host.get("hostname"), before=r.created_at, exclude=r.run_id)
    if found is None:
        raise InputError(f"--baseline {LATEST_PASSING}: no passing run of scenario {r.scenario.name!r} (preset {preset}, host "
                         f"{r.host.get('hostname')}) before {r.run_id} in {path}", param="baseline")
    click.echo(f"baseline: {found.run_id} (latest passing in {path})", err=True)
    return found.path


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
@click.argument("runs", nargs=-1, metavar="[BASE] NEW")
@click.option("--baseline", default=None, metavar="latest-passing|RUN_DIR",
              help="BASE given as an option: a run directory, or latest-passing from the history index (then only NEW is an argument)")
@click.option("--db", envvar="VVBENCH_HISTORY_DB", default=None, type=click.Path(dir_okay=False),
              help="history index for latest-passing [env VVBENCH_HISTORY_DB; default index.sqlite next to NEW]")
@click.option("--threshold", "thresholds", multiple=True, metavar="[METRIC=]PCT",
              help="smallest change that counts (a regression's whole interval must be past it): a default (5%) and/or per "
                   "metric (ttfa_p95=10%); repeat or separate with commas. A nightly gate: above the host's run-to-run variation")
@click.option("--format", "fmt", type=click.Choice(["md", "json", "html"]), default="md", show_default=True,
              help="md: a table for CI logs; json: every figure; html: a page with the two runs' CDFs overlaid")
@click.option("--force", is_flag=True, help="compare runs of different scenarios, presets, hosts or GPUs (with a warning)")
@click.option("--seed", type=int, default=0, show_default=True, help="seed of the bootstrap resampling")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="write to this file instead of stdout")
@click.pass_context
def compare_cmd(ctx, runs: tuple[str, ...], baseline: str | None, db: str | None, thresholds: tuple[str, ...], fmt: str, force: bool,
                seed: int, out: str | None) -> None:
    """Compare NEW with BASE metric by metric; exit 1 when a metric regressed.

    BASE is a run directory or latest-passing (the newest passing run in the history index); NEW a run directory."""
    from vvbench.reports.compare import compare_runs, differences
    from vvbench.reports.compare_render import compare_html, compare_json, compare_markdown

    if baseline is not None and len(runs) != 1:
        raise InputError(f"with --baseline give only NEW (got {len(runs)} runs)", param="runs")
    if baseline is None and len(runs) != 2:
        raise InputError(f"give BASE and NEW run directories, or --baseline latest-passing NEW (got {len(runs)})", param="runs")
    base, new = (baseline, runs[0]) if baseline is not None else runs
    default, per_metric = parse_thresholds(thresholds)
    new_run = resolve_run(new)
    base_run = resolve_run(base, new=new_run, db=db)
    reasons = differences(base_run, new_run)
    if reasons and not force:
        raise NotComparable(f"not comparable: {'; '.join(reasons)} (--force compares them anyway)")
    notes = [f"baseline {base_run.record.run_id}: the latest passing run in the history index"] if base == LATEST_PASSING else []
    cmp = compare_runs(base_run, new_run, per_metric, default_threshold=default, seed=seed,
                       warnings=notes + [f"compared with --force: {r}" for r in reasons])
    text = {"md": compare_markdown, "json": compare_json}[fmt](cmp) if fmt != "html" else compare_html(cmp, base_run, new_run)
    if out:
        write_atomic(Path(out), text)
        click.echo(f"wrote {out}", err=True)
    else:
        click.echo(text, nl=False)
    ctx.exit(1 if cmp.regressed else 0)
