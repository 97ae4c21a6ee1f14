"""Plots of a study as PNG files in the tune directory, drawn by Optuna's matplotlib backend.

    OUT/plots/pareto.png        the Pareto front over the first two objectives (feasible trials)
    OUT/plots/history.png       optimisation history of each objective (one panel per objective)
    OUT/plots/importances.png   parameter importances of the first objective

Optuna marks its matplotlib plots experimental; the `ExperimentalWarning` is silenced here, for
these calls only, so that `-W error` elsewhere still sees every other warning. Matplotlib runs on
the non-interactive Agg backend. A plot that cannot be drawn (too few complete trials, one
objective for a front) is skipped and named in the returned notes; `vvbench report` renders the
files that exist.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import optuna
from optuna.trial import TrialState


def _save(ax_or_axes, path: Path) -> None:
    import matplotlib.pyplot as plt

    ax = ax_or_axes.flat[0] if hasattr(ax_or_axes, "flat") else ax_or_axes
    fig = ax.figure
    fig.set_size_inches(7, 4.5)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_plots(study: optuna.Study, out: Path, objectives: list[str]) -> list[str]:
    """Write the plots (see the module docstring); returns notes for the plots that were skipped."""
    import matplotlib

    matplotlib.use("Agg")
    from optuna.visualization import matplotlib as ovm

    folder = out / "plots"
    folder.mkdir(parents=True, exist_ok=True)
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    notes = []
    jobs = {"history": lambda: _history(ovm, study, objectives, folder / "history.png")}
    if len(objectives) >= 2:
        jobs["pareto"] = lambda: _save(ovm.plot_pareto_front(
            study, targets=lambda t: (t.values[0], t.values[1]), target_names=objectives[:2],
            include_dominated_trials=True), folder / "pareto.png")
    else:
        notes.append("plots: no Pareto front for a single objective")
    # PED-ANOVA ranks params for low target values: a maximised objective is negated
    sign = -1.0 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else 1.0
    jobs["importances"] = lambda: _save(ovm.plot_param_importances(
        study, target=lambda t: sign * t.values[0], target_name=objectives[0]), folder / "importances.png")
    for name, job in jobs.items():
        if len(complete) < 2:
            notes.append(f"plots: {name} needs at least 2 complete trials")
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                warnings.filterwarnings("ignore", message="PedAnovaImportanceEvaluator")  # the target is signed above
                job()
        except (ValueError, RuntimeError) as exc:
            notes.append(f"plots: {name} not drawn ({str(exc).splitlines()[0]})")
    return notes


def _history(ovm, study: optuna.Study, objectives: list[str], path: Path) -> None:
    import matplotlib.pyplot as plt

    fig = history_figure(ovm, study, objectives)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def history_figure(ovm, study: optuna.Study, objectives: list[str]):
    """One panel per objective, each as Optuna draws it (feasible trials coloured, infeasible grey, labelled)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(objectives), 1, squeeze=False, figsize=(7, 2.6 * len(objectives)))
    for i, name in enumerate(objectives):
        single = ovm.plot_optimization_history(study, target=lambda t, i=i: t.values[i], target_name=name)
        src = single.figure
        for line in single.get_lines():
            axes[i, 0].plot(*line.get_data(), color=line.get_color(), label=line.get_label())
        for coll in single.collections:
            xy = coll.get_offsets()
            if len(xy):  # Optuna draws infeasible trials grey and leaves them unlabelled: keep the grey, name it
                label = coll.get_label()
                axes[i, 0].scatter(xy[:, 0], xy[:, 1], s=14, color=coll.get_facecolors()[:1],
                                   label="infeasible" if label.startswith("_") else label)
        axes[i, 0].set_ylabel(name)
        axes[i, 0].legend(fontsize=7, loc="best")
        plt.close(src)
    axes[-1, 0].set_xlabel("trial")
    fig.suptitle("Optimisation history")
    fig.tight_layout()
    return fig
