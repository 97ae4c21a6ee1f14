"""The tune directory: what a study found, written from the study itself (so it re-renders on resume).

    OUT/recommended.yaml   the recommended RuntimeConfig; its first line is the command that serves it
    OUT/trials.json        every trial: number, state, params, values, constraints, feasible, reason, run dir
    OUT/pareto.json        the feasible Pareto front of distinct configs, each the mean of its trials (`trials`)
    OUT/importances.json   parameter importances per objective (PED-ANOVA, Optuna's default evaluator; what
                           they rest on, the best 10% of the complete trials, is `importances_basis` in the summary)
    OUT/summary.json       counts (complete, failed, pruned), the recommendation and why, baseline vs
                           recommended with ratios (a config measured by several trials: their mean),
                           and the tuning time the hot-knob grouping saved
    OUT/finalists.json     the finalists' re-measurement against the baseline (`vvbench.tuner.finalists`):
                           per finalist its runs and, per objective, the ratio with its interval and verdict
    OUT/plots/*.png        Pareto front, optimisation history, importances (`vvbench.tuner.plots`)

With finalists, the recommendation is theirs: the finalist that beat the baseline, or the
baseline when none did. Without (`--finalists 0`, nothing feasible to re-measure, or nothing the
study saw better than the baseline) it is the study's own pick, and the summary says it was not
re-measured.
    OUT/runs/              every trial's run directory;  OUT/reference/  the reference audio

The time saved is estimated against a restart per trial: every trial applied hot (or unchanged)
would have cost the mean measured restart instead of its own apply time.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from vvbench.core.files import write_atomic
from vvbench.runtime.config import RuntimeConfig, dump_config
from vvbench.tuner.objectives import feasible, pareto, pooled, recommend


def _constraint_values(t: FrozenTrial) -> list[float]:
    return list((t.user_attrs.get("constraints") or {}).values())


def _reason(t: FrozenTrial) -> str | None:
    reason = t.user_attrs.get("reason")
    if reason is None and t.state == TrialState.FAIL:
        return f"stale: its worker ({t.user_attrs.get('worker', 'unknown')}) stopped sending heartbeats"
    return reason


def trial_row(t: FrozenTrial, objectives: list[str]) -> dict:
    """One trial as plain data (trials.json, --json, the CLI's line)."""
    cons = t.user_attrs.get("constraints") or {}
    return {"number": t.number, "state": t.state.name.lower(), "baseline": bool(t.user_attrs.get("baseline")),
            "params": t.params, "values": dict(zip(objectives, t.values)) if t.values else None,
            "constraints": cons, "feasible": feasible(cons.values()) if t.state == TrialState.COMPLETE else False,
            "violated": [k for k, v in cons.items() if v > 0], "reason": _reason(t), "worker": t.user_attrs.get("worker"),
            "warm_start": t.user_attrs.get("warm_start"), "surplus": bool(t.user_attrs.get("surplus")),
            "quality_db": t.user_attrs.get("quality_db"), "waveform_db": t.user_attrs.get("waveform_db"), "how": t.user_attrs.get("how"),
            "apply_s": t.user_attrs.get("apply_s"), "run_dir": t.user_attrs.get("run_dir"),
            "planned_bytes": t.user_attrs.get("planned_bytes")}


def _time_saved(trials: list[FrozenTrial]) -> dict:
    restarts = [t.user_attrs["apply_s"] for t in trials if t.user_attrs.get("how") in ("start", "restart")]
    hot = [t.user_attrs["apply_s"] for t in trials if t.user_attrs.get("how") in ("hot", "unchanged")]
    mean_restart = sum(restarts) / len(restarts) if restarts else None
    saved = sum(mean_restart - s for s in hot) if mean_restart is not None else None
    return {"restarts": len(restarts), "hot_or_unchanged": len(hot), "mean_restart_s": mean_restart,
            "saved_s": saved, "method": "each hot trial against the mean measured (re)start"}


TOP_QUANTILE = 0.1  # PED-ANOVA's: how a param's values among the best 10% of trials differ from all trials'


def _importances(study: optuna.Study, objectives: list[str]) -> tuple[dict, dict]:
    """Per objective, PED-ANOVA's importance per param, and what they rest on: the complete trials and the best
    `TOP_QUANTILE` of them, by PED-ANOVA's own cut (the inverted-CDF quantile, ties kept). In a small study the best
    10% is one or two trials, and two objectives whose best trial is the same get the same importances."""
    out, basis = {}, {}
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    evaluator = optuna.importance.PedAnovaImportanceEvaluator(target_quantile=TOP_QUANTILE)
    for i, name in enumerate(objectives):
        # PED-ANOVA ranks params for *low* target values: a maximised objective is negated
        sign = -1.0 if study.directions[i] == optuna.study.StudyDirection.MAXIMIZE else 1.0
        scored = [(sign * t.values[i], t.number) for t in complete if t.values and math.isfinite(t.values[i])]
        if scored:
            cut = sorted(v for v, _ in scored)[math.ceil(TOP_QUANTILE * len(scored)) - 1]
            basis[name] = {"complete": len(scored), "top_quantile": TOP_QUANTILE,
                           "best": sorted(n for v, n in scored if v <= cut)}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out[name] = optuna.importance.get_param_importances(study, evaluator=evaluator,
                                                                    target=lambda t, i=i, s=sign: s * t.values[i])
        except (ValueError, RuntimeError) as exc:  # too few complete trials, or a single-valued space
            out[name] = {"not computed": str(exc).splitlines()[0]}
    return out, basis


def _ratios(base: dict | None, best: dict | None) -> dict:
    if not base or not best:
        return {}
    return {k: (best[k] / base[k] if base[k] and math.isfinite(base[k]) else None) for k in base}


def _interval_rows(final: dict | None) -> dict | None:
    """The recommended finalist's (else the first-ranked one's) per-metric ratios and intervals against the baseline."""
    if not final or not final.get("finalists"):
        return None
    label = final.get("winner") or final["finalists"][0]["label"]
    row = next(r for r in final["finalists"] if r["label"] == label)
    keys = ("metric", "unit", "direction", "how", "base", "new", "ratio", "ci_low", "ci_high", "p_adjusted", "verdict", "n_base", "n_new")
    return {"finalist": label, "trial": row.get("trial"), "recommended": final.get("winner") == label,
            "changes": [{k: c.get(k) for k in keys} for c in row["changes"]]}


def complete_configs(trials: list[FrozenTrial]) -> dict[int, tuple[list[float], list[float]]]:
    """The complete trials' distinct configs, each as the mean of its trials (`vvbench.tuner.objectives.pooled`)."""
    return pooled([(t.number, t.params, t.values, t.user_attrs.get("constraints") or {})
                   for t in trials if t.state == TrialState.COMPLETE])


def feasible_configs(trials: list[FrozenTrial]) -> dict[int, list[float]]:
    """First trial number -> mean values of each distinct config every trial of which was feasible: the configs
    the pick, the front, the finalists and a warm start read."""
    return {n: values for n, (values, cons) in complete_configs(trials).items() if feasible(cons)}


def _config_values(number: int | None, configs: dict, by_number: dict, objectives: list[str]) -> dict | None:
    """Objective -> value of the config first measured by trial `number`: the mean of all its trials (`pooled`)."""
    if number in configs:
        return dict(zip(objectives, configs[number][0]))
    return by_number[number]["values"] if number in by_number else None


def _front_row(number: int, values, trials: list[FrozenTrial], objectives: list[str], by_number: dict) -> dict:
    """A Pareto-front member as pareto.json holds it: its first trial's row with the config's values (the mean of
    its trials, `pooled`) and, in `trials`, every complete trial of its params."""
    same = [t.number for t in trials if t.state == TrialState.COMPLETE and t.params == trials[number].params]
    return {**by_number[number], "values": dict(zip(objectives, values)), "trials": same}


def write_outputs(study: optuna.Study, out: Path, objectives: list[str], dirs: list[str], base: RuntimeConfig,
                  config_of, notes: list[str], final: dict | None = None, plots: bool = True) -> dict:
    """Write the tune directory (see the module docstring); returns the summary."""
    out.mkdir(parents=True, exist_ok=True)
    trials = study.get_trials(deepcopy=False)
    rows = [trial_row(t, objectives) for t in trials]
    complete = {t.number: (t.values, _constraint_values(t)) for t in trials if t.state == TrialState.COMPLETE}
    baseline = next((t.number for t in trials if t.user_attrs.get("baseline")), None)
    configs = complete_configs(trials)
    chosen, why = recommend(configs, dirs, baseline, objectives)
    if final is not None:
        chosen, why = final["winner_trial"], final["why"]
        write_atomic(out / "finalists.json", json.dumps(final, indent=2, default=str))
    else:
        why += " (not re-measured against the baseline: no finalists)"
        (out / "finalists.json").unlink(missing_ok=True)
    ok = {k: v for k, (v, c) in complete.items() if feasible(c)}
    distinct = feasible_configs(trials)  # the front as the pick sees it: configs, pooled
    front = sorted(pareto(distinct, dirs)) if distinct else []
    config = config_of(trials[chosen].params) if chosen is not None else base
    header = (f"# vvbench serve --config {out / 'recommended.yaml'}\n"
              f"# study {study.study_name}, trial {chosen}: {why}\n")
    write_atomic(out / "recommended.yaml", header + dump_config(config))
    by_number = {r["number"]: r for r in rows}
    base_values, best_values = (_config_values(n, configs, by_number, objectives) for n in (baseline, chosen))
    counts = {s: sum(1 for r in rows if r["state"] == s) for s in ("complete", "fail", "pruned", "running", "waiting")}
    summary = {"study": study.study_name, "objectives": objectives, "directions": dirs, "trials": len(rows), "counts": counts,
               "feasible": len(ok), "pruned": counts["pruned"], "recommended_trial": chosen, "why": why,
               "baseline_trial": baseline, "baseline": base_values, "recommended": best_values,
               "ratio_recommended_to_baseline": _ratios(base_values, best_values),
               "hot_knob_grouping": _time_saved(trials), "notes": notes,
               "remeasured": final is not None, "beats_baseline": bool(final and final.get("winner")),
               "finalists_repeats": final.get("repeats") if final else None,
               "baseline_vs_finalist": _interval_rows(final),
               "recommended_yaml": str(out / "recommended.yaml")}
    write_atomic(out / "trials.json", json.dumps(rows, indent=2, default=str))
    write_atomic(out / "pareto.json", json.dumps([_front_row(n, distinct[n], trials, objectives, by_number) for n in front],
                                                 indent=2, default=str))
    importances, summary["importances_basis"] = _importances(study, objectives)
    write_atomic(out / "importances.json", json.dumps(importances, indent=2, default=str))
    if plots:
        from vvbench.tuner.plots import write_plots

        summary["notes"] = [*notes, *write_plots(study, out, objectives)]
    write_atomic(out / "summary.json", json.dumps(summary, indent=2, default=str))
    return summary
