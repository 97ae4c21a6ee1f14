"""report.html: one self-contained page of a run report (inline CSS and SVG; no script, no URL).

`render_page(report)` lays out a `RunReport` (`vvbench.reports.document`): the verdict and any
warnings first, then the summary table (units and which way is better, from the metric table)
and the SLOs, the latency CDFs, RTF by text length, the request timeline, throughput and
in-flight requests, memory and CPU on the same time axis, continuity against prebuffer, and the
run's facts. Every chart is a `<figure class="chart">` holding an inline `<svg>`; the page loads
nothing, so it reads the same offline, and the same report gives the same bytes.
"""

from __future__ import annotations

import html
import json

import numpy as np

from vvbench.reports import charts
from vvbench.reports.document import PERCENTILES, RunReport, continuity_rows, percentile_table
from vvbench.reports.render import head_rows, html_table, summary_rows, verdict_rows
from vvbench.reports.series import cdf_points

CSS = ("body{font-family:system-ui,sans-serif;margin:2em auto;max-width:62em;padding:0 1em;color:#222}"
       "table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:.25em .55em;text-align:left;vertical-align:top}"
       "th{background:#f4f4f4}.PASS,.improved{color:#176f2c;font-weight:600}.FAIL,.regressed{color:#b00020;font-weight:600}"
       ".inconclusive,.interrupted,.INTERRUPTED{color:#8a6d00}.warn{background:#fff4e5;border-left:4px solid #e69500;padding:.5em 1em}"
       "figure.chart{margin:1em 0}figure.chart svg{width:100%;height:auto}figcaption{font-size:.9em;color:#555}"
       "pre{background:#f7f7f7;padding:.6em;overflow-x:auto;font-size:.85em}h1 span{font-size:.7em}")


def chart(name: str, svg: str, caption: str = "") -> str:
    """One chart block: a named figure with its inline SVG and a caption."""
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f"<figure class='chart' id='chart-{name}'>{svg}{cap}</figure>"


def page(title: str, badge: str, body: list[str]) -> str:
    """The page shell: the title with a PASS/FAIL-like badge, the inline style, the body parts."""
    return "\n".join([
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{html.escape(title)} <span class='{html.escape(badge)}'>{html.escape(badge)}</span></h1>",
        *body, "</body></html>", ""])


def _latency(report: RunReport) -> list[str]:
    slos = {v["metric"]: v["threshold"] for v in report.record.get("slos", [])}
    table = [[column, *values] for column, values in percentile_table(report)]
    out = ["<h2>Latency</h2>", html_table(table, ["successful requests", *(f"p{q}" for q in PERCENTILES)])]
    for column, label in (("ttfa_s", "time to first audio"), ("e2e_s", "end to end (last byte)")):
        values = report.latency[column]
        x, p = cdf_points(values)
        slo = [(f"SLO {m} ≤ {t:g} s", t) for m, t in slos.items() if m.startswith(column.removesuffix("_s") + "_p")]
        # an SLO far beyond every value would squash the curve into the left edge: named, not drawn
        top = float(x[-1]) if len(x) else 0.0
        marks = [(name, t) for name, t in slo if t <= 1.5 * top]
        off = "; ".join(f"{name}: beyond every value" for name, t in slo if t > 1.5 * top)
        out.append(chart(column, charts.cdf_chart(f"{label}: CDF", "seconds", [(column, x, p)] if len(x) else [], marks),
                         f"{int(np.isfinite(values).sum()):,} successful measured requests" + (f" ({off})" if off else "")))
    return out


def _rtf(report: RunReport) -> list[str]:
    b = report.rtf_buckets
    if not b:
        return ["<h2>RTF by text length</h2><p>No successful measured requests.</p>"]
    svg = charts.bar_chart("real-time factor by text length", [f"{x['chars']}\n(n={x['n']:,})" for x in b],
                           [("p50", [x["rtf_p50"] for x in b]), ("p95", [x["rtf_p95"] for x in b])], "rtf (e2e_s / audio_s)",
                           hline=("real time (rtf = 1)", 1.0))
    return ["<h2>RTF by text length</h2>", chart("rtf", svg, "characters of input text; below 1 is faster than real time")]


def _over_time(report: RunReport) -> list[str]:
    axis, tl, tp, res = report.axis, report.timeline, report.throughput, report.resources
    out = ["<h2>Over time</h2>"]
    if tl.note:
        out.append(f"<p class='warn'>{html.escape(tl.note)}.</p>")
    out.append(chart("timeline", charts.timeline_chart("requests: send → last byte", axis, tl.starts, tl.ends, tl.first_audio,
                                                        tl.failed, tl.stalls),
                     f"tick: first audible audio; red: a playback stall at the run's prebuffer "
                     f"({report.continuity.own_ms:g} ms); grey: failed requests"))
    out.append(chart("throughput", charts.line_chart(
        "throughput and requests in flight", "", "successful requests finished / s",
        [("finished / s", tp["t_s"], tp["done_per_s"])], time_axis=axis, step=True,
        right=[("in flight", tp["edges_s"], tp["inflight"])], right_label="requests in flight"),
        f"per {float(tp['bin_s'][0]):g} s bin; in flight counted at each bin's start"))
    memory = [(label, res[f"{c}.t_s"], res[c] / 2**20) for c, label in (("rss_bytes", "service RSS"), ("gpu_mem_used_bytes", "GPU memory used"))
              if c in res]
    if memory:
        out.append(chart("memory", charts.line_chart("memory", "", "MiB", memory, time_axis=axis), "maximum per bin"))
    else:
        out.append("<p>No memory samples.</p>")
    if "sys_cpu_idle" in res:
        out.append(chart("cpu", charts.line_chart("system CPU idle", "", "idle share", [("CPU idle", res["sys_cpu_idle.t_s"], res["sys_cpu_idle"])],
                                                  time_axis=axis, ylim=(0, 1.02)), "mean per bin"))
    return out


