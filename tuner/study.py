"""The study: an Optuna storage, and the ask/tell loop that groups trials by server config.

`open_study` creates or resumes a named study in an Optuna storage URL (`sqlite:///tune.db`,
`postgresql+psycopg://...`); an unreachable storage, a study that exists without `--resume`, or
one to resume that does not exist is a `ConfigError` of one line.

`Tuner.run` is the loop. The caller owns it (ask/tell), which is what lets trials be grouped by
what is expensive to change: when a trial is asked with no trial waiting, it leads a group and
`hot_trials - 1` followers are enqueued with its restart-only params fixed, so the sampler
varies only hot knobs for them and they run on the same warm service. A new study gets the
baseline (the base config's values) enqueued as trial 0, then the reference config's probe
audio is recorded (or read back on resume). Every finished trial is counted towards `trials`
(complete, failed and pruned alike) except those cut short by Ctrl-C: they are recorded as
failed with `interrupted` set, the service is stopped, and `KeyboardInterrupt` goes on to the
caller, so `--resume` continues where it stopped.

Several workers (each with its own target) may share one study in one storage (PostgreSQL):
each loops while the counted trials plus those RUNNING anywhere are fewer than `trials`; one that
asks for a trial when another worker took the last slot in between tells it back as a failed
`surplus` trial (not counted), so the study ends with exactly `trials` counted trials and no
trial is run twice (Optuna hands each trial, enqueued or sampled, to one `ask`). Every trial
records its `worker` (host:pid).

Stale trials: with `heartbeat_s`, the storage runs Optuna's heartbeat (`RDBStorage`
`heartbeat_interval`, `grace_period` = 3 beats); each trial in flight sends one every
`heartbeat_s` from a thread, and a RUNNING trial whose last beat is older than the grace period
is *stale* — its worker died or was killed — and is failed (`optuna.storages.fail_stale_trials`)
by whichever worker next asks for a trial, so it neither blocks the count nor keeps penalising its
region for the sampler.

Warm start: a new study given `warm_from` (another study) enqueues that study's feasible Pareto
set after the baseline (`vvbench.tuner.warm`).
"""

from __future__ import annotations

import os
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.storages._heartbeat import get_heartbeat_thread
from optuna.trial import TrialState

from vvbench.artifacts.scenarios import Scenario
from vvbench.core.audio import SAMPLE_RATE
from vvbench.core.errors import ConfigError
from vvbench.core.interrupts import interrupted_by
from vvbench.runtime.config import RuntimeConfig, merge, validate_config
from vvbench.tuner.finalists import BASELINE, decide, pick_finalists, remeasure
from vvbench.tuner.objectives import constraints, directions, feasible, objective_value
from vvbench.tuner.outputs import complete_configs, feasible_configs
from vvbench.tuner.quality import Reference, scenario_probes, synthesise
from vvbench.tuner.space import SearchSpace, baseline_params, params_to_knobs, reference_knobs
from vvbench.tuner.trials import Server, TrialContext, TrialOutcome, run_trial
from vvbench.tuner.warm import warm_start


def _safe(url: str) -> str:
    """The storage URL without a password."""
    head, sep, tail = url.partition("@")
    if not sep or "://" not in head:
        return url
    scheme, _, cred = head.partition("://")
    return f"{scheme}://{cred.split(':')[0]}@{tail}"


def rdb_storage(url: str, heartbeat_s: int | None = None) -> optuna.storages.RDBStorage:
    """An RDB storage; with `heartbeat_s`, trials send a heartbeat and a silent one is stale after 3 beats."""
    if not heartbeat_s:
        return optuna.storages.RDBStorage(url)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(url, heartbeat_interval=heartbeat_s, grace_period=3 * heartbeat_s)


STARTUP_SHARE = 0.25  # of the study's trials drawn at random before the model takes over the rest
STARTUP_MAX = 10  # Optuna's own default


def startup_trials(trials: int | None) -> int:
    """Random start-up trials before the sampler's model takes over: a quarter of the study's `trials` (2..10).

    Optuna's default, 10, is the whole budget of a short study: with `--trials 8` or 12 every trial
    (the baseline aside) was random search (bench/tune_sample_efficiency.py measured TPE identical
    to random search trial for trial at 6 trials).
    """
    if not trials:
        return STARTUP_MAX
    return max(2, min(STARTUP_MAX, round(STARTUP_SHARE * trials)))


