"""The lines every rendering of a run shares, computed from `run.json` alone (never torch or Locust).

`summary_rows` is the one list of lines the Markdown summary, the HTML page and the terminal
show: every metric of the metric table marked `summary`, in the table's order, with its value in
its unit, which way is better, and its definition — all read from `vvbench.artifacts.metrics`,
never restated here. `render_markdown` is the record's part of summary.md; the full report
(charts, continuity, warnings) is `vvbench.reports.document` and `vvbench.reports.page`.
`trust_lines` is the run's timing verdict (`run.json`'s `trust`: did the load generator's own
timing hold, which clocks the rows used, the stalls and the requests they overlapped), shown in
every rendering and the terminal view.
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
    if unit == "ms_s":  # seconds shown in milliseconds
        return f"{1000 * value:.1f} ms"
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


def _busy_host(run: dict) -> list[str]:
    """A warning when other work on the host took more than compare's share of it while requests were in flight."""
    from vvbench.reports.compare import host_busy

    why = host_busy((run.get("summary") or {}).get("host_other_cpu"), (run.get("host") or {}).get("cpu_count"))
    return [f"the host was busy: {why}, so these timings are partly the host's; vvbench compare refuses this run without --force"] if why else []


def trust_lines(run: dict) -> tuple[str, list[str]]:
    """(one-line timing verdict, its warnings) from `run["trust"]`: whether the load generator's own timing held,
    and whether other work kept the host busy."""
    trust = run.get("trust")
    if not trust:
        return "not watched (a run before schema 3)", _busy_host(run)
    clocks = ", ".join(f"{n} {k}" for k, n in sorted((trust.get("clocks") or {}).items())) or "no rows"
    lag = trust.get("loop_lag_max_s")
    facts = f"clocks: {clocks}; load-worker loop lag p99 {fmt(trust.get('loop_lag_p99_s'), 'ms_s')}, max {fmt(lag, 'ms_s')}"
    if trust.get("trusted"):
        return f"trusted ({facts})", list(trust.get("warnings") or []) + _busy_host(run)
    stalls = trust.get("stalls") or []
    head = (f"NOT TRUSTED: {len(stalls)} load-worker stall(s) over {1000 * trust['threshold_s']:g} ms ({facts})" if stalls
            else f"NOT TRUSTED ({facts})")
    return head, list(trust.get("warnings") or []) + _busy_host(run)


def formats(scenario: dict) -> str:
    """Each class's response format, e.g. `short: opus, long: mp3`."""
    return ", ".join(f"{c.get('name', '?')}: {c.get('response_format', 'wav')}" for c in scenario.get("classes") or []) or "NA"


def head_rows(run: dict) -> list[tuple[str, str]]:
    """The run's identity in a few lines: id, status, scenario, formats, target, preset, window, host, git."""
    target = run.get("target", {})
    scenario = run.get("scenario", {})
    return [
        ("run", run.get("run_id", "")), ("status", run.get("status", "")),
        ("scenario", f"{scenario.get('name', '')}: {scenario.get('description', '')}"),
        ("formats", formats(scenario)),
        ("target", f"{target.get('kind', '')} {target.get('url') or ''}".strip()),
        ("preset", str((run.get("runtime_config") or {}).get("preset", "NA"))),
        ("window", f"warm-up {scenario.get('warmup', 0):g} s + measured {scenario.get('duration') or 0:g} s"),
        ("host", f"{run.get('host', {}).get('hostname', '')}, {run.get('host', {}).get('cpu_count', '?')} CPUs"),
        ("git", str((run.get("git") or {}).get("sha") or "NA")),
        ("timing", trust_lines(run)[0]),
    ]


def render_markdown(run: dict) -> str:
    """summary.md: what a CI log shows."""
    lines = [f"# vvbench run {run.get('run_id', '')}", ""]
    lines += [f"- **{k}**: {v}" for k, v in head_rows(run)]
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


def html_table(rows, header, cls: str = "") -> str:
    """An HTML table of text cells (escaped); a cell that is PASS, FAIL or INTERRUPTED (or a verdict) gets that class, for colour."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td{_mark(c)}>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    attr = f" class='{cls}'" if cls else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _mark(cell) -> str:
    return f" class='{cell}'" if cell in ("PASS", "FAIL", "INTERRUPTED", "regressed", "improved", "equivalent", "inconclusive") else ""
