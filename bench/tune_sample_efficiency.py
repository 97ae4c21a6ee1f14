"""Sample efficiency of the tuner: searches replayed over a recorded grid of real trials.

    python bench/tune_sample_efficiency.py record --preset tiny --out GRID_DIR [--duration 8] [--repeats 3]
    python bench/tune_sample_efficiency.py replay GRID_DIR [--seeds 10] [--budget 0.2 --budget 0.1 ...]
        [--within 0.05] [--observe one --observe mean] [--tpe-startup N ...] [--finalists 3 [--repeats 3]]
    python bench/tune_sample_efficiency.py pack GRID_DIR OUT.jsonl

1. **record** measures every point of `SPACE` (hot knobs only, so one warm service serves them
   all, never restarted) with the tuner's own machinery: `Server` and `run_trial`
   (`vvbench.tuner.trials`), the reference audio and quality probes of `Tuner`, and the tuning
   scenario (`smoke`, measured for `--duration` s). The points are run grouped by their
   restart-only knobs (none here) and in a shuffled, seeded order within a group, so that drift
   of the machine does not line up with a knob. Each point is appended to GRID_DIR/grid.jsonl as
   soon as it is measured; a second `record` skips the points already there.
2. **replay** is pure computation. Per sampler seed it runs the tuner's own trial loop
   (`Tuner.run`: the baseline enqueued as trial 0, `ask` over the space's distributions,
   the followers of a sampled trial, `_tell` setting the same constraints with
   `trial.set_constraint`) with one change: a trial's outcome is looked up in the grid instead of
   measured. The sampler is the tuner's (`tuner_sampler`: Optuna's GPSampler, seeded, with a quarter
   of the budget as random start-up trials), beside TPE with the same start-up, TPE with Optuna's
   default start-up (10) and
   `RandomSampler(seed=seed)` with the same budget and baseline. The objective is the tuner's
   single objective `ttfa_p95_s` (minimised) under its constraints: the quality floor (mel SNR,
   `--quality-floor`, 30 dB), the audio checks and the scenario's SLOs. Budget: floor(grid size x
   FRACTION) trials, the baseline included. With `record --repeats R` every point holds R
   measurements; a point's value is their mean (feasible only when every repeat is), and a trial
   shows the tuner one repeat drawn at random per seed (`--observe one`, what a real trial sees:
   one measurement) or the mean (`--observe mean`, a noiseless measurement). A seed succeeds when
   the point it would recommend (its best observed feasible config), valued by its mean, is within
   5% (`--within`) of the grid's best mean. `--tpe-startup N` adds rows for TPE with
   `n_startup_trials=N`.

   `--finalists K` also replays the tuner's finalist stage (`Tuner.finalise`) through the tuner's
   own functions: `pick_finalists` chooses up to K from the study, each finalist and the baseline
   is re-measured by up to `--repeats R` (3, `vvbench tune`'s default) of its recorded repeats that
   no trial showed, and `decide` compares their pooled TTFAs with the baseline's
   (`compare_pooled`: bootstrap interval, Mann-Whitney) and recommends. This needs each row's
   measured TTFAs (`ttfa_s`), which `record` keeps; `pack GRID_DIR OUT.jsonl` adds them to a grid
   recorded without them, from its run directories. A grid of R + 1 repeats gives a finalist up to R
   unseen ones (R, as a real finalist stage measures, unless the study measured it more than once).
3. **pack** writes a grid's rows with their measured TTFAs read from the run directories.

Prints a Markdown table per budget. A trial outside the grid raises (the space is the grid).
`replay` also takes a grid.jsonl file: `bench/data/sample-efficiency-tiny-x4.jsonl` (4 repeats, with
TTFAs), `bench/data/sample-efficiency-tiny-x3.jsonl` (3 repeats, packed with TTFAs) and
`bench/data/sample-efficiency-tiny.jsonl` (one, an earlier recording, no TTFAs: no finalist replay)
are the grids that docs/benchmarks.md quotes (Tuner, "Sample efficiency").
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import statistics
import time
from pathlib import Path
from types import SimpleNamespace

import optuna
import pandas as pd

from vvbench.runtime.config import RuntimeConfig
from vvbench.tuner.finalists import BASELINE, decide, pick_finalists
from vvbench.tuner.objectives import constraints, directions, feasible, objective_value
from vvbench.tuner.outputs import feasible_configs
from vvbench.tuner.space import SearchSpace, parse_space
from vvbench.tuner.study import Tuner, baseline_values, finalist_candidates, startup_trials, tuner_sampler
from vvbench.tuner.trials import TRIAL_METRICS, TrialOutcome

SPACE = {"diffusion_steps": {"low": 6, "high": 10},
         "first_chunk_frames": {"low": 1, "high": 4},
         "batch_window_ms": {"choices": [0.0, 5.0, 25.0]}}
OBJECTIVE = "ttfa_p95_s"
KEPT_METRICS = (*TRIAL_METRICS, "ttfa_p50_s")
TTFA_COLUMN = "ttfa_s"  # a row's measured TTFAs, the requests a finalist's re-measurement pools


def grid_values(dist: optuna.distributions.BaseDistribution) -> list:
    """Every value a discrete distribution can take (a continuous one is not a grid)."""
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return list(dist.choices)
    if isinstance(dist, optuna.distributions.IntDistribution) and not dist.log:
        return list(range(dist.low, dist.high + 1, dist.step))
    if isinstance(dist, optuna.distributions.FloatDistribution) and dist.step is not None and not dist.log:
        return [dist.low + i * dist.step for i in range(round((dist.high - dist.low) / dist.step) + 1)]
    raise ValueError(f"{dist} is not a finite grid")


def grid_points(space: SearchSpace) -> list[dict]:
    """The space as the list of all its points (params dicts)."""
    axes = {name: grid_values(d) for name, d in space.distributions().items()}
    return [dict(zip(axes, combo)) for combo in itertools.product(*axes.values())]


def key(params: dict) -> tuple:
    """A point's identity, the same for 5 and 5.0 (a value read back from JSON)."""
    return tuple(sorted((k, float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v) for k, v in params.items()))