class TunerSampler(optuna.samplers.GPSampler):
    """Optuna's Gaussian-process sampler (seeded, `startup` random trials first), with TPE behind it.

    A trial costs a measured run, so the sampler that needs fewest of them wins: replayed over a
    recorded grid (bench/tune_sample_efficiency.py) GP found a point within 5% of the grid's best
    in 5 of 10 seeds at a fifth of the grid (10 of 10 with noiseless trials), TPE in 0 (3). GP reads the constraints set with
    `trial.set_constraint` and refuses a study whose trials carry different constraint names (one
    resumed under another scenario's SLOs or another `--memory-budget`); such a study is sampled
    by TPE instead (univariate, the sum of violations as its constraint), so the search goes on.
    """

    def __init__(self, seed: int | None, startup: int):
        super().__init__(seed=seed, n_startup_trials=startup)
        self.tpe = optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)

    @staticmethod
    def mixed_constraints(study: optuna.Study) -> bool:
        names = {frozenset(t.constraints) for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))}
        return len(names) > 1

    def sample_relative(self, study, trial, search_space):
        if self.mixed_constraints(study):
            return {}
        return super().sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        if self.mixed_constraints(study):
            return self.tpe.sample_independent(study, trial, param_name, param_distribution)
        return super().sample_independent(study, trial, param_name, param_distribution)


def tuner_sampler(seed: int | None, trials: int | None) -> TunerSampler:
    """The study's sampler: Gaussian process (seeded) with a start-up phase sized to the trial budget."""
    return TunerSampler(seed, startup_trials(trials))


def open_study(storage: str, name: str, objectives: list[str], *, resume: bool, seed: int | None = None,
               heartbeat_s: int | None = None, trials: int | None = None) -> optuna.Study:
    """Create the study `name` in `storage`, or load it with `resume` (see the module docstring)."""
    try:
        rdb = rdb_storage(storage, heartbeat_s)
        names = {s.study_name for s in optuna.get_all_study_summaries(rdb, include_best_trial=False)}
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy, driver and URL errors all mean "cannot open"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"--storage {_safe(storage)}: cannot open the study storage ({first})") from None
    sampler = tuner_sampler(seed, trials)
    if name in names and not resume:
        raise ConfigError(f"study {name!r} already exists in {_safe(storage)}: pass --resume to continue it, or name another --study")
    if name not in names and resume:
        raise ConfigError(f"--resume: no study {name!r} in {_safe(storage)} (it has: {', '.join(sorted(names)) or 'none'})")
    if resume:
        study = optuna.load_study(study_name=name, storage=rdb, sampler=sampler)
        saved = study.user_attrs.get("objectives")
        if saved != objectives:
            raise ConfigError(f"--resume: study {name!r} optimises {saved}, not {objectives}; give the same --objective")
        return study
    study = optuna.create_study(study_name=name, storage=rdb, sampler=sampler, directions=directions(objectives))
    study.set_user_attr("objectives", objectives)
    return study


def load_other_study(storage: str, name: str) -> optuna.Study:
    """An existing study to read (warm start); ConfigError of one line when it is not there."""
    try:
        rdb = optuna.storages.RDBStorage(storage)
        names = {s.study_name for s in optuna.get_all_study_summaries(rdb, include_best_trial=False)}
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy, driver and URL errors all mean "cannot open"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"--warm-start-storage {_safe(storage)}: cannot open the study storage ({first})") from None
    if name not in names:
        raise ConfigError(f"--warm-start: no study {name!r} in {_safe(storage)} (it has: {', '.join(sorted(names)) or 'none'})")
    return optuna.load_study(study_name=name, storage=rdb)


def counted(study: optuna.Study) -> int:
    """Trials that count towards `--trials`: every finished one not cut short by Ctrl-C nor surplus."""
    done = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    return sum(1 for t in study.get_trials(deepcopy=False, states=done)
               if not t.user_attrs.get("interrupted") and not t.user_attrs.get("surplus"))


def _claimed(study: optuna.Study) -> int:
    """Counted trials plus those running now (on any worker)."""
    return counted(study) + len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))


def fail_stale(study: optuna.Study) -> None:
    """Fail the RUNNING trials whose worker stopped its heartbeat (a no-op without heartbeats)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def worker_id() -> str:
    """This worker's name in the trials' `worker` attribute: host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def finalist_candidates(trials: list, baseline) -> dict[int, list[float]]:
    """First trial number -> mean values of each distinct feasible config (`pooled`), the baseline's params left
    out: re-measuring those measures the baseline."""
    return {n: values for n, values in feasible_configs(trials).items()
            if not (baseline is not None and trials[n].params == baseline.params)}


