"""The terminal side of a run: the rich live display while it goes, the summary tables after.

The live display reads the snapshot `vvbench.harness.run` builds from the load processes' progress file
(elapsed, phase, requests, errors, in flight, TTFA p95 of the measured successful requests so
far); it is transient, so the summary that follows is what stays on screen.
"""

from __future__ import annotations

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.progress_bar import ProgressBar
from rich.table import Table

from vvbench.artifacts.metrics import GROUPS, METRICS, RTF_FORMULA, Metric, metric
from vvbench.reports.render import fmt, trust_lines, verdict_rows


class LiveView:
    """`with LiveView(console, title) as view: ... view.update(snapshot)`."""

    def __init__(self, console: Console, title: str):
        self.console = console
        self.title = title
        self.live: Live | None = None

    def _render(self, snap: dict):
        window = snap.get("window_s") or 1.0
        elapsed = snap.get("elapsed_s", 0.0)
        grid = Table.grid(padding=(0, 2))
        ttfa = snap.get(LIVE_METRIC.name)
        grid.add_row(f"[bold]{self.title}[/]", snap.get("phase", "starting"),
                     f"{elapsed:5.1f} / {window:.0f} s")
        grid.add_row(f"requests {snap.get('done', 0)} done, {snap.get('in_flight', 0)} in flight",
                     f"errors {snap.get('errors', 0)}", f"TTFA p95 {ttfa:.3f} s" if ttfa is not None else "TTFA p95 -")
        return Group(grid, ProgressBar(total=window, completed=min(elapsed, window), width=60))

    def __enter__(self) -> LiveView:
        self.live = Live(self._render({}), console=self.console, refresh_per_second=4, transient=True)
        self.live.start()
        return self

    def update(self, snapshot: dict) -> None:
        if self.live is not None:
            self.live.update(self._render(snapshot))

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.stop()


LIVE_METRIC = metric("ttfa_p95_s")  # what the load processes report while the run goes
LATENCY_LABELS = {"ttfa_s": "TTFA", "ttfb_s": "TTFB", "e2e_s": "E2E", "rtf": "RTF"}  # source column -> row label


def _latency_rows() -> dict[str, dict[str, Metric]]:
    """Source column -> {p50, p95, p99: metric}, for the percentile metrics of the latency group."""
    rows: dict[str, dict[str, Metric]] = {}
    for m in METRICS:
        if m.group == "latency" and m.summary and m.aggregation in ("p50", "p95", "p99"):
            rows.setdefault(m.column, {})[m.aggregation] = m
    return rows


def summary_tables(run: dict) -> list:
    """The percentile table of the latency metrics, one line per other group, the SLO verdicts and the timing verdict.

    Every figure is a row of the metric table with `summary` set (the same ones the Markdown and
    HTML summaries show), formatted in its unit.
    """
    scenario = run.get("scenario", {})
    counts = run.get("summary_counts", {})
    values = run.get("summary", {})
    table = Table(title=f"{scenario.get('name', '')}: {values.get('requests') or 0:.0f} measured requests "
                        f"({counts.get('warmup_rows', 0)} warm-up excluded, {counts.get('failed_rows', 0)} failed)")
    for col in ("", "p50", "p95", "p99"):
        table.add_column(col, justify="right")
    for column, by_q in _latency_rows().items():
        table.add_row(LATENCY_LABELS.get(column, column), *(fmt(values.get(by_q[q].name), by_q[q].unit) if q in by_q else ""
                                                            for q in ("p50", "p95", "p99")))
    facts = Table(show_header=False, box=None)
    for group in GROUPS:
        shown = [m for m in METRICS if m.group == group and m.summary and not (group == "latency" and m.column in LATENCY_LABELS)]
        if shown:
            facts.add_row(group, "  ".join(f"{m.name} {fmt(values.get(m.name), m.unit)}" for m in shown))
    out = [table, facts]
    verdicts = verdict_rows(run)
    if verdicts:
        slo = Table(title="SLOs")
        for col in ("objective", "value", "verdict"):
            slo.add_column(col)
        for name, value, verdict in verdicts:
            slo.add_row(name, value, f"[green]{verdict}[/]" if verdict == "PASS" else f"[red]{verdict}[/]")
        out.append(slo)
    verdict, warnings = trust_lines(run)
    style = "green" if (run.get("trust") or {}).get("trusted") else "yellow"
    out.append(f"timing: [{style}]{escape(verdict)}[/]")
    out += [f"  [yellow]{escape(w)}[/]" for w in warnings]
    out.append(f"[dim]{RTF_FORMULA}[/]")
    return out