def the_space(preset: str) -> tuple[SearchSpace, RuntimeConfig]:
    base = RuntimeConfig(preset=preset)
    return parse_space(SPACE, base, "sample-efficiency space", cuda_available=False), base


def read_grid(grid_dir: Path) -> list[dict]:
    path = grid_dir / "grid.jsonl" if grid_dir.is_dir() else grid_dir
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# --- record ------------------------------------------------------------------------------------


def measured_ttfas(run_dir: Path) -> list[float]:
    """The TTFA of every measured successful request of a run (what its `ttfa_p95_s` and a pooled comparison read),
    to 0.01 ms."""
    from vvbench.artifacts.reader import load_run
    from vvbench.reports.summary import measured_rows

    _, ok = measured_rows(load_run(run_dir).requests)
    return [round(float(v), 5) for v in ok[TTFA_COLUMN] if v == v]


def row_of(params: dict, out: TrialOutcome, floor_db: float, cuda: bool, grid_dir: Path, wall_s: float) -> dict:
    cons = constraints(quality_db=out.quality_db, floor_db=floor_db, audio_failed=out.audio_failed,
                       peak_bytes=out.metrics.get("peak_gpu_bytes" if cuda else "peak_rss_bytes"), budget_bytes=None, slos=out.slos)
    run_dir = str(Path(out.run_dir).relative_to(grid_dir)) if out.run_dir else None
    return {"params": params, "state": out.state, "reason": out.reason, "how": out.how, "apply_s": round(out.apply_s, 2),
            "metrics": {k: out.metrics.get(k) for k in KEPT_METRICS}, "quality_db": out.quality_db, "waveform_db": out.waveform_db,
            "audio_failed": out.audio_failed, "slos": [{k: s.get(k) for k in ("slo", "op", "threshold", "value")} for s in out.slos],
            "constraints": cons, "feasible": out.state == "complete" and feasible(cons.values()), "run_dir": run_dir,
            "wall_s": round(wall_s, 1), TTFA_COLUMN: measured_ttfas(Path(out.run_dir)) if out.run_dir else []}


