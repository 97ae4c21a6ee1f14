"""The tuner's plots: the history keeps Optuna's grey for infeasible trials and names them in its legend."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.colors as mcolors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import optuna  # noqa: E402
from optuna.visualization import matplotlib as ovm  # noqa: E402

from vvbench.tuner.plots import history_figure, write_plots  # noqa: E402


def _study():
    study = optuna.create_study(directions=["minimize", "maximize"], sampler=optuna.samplers.RandomSampler(seed=0))
    for ttfa, good, ok in [(0.5, 1.0, True), (0.2, 2.0, False), (0.3, 1.5, True), (0.1, 2.5, False)]:
        t = study.ask({"x": optuna.distributions.IntDistribution(0, 9)})
        t.set_constraint("quality_floor", -1.0 if ok else 1.0)  # as the tuner's _tell sets them
        study.tell(t, [ttfa, good])
    return study


def test_the_history_names_infeasible_trials_and_keeps_them_grey(tmp_path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        fig = history_figure(ovm, _study(), ["ttfa_p95_s", "goodput_rps"])
    try:
        ax = fig.axes[0]
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert "ttfa_p95_s" in labels and "infeasible" in labels, labels
        grey = [c for c in ax.collections if c.get_label() == "infeasible"]
        assert len(grey) == 1 and len(grey[0].get_offsets()) == 2
        assert mcolors.to_hex(grey[0].get_facecolors()[0]) == "#cccccc"
    finally:
        plt.close(fig)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        assert write_plots(_study(), tmp_path, ["ttfa_p95_s", "goodput_rps"]) == []
    assert {p.name for p in (tmp_path / "plots").iterdir()} == {"history.png", "pareto.png", "importances.png"}