def baseline_values(trials: list, baseline) -> list[float] | None:
    """The baseline config's values as the study saw them, the mean over every complete trial of its params
    (`pooled`); None when it was infeasible: what it dominates may still be the best there is."""
    values, cons = next(vc for n, vc in complete_configs(trials).items() if trials[n].params == baseline.params)
    return values if feasible(cons) else None


@dataclass
class Tuner:
    """One tuning worker: a study, a space, a scenario and a target (see the module docstring)."""

    study: optuna.Study
    space: SearchSpace
    scenario: Scenario
    base: RuntimeConfig
    target_spec: Any
    out: Path
    objectives: list[str]
    trials: int
    floor_db: float = 30.0
    budget_bytes: int | None = None
    hot_trials: int = 3
    timeout_s: float | None = None
    cuda: bool = False
    probes: int = 2
    on_trial: Callable[[optuna.trial.FrozenTrial], None] | None = None
    notes: list[str] = field(default_factory=list)
    warm_from: optuna.Study | None = None
    restart_each_trial: bool = False

    def config_of(self, params: dict) -> RuntimeConfig:
        """The RuntimeConfig a trial's params describe (the base config plus the params' knobs)."""
        knobs = params_to_knobs(params, self.base.preset_spec.lm.layers)
        return validate_config(merge(self.base.model_dump(mode="json"), knobs), "trial params")

    def _reference(self, server: Server) -> Reference:
        ref = Reference(self.out / "reference", scenario_probes(self.scenario, self.probes), SAMPLE_RATE)
        if not ref.load():
            config = validate_config(merge(self.base.model_dump(mode="json"), reference_knobs(self.space, self.base)))
            server.apply(config)
            ref.record(synthesise(server.target.url, ref.probes, server.target.api_key, together=config.batch_invariant),
                       config.model_dump(mode="json"))
        return ref

    def run(self) -> None:
        """Ask, run and tell until the study holds `trials` counted trials or the timeout passes."""
        study = self.study
        dists = self.space.distributions()
        if not study.trials:
            base_params = baseline_params(self.space, self.base)
            study.enqueue_trial(base_params, user_attrs={"baseline": True})
            if self.warm_from is not None:
                self.notes += warm_start(study, self.warm_from, dists, base_params)
        server = self._server(restart_each=self.restart_each_trial)
        deadline = time.monotonic() + self.timeout_s if self.timeout_s else None
        trial = None
        try:
            ctx = TrialContext(self.scenario, server, self._reference(server), [], self.out / "runs", self.budget_bytes, self.cuda)
            ctx.probes = ctx.reference.probes
            while (deadline is None or time.monotonic() < deadline):
                fail_stale(study)
                if _claimed(study) >= self.trials:
                    break
                waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
                trial = self._ask(dists)
                if self._surplus(trial):
                    trial = None
                    continue
                if not waiting:
                    self._enqueue_followers(trial.params)
                trial.set_user_attr("worker", worker_id())
                with get_heartbeat_thread(trial._trial_id, study._storage):
                    outcome = self._measure(ctx, trial.params)
                self._tell(trial, outcome)
                trial = None
        except KeyboardInterrupt:
            if trial is not None:
                trial.set_user_attr("interrupted", True)
                trial.set_user_attr("reason", f"interrupted ({interrupted_by()})")
                study.tell(trial, state=TrialState.FAIL)
            raise
        finally:
            self._close(server)

    def _server(self, restart_each: bool = False) -> Server:
        """The trials' server; a service vvbench did not start (http) gets the baseline's knobs back when it closes."""
        restore = self.base if getattr(self.target_spec, "kind", None) == "http" else None
        return Server(self.target_spec, self.out / "servers", restart_each=restart_each, restore=restore)

    def _close(self, server: Server) -> None:
        server.close()
        if server.restore_failed:
            self.notes.append(f"the service may still have a trial's knobs: giving it the baseline's back failed ({server.restore_failed})")

    def _ask(self, dists) -> optuna.Trial:
        with warnings.catch_warnings():  # "heartbeat is supposed to be used with optimize": ask/tell sends its own
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
            return self.study.ask(fixed_distributions=dists)

    def _surplus(self, trial: optuna.Trial) -> bool:
        """Another worker took the last slot between our count and our ask: give this trial back, uncounted."""
        earlier = [t for t in self.study.get_trials(deepcopy=False) if t.number < trial.number]
        busy = sum(1 for t in earlier if t.state == TrialState.RUNNING)
        taken = busy + sum(1 for t in earlier if t.state.is_finished() and not t.user_attrs.get("interrupted")
                           and not t.user_attrs.get("surplus"))
        if taken < self.trials:
            return False
        trial.set_user_attr("surplus", True)
        trial.set_user_attr("reason", "surplus: the study already held --trials trials (another worker took the last)")
        self.study.tell(trial, state=TrialState.FAIL)
        return True

    def finalise(self, k: int, repeats: int, on_run=None) -> dict | None:
        """Re-measure up to `k` finalists `repeats` times interleaved with the baseline (`vvbench.tuner.finalists`).

        Returns the decision as plain data (None when there is no baseline or no finalist); the
        trial numbers are in each finalist row's `trial`, the winner's in `winner_trial`.
        """
        trials = self.study.get_trials(deepcopy=False)
        baseline = next((t for t in trials if t.user_attrs.get("baseline") and t.state == TrialState.COMPLETE), None)
        if baseline is None:
            return None
        points = finalist_candidates(trials, baseline)
        chosen = pick_finalists(points, directions(self.objectives), baseline_values(trials, baseline), k, self.objectives)
        if not chosen and k >= 1 and repeats >= 1:
            self.notes.append("finalists: none re-measured, " + (
                f"none of the {len(points)} feasible configs besides the baseline's was better than it on any objective"
                if points else "no feasible config besides the baseline's"))
        if not chosen or repeats < 1:
            return None
        labels = {f"trial {n}": n for n in chosen}
        configs = {BASELINE: self.config_of(baseline.params), **{lab: self.config_of(trials[n].params) for lab, n in labels.items()}}
        server = self._server()
        try:
            dirs, dropped, order = remeasure(server, self.scenario, configs, repeats, self.out / "finalists", on_run)
        finally:
            self._close(server)
        result = decide(dirs, dropped, self.objectives, list(labels))
        for row in result["finalists"]:
            row["trial"] = labels[row["label"]]
        result.update(repeats=repeats, order=order, baseline_trial=baseline.number,
                      winner_trial=labels[result["winner"]] if result["winner"] else baseline.number)
        return result

    def _enqueue_followers(self, params: dict) -> None:
        restart = self.space.restart_params()
        waiting = len(self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
        room = self.trials - _claimed(self.study) - waiting
        for _ in range(min(self.hot_trials - 1, room)):
            self.study.enqueue_trial({p: params[p] for p in restart if p in params})

    def _measure(self, ctx: TrialContext, params: dict) -> TrialOutcome:
        try:
            config = self.config_of(params)
        except ConfigError as exc:
            return TrialOutcome(state="fail", reason=f"invalid config: {exc}")
        return run_trial(ctx, config)

    def _tell(self, trial: optuna.Trial, out: TrialOutcome) -> None:
        for key in ("reason", "run_dir", "how", "apply_s", "attempts", "planned_bytes", "quality_db", "waveform_db", "audio_failed", "metrics"):
            value = getattr(out, key)
            if value is not None:
                trial.set_user_attr(key, value)
        if out.state == "pruned":
            self.study.tell(trial, state=TrialState.PRUNED)
        elif out.state == "fail":
            self.study.tell(trial, state=TrialState.FAIL)
        else:
            values = [objective_value(n, out.metrics) for n in self.objectives]
            missing = [n for n, v in zip(self.objectives, values) if v is None]
            if missing:
                trial.set_user_attr("reason", f"objective not measured: {', '.join(missing)}")
                self.study.tell(trial, state=TrialState.FAIL)
            else:
                peak = out.metrics.get("peak_gpu_bytes" if self.cuda else "peak_rss_bytes")
                cons = constraints(quality_db=out.quality_db, floor_db=self.floor_db, audio_failed=out.audio_failed,
                                   peak_bytes=peak, budget_bytes=self.budget_bytes, slos=out.slos)
                trial.set_user_attr("constraints", cons)
                for key, value in cons.items():
                    trial.set_constraint(key, value)
                self.study.tell(trial, values)
        if self.on_trial is not None:
            self.on_trial(self.study.get_trials(deepcopy=False)[trial.number])
