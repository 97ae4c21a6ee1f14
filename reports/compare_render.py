"""A `Comparison` as Markdown (CI logs), JSON, or a self-contained HTML page with overlaid CDFs.

Every rendering leads with what the decision was made from — the two runs, the sample sizes,
the tests, the interval, the correction, the seed and the thresholds — so a reader can disagree
with it, then one line per metric: base and new values in the metric's unit, the change, its
interval, the raw and corrected p-values and the verdict.
"""

from __future__ import annotations

import html
import json
import math

import numpy as np

from vvbench.reports import charts
from vvbench.reports.compare import RATE_BINS, Comparison, MetricChange
from vvbench.reports.page import chart, page
from vvbench.reports.render import fmt, html_table
from vvbench.reports.series import cdf_points
from vvbench.reports.summary import measured_rows

HEADER = ("metric", "better", "base", "new", "change", "interval", "p", "p (Holm)", "threshold", "verdict", "n base / new", "note")
HOW = {"requests": "per request", "slices": f"{RATE_BINS} slices of the window", "point": "one value per run"}


def _pct(ratio: float | None) -> str:
    if ratio is None or not math.isfinite(ratio):
        return "NA"
    if ratio >= 1e11:
        return "unbounded"
    return f"{100 * (ratio - 1):+.1f}%"


def _p(p: float | None) -> str:
    return "NA" if p is None else (f"{p:.2g}" if p >= 1e-4 else "<1e-4")


def row(c: MetricChange) -> list[str]:
    """One metric's line of the table."""
    interval = "NA" if c.ci_low is None else f"[{_pct(c.ci_low)}, {_pct(c.ci_high)}]"
    return [c.metric, f"{c.direction} is better", fmt(c.base, c.unit), fmt(c.new, c.unit), _pct(c.ratio), interval,
            _p(c.p_value), _p(c.p_adjusted), f"±{100 * c.threshold:g}%", c.verdict, f"{c.n_base} / {c.n_new} ({HOW[c.how]})", c.note]


def basis(cmp: Comparison) -> list[str]:
    """What the verdicts were decided from, one sentence each."""
    return [
        f"base {cmp.base_id}, new {cmp.new_id}",
        f"change = new / base − 1, with a {100 * cmp.confidence:g}% percentile bootstrap interval of the ratio "
        f"({cmp.resamples} resamples, seed {cmp.seed}; requests resampled, or {RATE_BINS} slices of the window for rates)",
        f"rank test: Mann-Whitney U, two-sided, on the per-request values (per-slice rates for rates); "
        f"correction: {cmp.correction}; significant when the corrected p < {cmp.alpha:g}",
        "regressed: significant and the whole interval worse than the threshold; improved: significant and the whole "
        "interval better than it; equivalent: the interval inside ±threshold; otherwise inconclusive",
    ]


def verdict_line(cmp: Comparison) -> str:
    """The one-line answer: what regressed, or that nothing did."""
    counts = {v: sum(c.verdict == v for c in cmp.changes) for v in ("regressed", "improved", "equivalent", "inconclusive")}
    head = f"REGRESSED: {', '.join(cmp.regressed)}" if cmp.regressed else "no regression"
    return head + " (" + ", ".join(f"{n} {v}" for v, n in counts.items()) + ")"


def compare_markdown(cmp: Comparison) -> str:
    """The comparison for a CI log."""
    lines = [f"# vvbench compare: {verdict_line(cmp)}", ""]
    lines += [f"- {b}" for b in basis(cmp)]
    lines += [f"- **warning**: {w}" for w in cmp.warnings]
    lines += ["", "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row(c)) + " |" for c in cmp.changes]
    return "\n".join(lines) + "\n"


def _clean(v):
    return None if isinstance(v, float) and not math.isfinite(v) else v


def compare_json(cmp: Comparison) -> str:
    """The comparison as JSON: the basis, the regressed metrics, and every metric's figures."""
    data = {"base": cmp.base_id, "new": cmp.new_id, "regressed": cmp.regressed, "warnings": cmp.warnings,
            "method": {"resamples": cmp.resamples, "seed": cmp.seed, "alpha": cmp.alpha, "confidence": cmp.confidence,
                       "correction": cmp.correction, "rank_test": "Mann-Whitney U (two-sided)", "interval": "percentile bootstrap of new/base",
                       "rate_slices": RATE_BINS},
            "metrics": [{k: _clean(v) for k, v in vars(c).items()} for c in cmp.changes]}
    return json.dumps(data, indent=2) + "\n"


def compare_html(cmp: Comparison, base, new) -> str:
    """A self-contained page: the basis, the table, and the TTFA and E2E CDFs of both runs overlaid."""
    body = ["<ul>" + "".join(f"<li>{html.escape(b)}</li>" for b in basis(cmp)) + "</ul>"]
    if cmp.warnings:
        body.append("<ul class='warn'>" + "".join(f"<li>{html.escape(w)}</li>" for w in cmp.warnings) + "</ul>")
    body += ["<h2>Metrics</h2>", html_table([row(c) for c in cmp.changes], HEADER)]
    body.append("<h2>Distributions</h2>")
    for column, label in (("ttfa_s", "time to first audio"), ("e2e_s", "end to end (last byte)")):
        lines = []
        for name, run in (("base", base), ("new", new)):
            x, p = cdf_points(measured_rows(run.requests)[1][column].to_numpy(dtype=float, na_value=np.nan))
            if len(x):
                lines.append((f"{name} ({run.record.run_id})", x, p))
        body.append(chart(column, charts.cdf_chart(f"{label}: CDF, base and new", "seconds", lines),
                          "successful measured requests of each run"))
    badge = "FAIL" if cmp.regressed else "PASS"
    return page(f"vvbench compare: {verdict_line(cmp)}", badge, body)
