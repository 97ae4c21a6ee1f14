"""capacity.md, capacity.html and capacity.json from a `CapacityResult` (pure; no torch, no Locust).

The page is self-contained like report.html (`vvbench.reports.page`): the answer first, then
TTFA p95, c100 and goodput against load — each a `reports.charts.line_chart` with the
scenario's SLO levels as dashed lines and the capacity and the knee named in the caption — and
a table of every point with its attainment bounds and the run directory it was decided from.
"""

from __future__ import annotations

import html
import math

import numpy as np

from vvbench.artifacts.metrics import parse_slo
from vvbench.reports import charts
from vvbench.reports.capacity import CapacityResult
from vvbench.reports.page import chart, page
from vvbench.reports.render import html_table


def _num(v: float | None, spec: str = ".3g") -> str:
    return "NA" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def headline(result: CapacityResult) -> list[tuple[str, str]]:
    """(figure, value) rows of the answer: capacity, per-instance figures, knee, fleet."""
    rows = [("scenario", result.scenario), ("load", f"{result.key}: {result.unit}"), ("mode", f"{result.mode}, {result.runs} runs, "
            f"{result.elapsed_s / 60:.1f} min"), ("capacity", _capacity(result)),
            ("streams per instance", _num(result.streams_per_instance)), ("requests per minute", _num(result.requests_per_minute)),
            ("audio hours per hour", _num(result.audio_hours_per_hour)), ("knee of TTFA p95", _num(result.knee, "g")),
            ("confidence", f"{result.confidence:g} (two-sided Wilson interval; its lower bound must clear each SLO's share)")]
    if result.fleet is not None:
        f = result.fleet
        rows.append(("instances", f"{f.instances} for {f.target_load:g} {f.unit} at headroom {f.headroom:g} "
                                  f"({f.capacity_per_instance:g} each); N+1: {f.instances_n_plus_1}"))
    return rows


def _capacity(result: CapacityResult) -> str:
    found = "no load met every SLO" if result.capacity is None else f"{result.key} = {result.capacity:g}"
    if result.interrupted is not None:
        found += f" (so far: {result.interrupted} interrupted the {result.mode})"
    return found


def point_rows(result: CapacityResult) -> list[list[str]]:
    """One row per load: verdict, requests, figures, each attainment as k/n and its lower bound, why."""
    out = []
    for p in result.points:
        att = "; ".join(f"{a.slo}: {a.k}/{a.n}, lower {a.lower:.3f} vs {a.target:g}" for a in p.attainments) or "-"
        out.append([f"{p.load:g}", "INTERRUPTED" if p.aborted else "PASS" if p.met else "FAIL", str(p.requests), _num(p.ttfa_p95_s), _num(p.c100),
                    _num(p.goodput_rps), att, p.why, p.run_dir])
    return out


POINT_HEADER = ["load", "met", "requests", "TTFA p95 s", "c100", "goodput req/s", "attainment (k/n, Wilson lower vs target)",
                "decided by", "run directory"]


def capacity_markdown(result: CapacityResult) -> str:
    """The Markdown summary (capacity.md, and what CI logs show)."""
    lines = [f"# capacity: {result.scenario}", "", "| figure | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in headline(result)]
    lines += ["", "| " + " | ".join(POINT_HEADER) + " |", "|" + "---|" * len(POINT_HEADER)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in point_rows(result)]
    lines += ["", f"Method: {result.method}."]
    lines += [f"- note: {n}" for n in result.notes]
    return "\n".join(lines) + "\n"


def _slo_lines(result: CapacityResult, metric_prefix: str, scale: float = 1.0) -> list[tuple[str, float]]:
    points = result.points
    scenario_slos = {}
    for p in points:
        for v in p.verdicts:
            scenario_slos[v["slo"]] = v["threshold"]
    out = []
    for key, threshold in scenario_slos.items():
        slo = parse_slo(key, threshold)
        if slo.metric.startswith(metric_prefix):
            out.append((f"SLO {slo.metric} {slo.op} {slo.threshold:g}", slo.threshold * scale))
    return out


def _series(result: CapacityResult, attr: str) -> tuple[np.ndarray, np.ndarray]:
    points = [p for p in result.points if not p.aborted]  # an interrupted run is no point of the curve
    x = np.array([p.load for p in points], dtype=float)
    y = np.array([np.nan if getattr(p, attr) is None else getattr(p, attr) for p in points], dtype=float)
    return x, y


def capacity_charts(result: CapacityResult) -> list[str]:
    """TTFA p95, c100 and goodput against load, with the SLO levels (inline SVG figures)."""
    xlabel = f"load: {result.key} ({result.unit})"
    x, ttfa = _series(result, "ttfa_p95_s")
    _, p50 = _series(result, "ttfa_p50_s")
    _, c100 = _series(result, "c100")
    _, good = _series(result, "goodput_rps")
    _, thr = _series(result, "throughput_rps")
    where = "" if result.capacity is None else f"capacity {result.key} = {result.capacity:g}"
    knee = "" if result.knee is None else f"knee of TTFA p95 at {result.knee:g}"
    caption = "; ".join(s for s in (where, knee) if s) or "no load met every SLO"
    return [
        chart("ttfa", charts.line_chart("TTFA against load", xlabel, "seconds", [("TTFA p95", x, ttfa), ("TTFA p50", x, p50)],
                                        hlines=_slo_lines(result, "ttfa_"), markers=True), caption),
        chart("c100", charts.line_chart("continuity c100 against load", xlabel, "share of requests", [("c100", x, c100)],
                                        hlines=_slo_lines(result, "c100"), ylim=(0, 1.02), markers=True),
              "share of successful requests whose longest playback stall is at most 100 ms"),
        chart("goodput", charts.line_chart("goodput against load", xlabel, "requests per second",
                                           [("goodput", x, good), ("throughput", x, thr)], markers=True),
              "goodput: successful requests meeting every per-request SLO, per second; throughput: successful requests per second"),
    ]


def capacity_html(result: CapacityResult) -> str:
    """capacity.html: the answer, the three charts, every point."""
    badge = "interrupted" if result.interrupted is not None else "PASS" if result.capacity is not None else "FAIL"
    body = ["<h2>Answer</h2>", html_table(headline(result), ["figure", "value"]), "<h2>Against load</h2>",
            *capacity_charts(result), "<h2>Points</h2>", html_table(point_rows(result), POINT_HEADER),
            f"<p>Method: {html.escape(result.method)}.</p>"]
    if result.notes:
        body.append("<div class='warn'>" + "<br>".join(html.escape(n) for n in result.notes) + "</div>")
    return page(f"capacity: {result.scenario}", badge, body)


def capacity_json(result: CapacityResult) -> str:
    """capacity.json (the model, indented)."""
    return result.model_dump_json(indent=2) + "\n"
