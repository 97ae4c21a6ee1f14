"""The terminal side of a run: the rich live display while it goes, the summary tables after.

The live display reads the snapshot `vvbench.harness.run` builds from the load processes' progress file
(elapsed, phase, requests, errors, in flight, TTFA p95 of the measured successful requests so
far); it is transient, so the summary that follows is what stays on screen.
"""

from __future__ import annotations

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table

from vvbench.artifacts.metrics import RTF_FORMULA
from vvbench.reports.render import fmt, verdict_rows


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
        ttfa = snap.get("ttfa_p95_s")
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


def _value(run: dict, name: str) -> str:
    defs = {m["name"]: m for m in run.get("metrics", [])}
    return fmt(run.get("summary", {}).get(name), defs[name]["unit"]) if name in defs else "NA"


def summary_tables(run: dict) -> list:
    """A compact summary (percentile rows, then single figures) and the SLO verdicts."""
    scenario = run.get("scenario", {})
    counts = run.get("summary_counts", {})
    table = Table(title=f"{scenario.get('name', '')}: {run.get('summary', {}).get('requests') or 0:.0f} measured requests "
                        f"({counts.get('warmup_rows', 0)} warm-up excluded, {counts.get('failed_rows', 0)} failed)")
    for col in ("", "p50", "p95", "p99"):
        table.add_column(col, justify="right")
    for label, stem, unit in (("TTFA", "ttfa", "_s"), ("TTFB", "ttfb", "_s"), ("E2E", "e2e", "_s"), ("RTF", "rtf", "")):
        table.add_row(label, *(_value(run, f"{stem}_p{q}{unit}") for q in (50, 95, 99)))
    facts = Table(show_header=False, box=None)
    for label, names in (("continuity c50 / c100 / c200", ("c50", "c100", "c200")),
                         ("success", ("success",)), ("throughput / goodput", ("throughput_rps", "goodput_rps")),
                         ("audio delivered", ("audio_s_per_s",)), ("peak memory RSS / GPU", ("peak_rss_bytes", "peak_gpu_bytes")),
                         ("CPU idle while in flight", ("cpu_idle_inflight",)), ("open-loop send lag p95", ("send_lag_p95_s",))):
        facts.add_row(label, " / ".join(_value(run, n) for n in names))
    out = [table, facts]
    verdicts = verdict_rows(run)
    if verdicts:
        slo = Table(title="SLOs")
        for col in ("objective", "value", "verdict"):
            slo.add_column(col)
        for name, value, verdict in verdicts:
            slo.add_row(name, value, f"[green]{verdict}[/]" if verdict == "PASS" else f"[red]{verdict}[/]")
        out.append(slo)
    out.append(f"[dim]{RTF_FORMULA}[/]")
    return out