def _continuity(report: RunReport) -> list[str]:
    c = report.continuity
    out = ["<h2>Continuity against prebuffer</h2>"]
    if c.note:
        return out + [f"<p>{html.escape(c.note)}.</p>"]
    x = np.array(c.prebuffers_ms)
    lines = [(m, x, np.array([np.nan if v is None else v for v in c.values[m]])) for m in c.metrics]
    svg = charts.line_chart("continuity against prebuffer", "prebuffer (ms)", "share of successful requests", lines,
                            hlines=[], ylim=(0, 1.02), markers=True)
    out.append(chart("continuity", svg, "re-simulated from each request's stored arrival timeline; "
                                        "cN = share whose longest stall is at most N ms"))
    out.append(html_table(continuity_rows(report), ["prebuffer", *c.metrics]))
    return out


def _facts(record: dict) -> list[str]:
    host = record.get("host") or {}
    gpus = host.get("gpus") or []
    gpu = "; ".join(f"{g.get('name', 'GPU')} ({g.get('memory_total_bytes', 0) / 2**30:.0f} GiB, driver {g.get('driver', '?')})"
                    for g in gpus) or f"none ({host.get('nvml') or 'not recorded'})"
    versions = ", ".join(f"{k} {v}" for k, v in (host.get("versions") or {}).items() if v)
    formulas = record.get("formulas") or {}
    load, window = record.get("load") or {}, record.get("window") or {}
    rows = [
        ("host", f"{host.get('hostname', '?')}: {host.get('cpu_model') or '?'}, {host.get('cpu_count', '?')} CPUs, "
                 f"{(host.get('memory_bytes') or 0) / 2**30:.1f} GiB, load at start {host.get('loadavg_at_start')}"),
        ("platform", f"{host.get('platform', '?')}, Python {host.get('python', '?')}"),
        ("GPU", gpu), ("versions", versions or "NA"),
        ("git", f"{(record.get('git') or {}).get('sha') or 'NA'}" + (" (dirty)" if (record.get("git") or {}).get("dirty") else "")),
        ("load", f"{load.get('mode') or 'NA'}, {load.get('workers', 1)} worker(s), sampling at {load.get('sample_hz', '?')} Hz"),
        ("window", f"start {window.get('start_at')}, warm-up end {window.get('warmup_end')}, end {window.get('window_end')} (epoch s)"),
        ("rows", ", ".join(f"{k} {v}" for k, v in (record.get("summary_counts") or {}).items())),
        ("RTF", formulas.get("rtf", "")), ("percentiles", formulas.get("percentile", "")),
    ]
    return ["<h2>Facts</h2>", html_table(rows, ["", ""]),
            "<h3>Runtime config</h3>", f"<pre>{html.escape(json.dumps(record.get('runtime_config'), indent=2))}</pre>",
            "<h3>Scenario</h3>", f"<pre>{html.escape(json.dumps(record.get('scenario'), indent=2))}</pre>",
            "<h3>Target</h3>", f"<pre>{html.escape(json.dumps(record.get('target'), indent=2))}</pre>"]


def render_page(report: RunReport) -> str:
    """The whole page (see the module docstring)."""
    record = report.record
    passed = record.get("passed")
    badge = "PASS" if passed else ("FAIL" if record.get("status") in ("ok", "slo_failed") else str(record.get("status", "")))
    body = [html_table(head_rows(record), ["", ""])]
    body += ["<h2>Notes and warnings</h2><ul class='warn'>" + "".join(f"<li>{html.escape(w)}</li>" for w in report.warnings) + "</ul>"
             if report.warnings else ""]
    verdicts = verdict_rows(record)
    if verdicts:
        body += ["<h2>SLOs</h2>", html_table(verdicts, ["SLO", "value", "verdict"])]
    body += ["<h2>Summary</h2>", html_table(summary_rows(record), ["metric", "value", "better", "definition"]),
             f"<p>Failed requests are never in latency statistics; warm-up requests are excluded. "
             f"{html.escape(record.get('formulas', {}).get('rtf', ''))}.</p>"]
    body += _latency(report) + _rtf(report) + _over_time(report) + _continuity(report) + _facts(record)
    return page(f"vvbench run {record.get('run_id', '')}", badge, [b for b in body if b])