def record(args) -> None:
    import torch

    from vvbench.artifacts.scenarios import resolve_scenario
    from vvbench.harness.targets import EmbeddedSpec
    from vvbench.tuner.trials import Server, TrialContext, run_trial

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    cuda = torch.cuda.is_available()
    space, base = the_space(args.preset)
    scenario = resolve_scenario(args.scenario).with_duration(args.duration)
    tuner = Tuner(study=None, space=space, scenario=scenario, base=base, target_spec=EmbeddedSpec(), out=out,
                  objectives=[OBJECTIVE], trials=0, floor_db=args.quality_floor, cuda=cuda)
    restart = space.restart_params()
    todo = []
    done = {(key(r["params"]), r.get("repeat", 0)) for r in read_grid(out)}
    for rep in range(args.repeats):  # round by round, each round in its own shuffled order
        points = grid_points(space)
        random.Random(args.order_seed + rep).shuffle(points)
        points.sort(key=lambda p: json.dumps([p[r] for r in restart]))  # stable: shuffled within a server config
        todo += [(rep, p) for p in points if (key(p), rep) not in done]
    print(f"grid: {len(grid_points(space))} points x {args.repeats} repeats, {len(done)} recorded, {len(todo)} to measure; "
          f"scenario {scenario.name}, {args.duration:g} s measured", flush=True)
    server = Server(tuner.target_spec, out / "servers")
    t_all = time.monotonic()
    try:
        ref = tuner._reference(server)  # the tuner's own reference: the base config at the space's maximum steps
        ctx = TrialContext(scenario, server, ref, ref.probes, out / "runs", None, cuda)
        for i, (rep, params) in enumerate(todo, 1):
            t0 = time.monotonic()
            outcome = run_trial(ctx, tuner.config_of(params))
            row = {**row_of(params, outcome, args.quality_floor, cuda, out, time.monotonic() - t0), "repeat": rep}
            with (out / "grid.jsonl").open("a") as f:
                f.write(json.dumps(row) + "\n")
            m = row["metrics"]
            print(f"{i}/{len(todo)} r{rep} [{row['how']}] {params} -> {row['state']} ttfa_p95 {m.get('ttfa_p95_s')} "
                  f"quality {row['quality_db'] if row['quality_db'] is None else round(row['quality_db'], 1)} dB "
                  f"{'feasible' if row['feasible'] else 'infeasible'} ({row['wall_s']:.0f} s)", flush=True)
    finally:
        server.close()
    print(f"recorded in {time.monotonic() - t_all:.0f} s", flush=True)


# --- replay ------------------------------------------------------------------------------------


def outcome_of(row: dict) -> TrialOutcome:
    return TrialOutcome(state=row["state"], reason=row.get("reason"), metrics=dict(row["metrics"]), quality_db=row.get("quality_db"),
                        waveform_db=row.get("waveform_db"), audio_failed=list(row.get("audio_failed") or []),
                        slos=list(row.get("slos") or []), how="replayed")


class ReplayTuner(Tuner):
    """The tuner's trial loop with each trial's outcome looked up in `grid` (key -> the point's repeats), set after
    construction. `observe="one"` shows the tuner one recorded repeat per trial, drawn by `rng` (a real trial is one
    measurement); `observe="mean"` shows it the point's mean over its repeats (a noiseless measurement)."""

    grid: dict = {}  # these four are set by search()
    observe: str = "one"
    rng: random.Random = random.Random(0)
    shown: dict = {}  # point -> indices of the repeats its trials showed

    def _reference(self, server):
        return SimpleNamespace(probes=[])

    def _measure(self, ctx, params: dict) -> TrialOutcome:
        reps = self.grid.get(key(params))
        if reps is None:
            raise LookupError(f"trial left the grid: {params}")
        if self.observe == "one":
            i = self.rng.randrange(len(reps))
            self.shown.setdefault(key(params), set()).add(i)
            return outcome_of(reps[i])
        return outcome_of(mean_row(reps, self.floor_db))


def grid_value(row: dict, floor_db: float, cuda: bool = False) -> float | None:
    """The objective of one recorded measurement as the tuner would see it, None when it is infeasible or failed."""
    if row["state"] != "complete":
        return None
    cons = constraints(quality_db=row.get("quality_db"), floor_db=floor_db, audio_failed=row.get("audio_failed") or [],
                       peak_bytes=row["metrics"].get("peak_gpu_bytes" if cuda else "peak_rss_bytes"), budget_bytes=None,
                       slos=row.get("slos") or [])
    value = objective_value(OBJECTIVE, row["metrics"])
    return value if value is not None and feasible(cons.values()) else None


