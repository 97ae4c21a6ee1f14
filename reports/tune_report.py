"""The report of a tune directory (`vvbench tune --out DIR`), rendered from its JSON files and plots.

Pure: it reads `summary.json`, `trials.json`, `pareto.json`, `importances.json`, `finalists.json`
(when the finalists were re-measured) and `plots/*.png`, and imports nothing of Optuna or the
tuner, so `vvbench report TUNE_DIR` stays light and re-renders a study's outcome anywhere the
directory is copied. Sections: the decision (recommended trial or the baseline, and why), baseline
vs recommended per metric with the finalists' ratio, bootstrap interval and verdict (or point
ratios, marked as not re-measured), the finalists, the Pareto front, importances, the trial
history, and the plots. HTML is one self-contained page (the PNGs inline as data: URIs).
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from vvbench.core.errors import InputError
from vvbench.reports.page import page
from vvbench.reports.render import html_table

PLOTS = (("pareto", "Pareto front (first two objectives; Optuna's plot, one point per trial, where the table above pools a config's trials)"), ("history", "Optimisation history"),
         ("importances", "Parameter importances (first objective)"))


def is_tune_dir(path: Path) -> bool:
    """Whether `path` looks like a tune directory (a summary with a study and a trials list)."""
    return (path / "summary.json").is_file() and (path / "trials.json").is_file()


def _read(path: Path, default=None):
    if not path.is_file():
        if default is not None:
            return default
        raise InputError(f"{path}: missing (not a complete tune directory)")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot be read as JSON ({exc})") from None


def load_tune(path: Path) -> dict:
    """Every JSON file of the tune directory as one dict; InputError naming a missing or corrupt file."""
    path = Path(path)
    data = {"summary": _read(path / "summary.json"), "trials": _read(path / "trials.json"),
            "pareto": _read(path / "pareto.json", []), "importances": _read(path / "importances.json", {}),
            "finalists": _read(path / "finalists.json", {})}
    data["plots"] = {name: str(path / "plots" / f"{name}.png") for name, _ in PLOTS if (path / "plots" / f"{name}.png").is_file()}
    return data


def _num(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def params_text(p: dict | None) -> str:
    """`k=v, ...`; a knob sampled as None is the runtime's default (threads: torch's own), so it reads `default`."""
    return ", ".join(f"{k}={'default' if v is None else _num(v)}" for k, v in (p or {}).items())


def _values(p: dict | None) -> str:
    return ", ".join(f"{k}={_num(v)}" for k, v in (p or {}).items())


def decision_line(data: dict) -> str:
    s = data["summary"]
    who = "the baseline" if s["recommended_trial"] == s["baseline_trial"] else f"trial {s['recommended_trial']}"
    return f"recommended: {who} — {s['why']}"


def comparison_rows(data: dict) -> tuple[list[str], list[list[str]]]:
    """Baseline vs recommended: with intervals from the finalists, else the study's point ratios."""
    s = data["summary"]
    vs = s.get("baseline_vs_finalist")
    if vs:
        name = vs["finalist"] + ("" if vs["recommended"] else " (best-ranked, not recommended)")
        header = ["metric", "baseline", name, "ratio", "95% interval", "verdict", "values (base/new)"]
        rows = [[c["metric"], _num(c["base"]), _num(c["new"]), _num(c["ratio"]),
                 f"[{_num(c['ci_low'])}, {_num(c['ci_high'])}]", c["verdict"], f"{c['n_base']}/{c['n_new']}"]
                for c in vs["changes"]]
        return header, rows
    header = ["objective", "baseline", "recommended", "ratio (one run each, no interval)"]
    base, best, ratios = s.get("baseline") or {}, s.get("recommended") or {}, s.get("ratio_recommended_to_baseline") or {}
    return header, [[k, _num(base.get(k)), _num(best.get(k)), _num(ratios.get(k))] for k in base]


def remeasured_text(changes: list[dict]) -> str:
    """A finalist's re-measured ratios to the baseline with their intervals: what the choice between finalists reads."""
    return "; ".join(f"{c['metric']} x{_num(c.get('ratio'))} [{_num(c.get('ci_low'))}, {_num(c.get('ci_high'))}]"
                     for c in changes) or "—"


def finalist_rows(data: dict) -> list[list[str]]:
    winner = data["finalists"].get("winner")
    return [[f.get("label", "") + (" (recommended)" if winner is not None and f.get("label") == winner else ""),
             _num(f.get("trial")), str(len(f.get("runs", []))), remeasured_text(f.get("changes") or []),
             ", ".join(f.get("improved", [])) or "—", ", ".join(f.get("regressed", [])) or "—",
             "yes" if f.get("beats_baseline") else "no", f.get("dropped") or ""]
            for f in data["finalists"].get("finalists", [])]


PARETO_HEADER = ["trial", "params", "values", "against the baseline (study values, no interval)", "mel SNR dB"]


def against_baseline(values: dict | None, summary: dict) -> str:
    """Each objective of a trial against the baseline's (as the study measured it), and whether that is better or worse
    for it: what a user gives up on one objective for another along the front (`ttfa_p95_s x5.63 worse, peak_rss_bytes
    x0.968 better`). A ratio where both values are above 0; otherwise the difference (a weighted objective can be
    negative, a stall or a goodput 0)."""
    base, dirs = summary.get("baseline") or {}, dict(zip(summary.get("objectives") or [], summary.get("directions") or []))
    parts = []
    for k, v in (values or {}).items():
        b = base.get(k)
        if v is None or b is None:
            continue
        ratio = v > 0 and b > 0
        change = _num(v / b) if ratio else f"{v - b:+.4g}"
        better = v < b if dirs.get(k) == "minimize" else v > b
        same = change in ("1", "+0", "-0")
        parts.append(f"{k} {'x' if ratio else ''}{change}" + ("" if same else " better" if better else " worse"))
    return ", ".join(parts) or "—"


