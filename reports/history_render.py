"""`vvbench history` as Markdown (CI logs), JSON (every figure) or one self-contained HTML page.

`History` is what the command decided from: the index's path, the runs listed (oldest first),
the metrics shown, and each scenario's change points per metric with the parameters they were
found with. The HTML page draws one trend chart per scenario and metric (inline SVG through
`vvbench.reports.charts`: the value per run in order, a dashed line where a shift began and the
segment means either side).
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

import numpy as np

from vvbench.reports import charts
from vvbench.reports.history import IndexedRun, Shift, metric_series
from vvbench.reports.page import chart, page
from vvbench.reports.render import html_table


@dataclass
class History:
    """The listing and the change points of `vvbench history` (see the module docstring)."""

    db: str
    runs: list[IndexedRun]
    metrics: list[str]
    shifts: dict[str, dict[str, list[Shift]]] = field(default_factory=dict)  # scenario -> metric -> shifts
    series_runs: dict[str, list[IndexedRun]] = field(default_factory=dict)  # scenario -> the completed runs trended
    max_pvalue: float = 0.0
    min_magnitude: float = 0.0
    method: str = "Apache Otava E-divisive change points, kept when Student's t-test p < max_pvalue and |change| > min_magnitude"


def _when(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def _num(v: float | None) -> str:
    return "—" if v is None or not math.isfinite(v) else f"{v:.4g}"


def _run_rows(h: History) -> list[list[str]]:
    return [[_when(r.created_at), r.run_id, r.status + ("" if r.trusted in (None, True) else " (NOT TRUSTED)"),
             (r.git_sha or "—")[:10] + ("+dirty" if r.git_dirty else ""), r.config_hash or "—", r.host or "—",
             *(_num(r.metrics.get(m)) for m in h.metrics)] for r in h.runs]


def shift_line(s: Shift) -> str:
    """One change point as a sentence: the run where it began, the levels, the change and its test."""
    way = "worse" if s.worse else "better" if s.worse is not None else "changed"
    return (f"{s.metric}: shift began at run {s.run_id} ({_when(s.created_at)}): {s.before:.4g} -> {s.after:.4g} "
            f"({s.change:+.1%}, {way}; t-test p={s.p_value:.2g}, {s.n_before} runs before, {s.n_after} from it on)")


def basis(h: History) -> str:
    return (f"change points: {h.method}; max_pvalue {h.max_pvalue:g}, min_magnitude {h.min_magnitude:.0%}; "
            "series: completed runs (ok, slo_failed) of each scenario, oldest first")


def history_markdown(h: History) -> str:
    """The runs as a table, then every scenario's change points (or that there are none)."""
    head = ["started (UTC)", "run", "status", "git", "config", "host", *h.metrics]
    lines = [f"# vvbench history ({len(h.runs)} runs, index {h.db})", ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in _run_rows(h)]
    lines += ["", "## Change points", "", basis(h), ""]
    for scenario, per_metric in h.shifts.items():
        found = [s for shifts in per_metric.values() for s in shifts]
        n = len(h.series_runs.get(scenario, []))
        if not found:
            lines.append(f"- {scenario} ({n} runs): no change point in {', '.join(per_metric) or 'any metric'}")
        for s in found:
            lines.append(f"- {scenario}: {shift_line(s)}")
    return "\n".join(lines) + "\n"


def _clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_clean(x) for x in v]
    return v


def history_json(h: History) -> str:
    """Every run and every change point, and what they were found with."""
    data = {"db": h.db, "metrics": h.metrics, "runs": [asdict(r) for r in h.runs],
            "change_points": {sc: {m: [asdict(s) for s in shifts] for m, shifts in pm.items()} for sc, pm in h.shifts.items()},
            "method": h.method, "max_pvalue": h.max_pvalue, "min_magnitude": h.min_magnitude}
    return json.dumps(_clean(data), indent=2) + "\n"


def trend_chart(scenario: str, metric: str, runs: list[IndexedRun], shifts: list[Shift]) -> str:
    """A metric's value per run of a scenario, with the change points and the segment means."""
    points = metric_series(runs, metric)
    x = np.arange(len(points), dtype=float)
    y = np.array([v for _, v in points], dtype=float)
    with charts.matplotlib.rc_context(charts.STYLE):
        fig = charts.figure(2.6)
        ax = fig.add_subplot()
        ax.plot(x, y, color=charts.COLORS[0], marker="o", ms=3, lw=1.2, label=metric)
        cuts = [0, *(s.index for s in shifts), len(points)]
        for a, b in zip(cuts, cuts[1:]):
            if b > a:
                ax.hlines(float(np.mean(y[a:b])), a - 0.3, b - 0.7, colors="#555555", lw=1, label="segment mean" if a == 0 else None)
        for s in shifts:
            ax.axvline(s.index - 0.5, color="#b00020", ls="--", lw=1)
            ax.annotate(f"{s.change:+.0%} at {s.run_id}", (s.index - 0.5, float(np.nanmax(y)) if len(y) else 0.0),
                        xytext=(3, -10), textcoords="offset points", fontsize=8, color="#b00020")
        ax.set_xlabel("run (oldest first)")
        ax.set_ylabel(metric)
        ax.set_title(f"{scenario}: {metric}", loc="left")
        ax.ticklabel_format(axis="y", useOffset=False, style="plain")
        ax.legend(loc="upper left", fontsize=8, frameon=False)
        return charts.to_svg(fig)


def history_html(h: History) -> str:
    """One page: the runs, the change points and a trend chart per scenario and metric."""
    found = [s for pm in h.shifts.values() for shifts in pm.values() for s in shifts]
    badge = "regressed" if any(s.worse for s in found) else "equivalent"
    body = ["<h2>Runs</h2>", html_table(_run_rows(h), ["started (UTC)", "run", "status", "git", "config", "host", *h.metrics]),
            "<h2>Change points</h2>", f"<p>{html.escape(basis(h))}</p>"]
    body.append("<ul>" + "".join(f"<li>{html.escape(sc)}: {html.escape(shift_line(s))}</li>"
                                 for sc, pm in h.shifts.items() for shifts in pm.values() for s in shifts) + "</ul>"
                if found else "<p>No change point.</p>")
    for scenario, per_metric in h.shifts.items():
        body.append(f"<h2>Trends: {html.escape(scenario)}</h2>")
        for metric, shifts in per_metric.items():
            runs = h.series_runs.get(scenario, [])
            if metric_series(runs, metric):
                body.append(chart(f"{scenario}-{metric}", trend_chart(scenario, metric, runs, shifts),
                                  f"{len(metric_series(runs, metric))} completed runs"))
    return page("vvbench history", badge, body)