def group(rows: list[dict]) -> dict[tuple, list[dict]]:
    """The grid's rows by point: key -> its repeats (one row each)."""
    points: dict[tuple, list[dict]] = {}
    for r in rows:
        points.setdefault(key(r["params"]), []).append(r)
    return points


def point_value(reps: list[dict], floor_db: float) -> float | None:
    """A point's value: the mean objective over its repeats, None unless every repeat is feasible."""
    values = [grid_value(r, floor_db) for r in reps]
    return None if not values or any(v is None for v in values) else statistics.fmean(values)


def mean_row(reps: list[dict], floor_db: float) -> dict:
    """One row standing for the point: an infeasible repeat when it has one, else the first with the mean objective."""
    bad = next((r for r in reps if grid_value(r, floor_db) is None), None)
    if bad is not None:
        return bad
    return {**reps[0], "metrics": {**reps[0]["metrics"], OBJECTIVE: point_value(reps, floor_db)}}


def search(rows: list[dict], space: SearchSpace, base: RuntimeConfig, sampler: optuna.samplers.BaseSampler, budget: int,
           floor_db: float = 30.0, observe: str = "one", draw_seed: int = 0) -> optuna.Study:
    """One replayed study of `budget` trials (the baseline included)."""
    grid = group(rows)
    missing = [p for p in grid_points(space) if key(p) not in grid]
    if missing:
        raise ValueError(f"the grid lacks {len(missing)} of the space's points (e.g. {missing[0]}): record them first")
    study = optuna.create_study(sampler=sampler, directions=directions([OBJECTIVE]))
    tuner = ReplayTuner(study=study, space=space, scenario=None, base=base, target_spec=None, out=Path("replay"),
                        objectives=[OBJECTIVE], trials=budget, floor_db=floor_db)
    tuner.grid, tuner.observe, tuner.rng, tuner.shown = grid, observe, random.Random(draw_seed), {}
    tuner.run()
    study.shown = tuner.shown  # point -> indices of the repeats the trials showed
    return study


def _configs_by_value(study: optuna.Study) -> list[tuple[float, tuple]]:
    """(observed value, point) of the study's distinct feasible configs, best first, as the tuner ranks them
    (`vvbench.tuner.outputs.feasible_configs`): a config measured by several trials is the mean of them, feasible only
    when every one was."""
    return sorted((values[0], key(study.trials[n].params)) for n, values in feasible_configs(study.trials).items())


def best_found(study: optuna.Study) -> float | None:
    """The best feasible objective the study observed (a config's mean over its trials)."""
    ranked = _configs_by_value(study)
    return ranked[0][0] if ranked else None


def chosen_value(study: optuna.Study, rows: list[dict], floor_db: float = 30.0) -> float | None:
    """What the study would recommend (its best observed feasible config), valued by the grid: that point's mean."""
    ranked = _configs_by_value(study)
    return None if not ranked else point_value(group(rows)[ranked[0][1]], floor_db)


def recorded_run(row: dict) -> SimpleNamespace:
    """A recorded measurement as `compare_pooled` reads a run: its measured TTFAs as the requests, its metrics as the
    summary."""
    if TTFA_COLUMN not in row:
        raise SystemExit("the grid's rows have no TTFAs: replaying the finalist stage needs them "
                         "(`pack GRID_DIR OUT.jsonl` reads them from the run directories)")
    requests = pd.DataFrame({"warmup": False, "status": "ok", TTFA_COLUMN: pd.Series(row[TTFA_COLUMN], dtype=float)})
    return SimpleNamespace(requests=requests, record=SimpleNamespace(summary=row["metrics"]))


