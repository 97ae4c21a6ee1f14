"""Markdown and HTML renderings of a run, computed from `run.json` alone (never torch or Locust).

`summary_rows` is the one list of lines both renderings show: every metric of the metric table
marked `summary`, in the table's order, with its value in its unit, which way is better, and its
definition — all read from `vvbench.artifacts.metrics`, never restated here. The HTML page is
self-contained (inline CSS, no scripts, no external resources).
"""

from __future__ import annotations

import html
import math

from vvbench.artifacts.metrics import METRICS, PERCENTILE_METHOD, RTF_FORMULA

SHOWN = tuple(m for m in METRICS if m.summary)


def fmt(value: float | None, unit: str) -> str:
    """A value with its unit, NA when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "NA"
    if unit == "B":
        return f"{value / 2**20:,.1f} MiB"
    if unit == "share":
        return f"{100 * value:.1f}%"
    if unit == "count":
        return f"{int(value)}"
    if unit == "s":
        return f"{value:.3f} s"
    if unit == "x":
        return f"{value:.3f}"
    return f"{value:.3g} {unit}"


def summary_rows(run: dict) -> list[tuple[str, str, str, str]]:
    """(metric, value, better, what it is) for the metrics a summary shows, in the table's order."""
    summary = run.get("summary", {})
    return [(m.name, fmt(summary.get(m.name), m.unit), m.better, m.description) for m in SHOWN]


def verdict_rows(run: dict) -> list[tuple[str, str, str]]:
    out = []
    for v in run.get("slos", []):
        value = "NA" if v["value"] is None else f"{v['value']:.4g}"
        out.append((f"{v['slo']} ({v['metric']} {v['op']} {v['threshold']:g})", value, "PASS" if v["passed"] else "FAIL"))
    return out


def _head(run: dict) -> list[tuple[str, str]]:
    target = run.get("target", {})
    scenario = run.get("scenario", {})
    return [
        ("run", run.get("run_id", "")), ("status", run.get("status", "")),
        ("scenario", f"{scenario.get('name', '')}: {scenario.get('description', '')}"),
        ("target", f"{target.get('kind', '')} {target.get('url') or ''}".strip()),
        ("preset", str((run.get("runtime_config") or {}).get("preset", "NA"))),
        ("window", f"warm-up {scenario.get('warmup', 0):g} s + measured {scenario.get('duration') or 0:g} s"),
        ("host", f"{run.get('host', {}).get('hostname', '')}, {run.get('host', {}).get('cpu_count', '?')} CPUs"),
        ("git", str((run.get("git") or {}).get("sha") or "NA")),
    ]


def render_markdown(run: dict) -> str:
    """summary.md: what a CI log shows."""
    lines = [f"# vvbench run {run.get('run_id', '')}", ""]
    lines += [f"- **{k}**: {v}" for k, v in _head(run)]
    if run.get("error"):
        lines.append(f"- **error**: {run['error']}")
    lines += ["", "| metric | value | better | definition |", "|---|---|---|---|"]
    lines += [f"| {n} | {v} | {b} | {d} |" for n, v, b, d in summary_rows(run)]
    verdicts = verdict_rows(run)
    if verdicts:
        lines += ["", "| SLO | value | verdict |", "|---|---|---|"]
        lines += [f"| {s} | {v} | {r} |" for s, v, r in verdicts]
    lines += ["", f"{RTF_FORMULA}. Percentiles: {PERCENTILE_METHOD}. Failed requests are never in latency statistics; "
              "warm-up requests are excluded.", ""]
    return "\n".join(lines)


def _table(rows, header) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(run: dict) -> str:
    """report.html: one self-contained page (inline CSS, no scripts)."""
    title = f"vvbench run {run.get('run_id', '')}"
    verdicts = verdict_rows(run)
    passed = run.get("passed")
    badge = "PASS" if passed else ("FAIL" if passed is False else run.get("status", ""))
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        ("<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse;margin:1em 0}"
         "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}th{background:#f4f4f4}"
         ".PASS{color:#176f2c}.FAIL{color:#b00020}</style></head><body>"),
        f"<h1>{html.escape(title)} <span class='{html.escape(str(badge))}'>{html.escape(str(badge))}</span></h1>",
        _table(_head(run) + ([("error", run["error"])] if run.get("error") else []), ("", "")),
        "<h2>Summary</h2>", _table(summary_rows(run), ("metric", "value", "better", "definition")),
    ]
    if verdicts:
        parts += ["<h2>SLOs</h2>", _table(verdicts, ("SLO", "value", "verdict"))]
    parts += [f"<p>{html.escape(RTF_FORMULA)}. Percentiles: {html.escape(PERCENTILE_METHOD)}. Failed requests are never in "
              "latency statistics; warm-up requests are excluded.</p>",
              "</body></html>"]
    return "\n".join(parts)