def _pooled_note(trials: list[int]) -> str:
    return f" (mean of trials {', '.join(map(str, trials))})" if len(trials) > 1 else ""


def pareto_rows(data: dict) -> list[list[str]]:
    s = data["summary"]
    return [[str(t["number"]) + (" (baseline)" if t.get("baseline") else "") + _pooled_note(t.get("trials") or []),
             params_text(t["params"]), _values(t["values"]),
             "—" if t.get("baseline") else against_baseline(t["values"], s), _num(t.get("quality_db"))] for t in data["pareto"]]


IMPORTANCE_HEADER = ["objective", "importance per param", "rests on"]


def _basis(b: dict | None) -> str:
    """What one objective's importances rest on: the best trials (PED-ANOVA's top quantile) of how many."""
    if not b:
        return "—"  # a tune directory written before the basis was recorded
    best = b["best"]
    text = f"the best {b['top_quantile']:.0%}: {len(best)} of {b['complete']} complete trials (" + ", ".join(f"#{n}" for n in best) + ")"
    return text + ("; a hint only, from so few" if len(best) < 3 else "")


def importance_rows(data: dict) -> list[list[str]]:
    basis = data["summary"].get("importances_basis") or {}
    return [[obj, _values(vals), _basis(basis.get(obj))] for obj, vals in data["importances"].items()]


def _why(t: dict) -> str:
    """Why a trial is not a candidate: its failure reason, else the constraints it violated."""
    if t.get("reason"):
        return t["reason"]
    violated = t.get("violated") or []
    return "violates " + ", ".join(violated) if violated and not t.get("feasible") else ""


def trial_rows(data: dict) -> list[list[str]]:
    return [[str(t["number"]) + (" (baseline)" if t.get("baseline") else ""), t["state"], params_text(t["params"]),
             _values(t["values"]), _num(t.get("quality_db")), "yes" if t.get("feasible") else "no", _why(t)]
            for t in data["trials"]]


TRIAL_HEADER = ["trial", "state", "params", "values", "mel SNR dB", "feasible", "reason"]
FINALIST_HEADER = ["finalist", "trial", "runs", "re-measured / baseline: ratio [95% interval]", "improved", "regressed",
                   "beats baseline", "dropped"]


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    def cell(c):
        return str(c).replace("|", "\\|")

    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(cell(c) for c in r) + " |" for r in rows), ""]


def tune_markdown(data: dict) -> str:
    """The Markdown summary of a tune directory."""
    s = data["summary"]
    out = [f"# vvbench tune: study {s['study']}", "", decision_line(data), "",
           f"{s['trials']} trials: {s['counts']['complete']} complete ({s['feasible']} feasible), "
           f"{s['counts']['fail']} failed, {s['counts']['pruned']} pruned; objectives: {', '.join(s['objectives'])}", "",
           "## Baseline vs recommended", "", *_md_table(*comparison_rows(data))]
    if data["finalists"]:
        out += [f"## Finalists ({data['finalists'].get('repeats')} repeats each, interleaved with the baseline)", "",
                *_md_table(FINALIST_HEADER, finalist_rows(data))]
    out += ["## Pareto front", "", *_md_table(PARETO_HEADER, pareto_rows(data)),
            "## Importances", "", *_md_table(IMPORTANCE_HEADER, importance_rows(data)),
            "## Trials", "", *_md_table(TRIAL_HEADER, trial_rows(data))]
    return "\n".join(out)


def _img(path: str, caption: str) -> str:
    b64 = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return (f"<figure class='chart'><img alt='{html.escape(caption)}' style='max-width:100%' src='data:image/png;base64,{b64}'>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def tune_page(data: dict) -> str:
    """The self-contained HTML page of a tune directory."""
    s = data["summary"]
    badge = "improved" if s.get("beats_baseline") else "inconclusive" if s.get("remeasured") else "PASS"
    body = [f"<p><b>{html.escape(decision_line(data))}</b></p>", "<h2>Baseline vs recommended</h2>",
            html_table(comparison_rows(data)[1], comparison_rows(data)[0])]
    if data["finalists"]:
        body += [f"<h2>Finalists ({data['finalists'].get('repeats')} repeats, interleaved)</h2>",
                 html_table(finalist_rows(data), FINALIST_HEADER)]
    body += ["<h2>Pareto front</h2>", html_table(pareto_rows(data), PARETO_HEADER)]
    hidden = s.get("objectives", [])[2:]
    captions = {name: caption + (f": a front member that looks dominated here is better on {', '.join(hidden)}, not drawn"
                                 if name == "pareto" and hidden else "") for name, caption in PLOTS}
    body += [_img(data["plots"][name], captions[name]) for name, _ in PLOTS if name in data["plots"]]
    body += ["<h2>Importances</h2>", html_table(importance_rows(data), IMPORTANCE_HEADER),
             "<h2>Trials</h2>", html_table(trial_rows(data), TRIAL_HEADER)]
    return page(f"vvbench tune: study {s['study']}", badge, body)


def tune_json(data: dict) -> str:
    """Every file's data as one JSON document (the plots as their paths)."""
    return json.dumps(data, indent=2, default=str) + "\n"