def finalist_value(study: optuna.Study, rows: list[dict], k: int, repeats: int, floor_db: float = 30.0) -> float | None:
    """The tuner's finalist stage (`Tuner.finalise`) replayed through its own functions: `finalist_candidates` and
    `pick_finalists` choose up to `k` finalists from the study, each of them and the baseline is re-measured by up to
    `repeats` of its recorded repeats that no trial showed (in recorded order; all of them where every repeat was
    shown), and `decide` compares their pooled TTFAs with the baseline's and recommends. The recommendation (the
    baseline when no finalist beats it) is valued by the grid: its point's mean."""
    grid, shown = group(rows), getattr(study, "shown", {})
    trials = study.get_trials(deepcopy=False)
    baseline = next((t for t in trials if t.user_attrs.get("baseline") and t.state == optuna.trial.TrialState.COMPLETE), None)
    if baseline is None:  # as `finalise`: nothing to compare with, the study's own pick
        return chosen_value(study, rows, floor_db)
    chosen = pick_finalists(finalist_candidates(trials, baseline), directions([OBJECTIVE]), baseline_values(trials, baseline),
                            k, [OBJECTIVE])
    labels = {f"trial {n}": n for n in chosen}
    runs: dict[str, dict] = {}
    dirs: dict[str, list[str]] = {}
    dropped: dict[str, str] = {}
    for label, n in [(BASELINE, baseline.number), *labels.items()]:
        point = key(trials[n].params)
        reps = grid[point]
        fresh = [i for i in range(len(reps)) if i not in shown.get(point, set())] or list(range(len(reps)))
        dirs[label] = []
        for r, i in enumerate(fresh[:repeats], 1):
            if reps[i]["state"] != "complete":  # as `remeasure`: a failed repeat drops the config
                dropped[label] = f"repeat {r}: {reps[i].get('reason')}"
                break
            runs[f"{label}#{i}"] = reps[i]
            dirs[label].append(f"{label}#{i}")
    result = decide(dirs, dropped, [OBJECTIVE], list(labels), load=lambda run_id: recorded_run(runs[run_id]))
    winner = labels[result["winner"]] if result["winner"] else baseline.number
    return point_value(grid[key(trials[winner].params)], floor_db)


def replay(args) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = read_grid(args.grid)
    space, base = the_space(args.preset)
    points = group(rows)
    values = {k: v for k, v in ((k, point_value(reps, args.quality_floor)) for k, reps in points.items()) if v is not None}
    if not values:
        raise SystemExit("no feasible point in the grid")
    best_key = min(values, key=values.get)
    best = values[best_key]
    within = 1 + args.within
    near = sorted((v / best, dict(k)) for k, v in values.items() if v <= within * best)
    repeats = sorted({len(r) for r in points.values()})
    spreads = [statistics.pstdev(vs) / statistics.fmean(vs) for vs in
               ([grid_value(r, args.quality_floor) for r in reps] for reps in points.values()) if len(vs) > 1 and None not in vs]
    print(f"grid: {len(points)} points x {'/'.join(map(str, repeats))} repeats ({len(rows)} measurements), {len(values)} feasible; "
          f"best mean {OBJECTIVE} {best:.4g} at {dict(best_key)} (quality {points[best_key][0]['quality_db']:.1f} dB); "
          f"{len(near)} feasible points within {args.within:.0%} of it: " + ", ".join(f"{p} x{r:.3f}" for r, p in near))
    if spreads:
        print(f"spread of one measurement: coefficient of variation over a point's repeats, median {statistics.median(spreads):.1%}, "
              f"max {max(spreads):.1%}")
    print()
    samplers = {"GP (the tuner's)": lambda s: tuner_sampler(s, budget),
                "TPE, the same start-up": lambda s: optuna.samplers.TPESampler(seed=s, n_startup_trials=startup_trials(budget)),
                "TPE, Optuna's default start-up (10)": lambda s: optuna.samplers.TPESampler(seed=s),
                "random": lambda s: optuna.samplers.RandomSampler(seed=s)}
    for n in args.tpe_startup or []:
        samplers[f"TPE, n_startup_trials={n}"] = lambda s, n=n: optuna.samplers.TPESampler(seed=s, n_startup_trials=n)
    for fraction in args.budget or [0.2]:
        budget = int(len(points) * fraction)
        print(f"budget {budget} trials (floor({len(points)} x {fraction:g}), the baseline included), seeds 0..{args.seeds - 1}:\n")
        print(f"| sampler | tuner sees | seeds within {args.within:.0%} | median chosen/grid-best | worst chosen/grid-best | "
              "seeds at the grid's best | median distinct points |" + (f" within {args.within:.0%} after {args.finalists} finalists |"
                                                                       if args.finalists else ""))
        print("|---|---|---|---|---|---|---|" + ("---|" if args.finalists else ""))
        for observe in args.observe or ["one"]:
            for name, make in samplers.items():
                ratios, distinct, finals = [], [], []
                for seed in range(args.seeds):
                    study = search(rows, space, base, make(seed), budget, args.quality_floor, observe=observe, draw_seed=seed)
                    found = chosen_value(study, rows, args.quality_floor)
                    ratios.append(found / best if found is not None else float("inf"))
                    distinct.append(len({key(t.params) for t in study.trials}))
                    if args.finalists:
                        final = finalist_value(study, rows, args.finalists, args.repeats, args.quality_floor)
                        finals.append(final / best if final is not None else float("inf"))
                ok = sum(1 for r in ratios if r <= within)
                seen = "one repeat" if observe == "one" else "the mean"
                extra = (f" {sum(1 for r in finals if r <= within)}/{args.seeds} (median {statistics.median(finals):.3f}) |"
                         if args.finalists else "")
                print(f"| {name} | {seen} | {ok}/{args.seeds} | {statistics.median(ratios):.3f} | {max(ratios):.3f} | "
                      f"{sum(1 for r in ratios if r == 1.0)}/{args.seeds} | {statistics.median(distinct):g} |{extra}")
        print()


