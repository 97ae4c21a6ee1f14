"""Charts as inline SVG: small matplotlib functions that take plain arrays and return markup.

Every chart of a report (a run, a comparison, later a capacity sweep or a history) is one call
here, so the look, the size and the byte-for-byte determinism are decided in one place: a
`Figure` built without pyplot (no global state, no GUI backend), saved as SVG with a fixed hash
salt (matplotlib derives clip-path and glyph ids from it) and no date in the metadata, so the
same data gives the same bytes. Text is drawn as paths: the page needs no font and looks the
same offline everywhere. Callers pass arrays that are already bounded in size (`reports.series`
thins them): an SVG holds every vertex it is given.

Time charts share `TimeAxis` (seconds since the run started, the warm-up shaded), so the request
timeline, throughput, memory and CPU line up when read one above the other.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib
import numpy as np
from matplotlib.figure import Figure

STYLE = {"svg.hashsalt": "vvbench", "svg.fonttype": "path", "font.size": 9, "axes.grid": True, "grid.alpha": 0.3,
         "axes.spines.top": False, "axes.spines.right": False, "figure.dpi": 100}
WIDTH_IN = 9.0
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.S)
_XMLNS = re.compile(r'\s+xmlns(:\w+)?="[^"]*"')
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b")


@dataclass(frozen=True)
class TimeAxis:
    """The x axis every time chart of one run uses: seconds since `t0`, warm-up until `warmup_end_s`."""

    t0: float
    span_s: float
    warmup_end_s: float = 0.0

    def apply(self, ax) -> None:
        ax.set_xlim(0.0, max(self.span_s, 1e-3))
        if self.warmup_end_s > 0:
            ax.axvspan(0.0, self.warmup_end_s, color="#999999", alpha=0.12, lw=0)
        ax.set_xlabel("seconds since the run started" + (" (shaded: warm-up)" if self.warmup_end_s > 0 else ""))


def figure(height_in: float = 3.0, right_axis: bool = False) -> Figure:
    """A new figure of the report's width (not attached to pyplot), with fixed margins in inches.

    Fixed margins rather than a layout engine: constrained layout doubles a chart's rendering
    time, and every chart of a report has the same furniture (a title, two axis labels).
    """
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(WIDTH_IN, height_in))
        fig.subplots_adjust(left=0.75 / WIDTH_IN, right=1 - (0.75 if right_axis else 0.2) / WIDTH_IN,
                            bottom=0.55 / height_in, top=1 - 0.3 / height_in)
        return fig


def to_svg(fig: Figure) -> str:
    """The figure as an inline `<svg>` element, deterministic for the same content."""
    buf = io.StringIO()
    with matplotlib.rc_context(STYLE):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    # Inline in HTML the namespaces are implied; dropping their declarations and the RDF block
    # leaves no URL of any kind in the page (SVG 2's plain `href` replaces `xlink:href`).
    text = _METADATA.sub("", text, count=1)
    text = _XMLNS.sub("", text)
    return text.replace("xlink:href=", "href=")


def _legend(ax) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=8, frameon=False)


def cdf_chart(title: str, xlabel: str, series: Sequence[tuple[str, np.ndarray, np.ndarray]],
              marks: Sequence[tuple[str, float]] = ()) -> str:
    """Empirical CDFs: each series is (label, x sorted, cumulative share); `marks` are labelled vertical lines (an SLO)."""
    with matplotlib.rc_context(STYLE):
        fig = figure(3.0)
        ax = fig.add_subplot()
        for i, (label, x, p) in enumerate(series):
            ax.step(x, p, where="post", color=COLORS[i % len(COLORS)], label=label, lw=1.4)
        for label, x in marks:
            ax.axvline(x, color="#555555", ls="--", lw=1)
            ax.annotate(label, (x, 0.02), xytext=(3, 0), textcoords="offset points", fontsize=8, color="#555555")
        ax.set_ylim(0, 1.01)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("share of requests ≤ x")
        ax.set_title(title, loc="left")
        _legend(ax)
        return to_svg(fig)


def bar_chart(title: str, categories: Sequence[str], series: Sequence[tuple[str, Sequence[float]]], ylabel: str,
              hline: tuple[str, float] | None = None) -> str:
    """Grouped bars: one group per category, one bar per series; `hline` a labelled reference level."""
    with matplotlib.rc_context(STYLE):
        fig = figure(3.0)
        ax = fig.add_subplot()
        x = np.arange(len(categories))
        width = 0.8 / max(1, len(series))
        for i, (label, values) in enumerate(series):
            ax.bar(x + (i - (len(series) - 1) / 2) * width, np.asarray(values, dtype=float), width, label=label,
                   color=COLORS[i % len(COLORS)])
        if hline is not None:
            ax.axhline(hline[1], color="#555555", ls="--", lw=1, label=hline[0])
        ax.set_xticks(x, categories)
        ax.set_xlim(-0.6, len(categories) - 0.4 + max(0, 2 - len(categories)))  # a lone group stays narrow
        ax.set_ylabel(ylabel)
        ax.set_title(title, loc="left")
        _legend(ax)
        return to_svg(fig)


def line_chart(title: str, xlabel: str, ylabel: str, series: Sequence[tuple[str, np.ndarray, np.ndarray]], *,
               time_axis: TimeAxis | None = None, right: Sequence[tuple[str, np.ndarray, np.ndarray]] = (),
               right_label: str = "", hlines: Sequence[tuple[str, float]] = (), step: bool = False,
               ylim: tuple[float, float] | None = None, markers: bool = False) -> str:
    """Lines (x, y) against a shared axis; `right` series on a second y axis; `hlines` labelled levels (SLO lines)."""
    with matplotlib.rc_context(STYLE):
        fig = figure(2.6, right_axis=bool(right))
        ax = fig.add_subplot()
        draw = ax.step if step else ax.plot
        kw = {"where": "post"} if step else {}
        style = {"marker": "o", "ms": 3} if markers else {}
        for i, (label, x, y) in enumerate(series):
            draw(x, y, color=COLORS[i % len(COLORS)], label=label, lw=1.2, **kw, **style)
        for label, level in hlines:
            ax.axhline(level, color="#555555", ls="--", lw=1, label=label)
        if ylim is not None:
            ax.set_ylim(*ylim)
        ax.ticklabel_format(axis="y", useOffset=False, style="plain")
        ax.set_ylabel(ylabel)
        ax.set_title(title, loc="left")
        if time_axis is not None:
            time_axis.apply(ax)
        else:
            ax.set_xlabel(xlabel)
        handles, labels = ax.get_legend_handles_labels()
        if right:
            ax2 = ax.twinx()
            ax2.grid(False)
            for i, (label, x, y) in enumerate(right, start=len(series)):
                (ax2.step if step else ax2.plot)(x, y, color=COLORS[i % len(COLORS)], label=label, lw=1.2, **kw)
            ax2.set_ylabel(right_label)
            ax2.set_ylim(bottom=0)
            more_h, more_l = ax2.get_legend_handles_labels()
            handles, labels = handles + more_h, labels + more_l
        if handles:
            ax.legend(handles, labels, loc="upper left", fontsize=8, frameon=False)
        return to_svg(fig)


def timeline_chart(title: str, axis: TimeAxis, starts: np.ndarray, ends: np.ndarray, first_audio: np.ndarray,
                   failed: np.ndarray, stalls: Sequence[tuple[int, float, float]]) -> str:
    """One bar per request (send to last byte, y = its row), a tick at first audio, red spans at each stall.

    `stalls` are (bar index, start, end) in the axis's seconds; `failed` marks bars drawn grey.
    """
    n = len(starts)
    with matplotlib.rc_context(STYLE):
        fig = figure(min(8.0, 2.0 + 0.02 * n))
        ax = fig.add_subplot()
        y = np.arange(n)
        lw = max(0.6, min(4.0, 300.0 / max(n, 1)))
        ok = ~failed
        ax.hlines(y[ok], starts[ok], ends[ok], color=COLORS[0], lw=lw, label="send → last byte")
        if failed.any():
            ax.hlines(y[failed], starts[failed], ends[failed], color="#aaaaaa", lw=lw, label="failed request")
        has_audio = np.isfinite(first_audio)
        ax.plot(first_audio[has_audio], y[has_audio], ls="none", marker="|", ms=max(3.0, lw * 2.5), color="#2ca02c",
                label="first audio")
        if stalls:
            rows, s0, s1 = (np.array(v) for v in zip(*stalls))
            ax.hlines(rows, s0, s1, color=COLORS[1], lw=lw * 1.6, label="playback stall")
        ax.set_ylim(n - 0.5 if n else 1, -0.5)
        ax.set_ylabel("request (start order)")
        ax.set_title(title, loc="left")
        axis.apply(ax)
        ax.grid(axis="y", visible=False)
        ax.legend(loc="upper right", fontsize=8, frameon=True, framealpha=0.8)
        return to_svg(fig)


def nice_step(span: float, target_bins: int) -> float:
    """A round bin width (1, 2 or 5 times a power of ten) giving about `target_bins` bins over `span`."""
    raw = max(span, 1e-9) / max(target_bins, 1)
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