def pack(args) -> None:
    """Write GRID_DIR's grid with each row's measured TTFAs read from its run directory, where the row lacks them."""
    rows = read_grid(args.grid)
    for r in rows:
        if TTFA_COLUMN not in r:
            r[TTFA_COLUMN] = measured_ttfas(args.grid / r["run_dir"]) if r.get("run_dir") else []
    args.out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"{len(rows)} rows, {sum(len(r[TTFA_COLUMN]) for r in rows)} TTFAs -> {args.out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    rec = sub.add_parser("record", help="measure every point of the space into OUT/grid.jsonl (resumable)")
    rec.add_argument("--out", type=Path, required=True)
    rec.add_argument("--scenario", default="smoke")
    rec.add_argument("--duration", type=float, default=8.0, help="measured seconds per point")
    rec.add_argument("--order-seed", type=int, default=0)
    rec.add_argument("--repeats", type=int, default=1, help="measure every point this many times, in rounds of the whole grid")
    rep = sub.add_parser("replay", help="replay searches over a recorded grid")
    rep.add_argument("grid", type=Path, help="GRID_DIR or a grid.jsonl")
    rep.add_argument("--seeds", type=int, default=10)
    rep.add_argument("--budget", type=float, action="append", help="fraction of the grid (repeat; default 0.2)")
    rep.add_argument("--within", type=float, default=0.05, help="a seed succeeds within this fraction of the grid's best")
    rep.add_argument("--tpe-startup", type=int, action="append", help="also TPE with this n_startup_trials (repeat)")
    rep.add_argument("--finalists", type=int, default=0,
                     help="also replay the tuner's finalist stage (`vvbench tune --finalists K`), re-measured by unseen repeats")
    rep.add_argument("--repeats", type=int, default=3, help="the finalist stage's re-measurements a config (`vvbench tune --repeats`)")
    rep.add_argument("--observe", choices=["one", "mean"], action="append",
                     help="what a trial shows the tuner: one recorded repeat, drawn per seed, or the point's mean (repeat; default one)")
    pk = sub.add_parser("pack", help="a grid.jsonl with every row's measured TTFAs, read from GRID_DIR's run directories")
    pk.add_argument("grid", type=Path, help="GRID_DIR")
    pk.add_argument("out", type=Path, help="the grid.jsonl to write")
    for p in (rec, rep):
        p.add_argument("--preset", default="tiny")
        p.add_argument("--quality-floor", type=float, default=30.0)
    args = ap.parse_args()
    {"record": record, "replay": replay, "pack": pack}[args.cmd](args)


if __name__ == "__main__":
    main()
