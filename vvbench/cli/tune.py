"""The `tune` command (loaded on first use by `vvbench.cli.main`): flags -> a study -> a tune directory.

Thin: the target flags of `vvbench run`, the scenario, the space and the study's settings are
checked here, all before the study is created (one line and exit 2 for bad input: an unknown knob
or an empty range in the space, an unreachable storage, an unknown scenario; for `--target http`
an unreachable service, one whose /admin is off, memory it cannot sample without --service-pid).
A service started elsewhere is tuned from its own config through hot knobs only (docs/tuning.md).
`vvbench.tuner.study.Tuner` runs the trials, one
line per finished trial is printed, the finalists are re-measured against the baseline
(`--finalists`, `--repeats`; one line per run, then the decision with the ratios and their
intervals), and `vvbench.tuner.outputs` writes the tune directory. Ctrl-C (or SIGTERM,
`vvbench.core.interrupts`) records the trial in flight as interrupted, writes the directory from the trials so far and exits
130; `--resume` continues the study.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
from pydantic import TypeAdapter, ValidationError
from rich.console import Console

from vvbench.cli.bench import _runtime, _target_spec, apply_allow_faults, target_options
from vvbench.core.errors import ConfigError
from vvbench.core.interrupts import interrupted_by, sigterm_interrupts
from vvbench.core.validation import format_validation_error

err_console = Console(stderr=True)


def _line(row: dict) -> str:
    from vvbench.reports.tune_report import params_text

    params = params_text(row["params"])
    head = f"trial {row['number']}{' (baseline)' if row['baseline'] else ''} [{row['how'] or '-'}] {params}"
    if row["state"] == "complete":
        values = ", ".join(f"{k}={v:.4g}" for k, v in row["values"].items())
        verdict = "feasible" if row["feasible"] else "infeasible: " + ", ".join(row["violated"])
        q = row.get("quality_db")
        return f"{head} -> {values}, quality {q:.1f} dB; {verdict}" if q is not None else f"{head} -> {values}; {verdict}"
    return f"{head} -> {row['state']}: {row['reason']}"


def _run_line(label: str, repeat: int, run_dir: str | None, why: str | None) -> None:
    err_console.print(f"finalists: {label} repeat {repeat} -> {run_dir or 'failed: ' + str(why)}", highlight=False, soft_wrap=True)


def _decision_lines(summary: dict) -> list[str]:
    chosen, base = summary["recommended_trial"], summary["baseline_trial"]
    who = "the baseline" if chosen == base else f"trial {chosen}"
    out = [f"recommended: {who} ({summary['why']})"]
    vs = summary["baseline_vs_finalist"]
    if vs:
        out.append(f"{vs['finalist']}{'' if vs['recommended'] else ' (the best-ranked finalist, not recommended)'} / baseline:")
        for c in vs["changes"]:
            if c["ratio"] is not None and c["ci_low"] is not None:
                out.append(f"  {c['metric']}: x{c['ratio']:.3f} [{c['ci_low']:.3f}, {c['ci_high']:.3f}] (95% bootstrap, "
                           f"{c['n_new']} values against the baseline's {c['n_base']}), {c['verdict']}")
    return out


def _http_baseline(spec):
    """A running service's own config, the study's baseline, once it is reachable, ready and takes hot knobs.

    The tuner changes a service it did not start through `POST /admin/config` alone, so an unreachable
    service, one that reports no config (`/v1/stats`) or one whose /admin is off is refused here, in one line,
    before a study exists."""
    from vvbench.runtime.config import validate_config

    target = spec.build(None, Path("."))  # an http target starts nothing and writes no logs
    target.start()
    target.check_reconfigurable()
    current = target.runtime_config()
    if current is None:
        raise ConfigError(f"--target http: {target.url} reports no runtime config (GET /v1/stats); the tuner changes the knobs "
                          "of a vvbench-compatible service through /admin/config")
    return validate_config(current, f"{target.url}'s config")


def _for_target(space, spec):
    """The space a target can apply: a service started elsewhere (`--target http`) changes hot knobs only."""
    from vvbench.tuner.space import hot_only

    if spec.kind != "http":
        return space
    return hot_only(space, "vvbench cannot restart a service it did not start (--target http); --target embedded or command can")


def _check_memory_is_readable(spec, objectives: list[str], budget: bool) -> None:
    """An http target's resident memory is sampled from its process tree: without --service-pid it is never
    measured, so an objective or a memory budget on it would fail or rule out every trial. Refused up front,
    before the service is asked anything (torch is imported only to learn whether memory means GPU memory)."""
    from vvbench.tuner.objectives import compared_metrics, resolve_objectives

    if spec.kind != "http" or spec.pid is not None:
        return
    if "peak_rss_bytes" in compared_metrics(resolve_objectives(objectives, cuda=True)):  # named, not `peak_memory`
        why = "peak_rss_bytes (an objective)"
    elif "peak_rss_bytes" not in compared_metrics(resolve_objectives(objectives, cuda=False)) and not budget:
        return
    else:
        import torch

        if torch.cuda.is_available():
            return
        why = "peak_rss_bytes (the memory objective without CUDA)" if not budget else "--memory-budget (checked against peak_rss_bytes without CUDA)"
    raise ConfigError(f"--target http: {why} is read from the service's processes; pass --service-pid PID (a service on "
                      "this host), or leave memory out (e.g. --objective ttfa_p95_s --objective goodput_rps)")


@click.command("tune")
@target_options
@click.option("--allow-faults", is_flag=True, help="embedded: start the service with --allow-faults (the base config sets fault knobs)")
@click.option("--service-pid", type=int, default=None, help="http: the service's PID on this host, to sample its memory and CPU")
@click.option("--preset", default=None, help="embedded/command: model shapes (default tiny)")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None, help="the base RuntimeConfig (the baseline)")
@click.option("--scenario", required=True, help="the tuning scenario: a shipped name or a YAML file (keep it short)")
@click.option("--space", "space_path", type=click.Path(dir_okay=False), default=None, help="search space YAML (default: built from the knob table)")
@click.option("--trials", type=click.IntRange(1, 100_000), default=20, show_default=True, help="trials the study should hold (with --resume: in total)")
@click.option("--timeout", default=None, help="stop asking for trials after this long (30m, 2h)")
@click.option("--storage", default=None, help="Optuna storage URL [default: sqlite:///OUT/study.db]")
@click.option("--study", "study_name", default="vvbench-tune", show_default=True, help="study name in the storage")
@click.option("--resume", is_flag=True, help="continue the named study")
@click.option("--memory-budget", default=None, help="prune configs the memory plan puts over this (e.g. 24GiB), and constrain measured peaks")
@click.option("--quality-floor", type=float, default=30.0, show_default=True, help="minimum mel SNR (dB) against the reference config's audio")
@click.option("--objective", "objectives", multiple=True, help="metric to optimise (repeat; default ttfa_p95_s, goodput_rps, peak_memory)")
@click.option("--hot-trials", type=click.IntRange(1, 1000), default=3, show_default=True, help="trials per server config (hot knobs varied on one warm service)")
@click.option("--restart-each-trial", is_flag=True,
              help="start a fresh service for every trial, hot knobs too (what a per-trial-restart tuner costs; for comparison)")
@click.option("--finalists", type=click.IntRange(0, 100), default=3, show_default=True,
              help="re-measure up to K feasible configs against the baseline before recommending, the Pareto front first (0: off)")
@click.option("--repeats", type=click.IntRange(1, 100), default=3, show_default=True,
              help="runs per finalist and of the baseline, interleaved B F1 F2 B F1 F2 ...")
@click.option("--warm-start", "warm_start", default=None, help="enqueue this study's feasible Pareto set first (a new study only)")
@click.option("--warm-start-storage", default=None, help="the storage URL of --warm-start's study [default: --storage]")
@click.option("--heartbeat", "heartbeat_s", type=click.IntRange(0, 3600), default=30, show_default=True,
              help="seconds between trial heartbeats; a RUNNING trial silent for 3 beats is failed as stale (0: off)")
@click.option("--seed", type=int, default=None, help="sampler seed")
@click.option("--out", default=None, type=click.Path(file_okay=False), help="tune directory [default: tunes/STUDY]")
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON")
@click.pass_context
def tune_cmd(ctx, target_kind, url, command_line, ready_url, api_key, allow_faults, service_pid, preset, config_path, scenario, space_path, trials, timeout,
             storage, study_name, resume, memory_budget, quality_floor, objectives, hot_trials, restart_each_trial, finalists, repeats, warm_start, warm_start_storage, heartbeat_s, seed, out,
             as_json) -> None:
    """Search runtime knobs with Optuna for the best config on SCENARIO, within the quality floor and memory budget."""
    from vvbench.artifacts.scenarios import resolve_scenario
    from vvbench.core.units import parse_bytes, parse_duration
    from vvbench.harness.targets import TargetSpec
    from vvbench.tuner.objectives import DEFAULT_OBJECTIVES, directions, resolve_objectives
    from vvbench.tuner.space import default_space, load_space

    # Every input is checked before the study is created (a bad flag leaves no study behind to block the corrected
    # command) and before torch and the trial machinery are imported (1-2 s): the space's and the objectives' errors
    # do not depend on the device, so they are checked as for a CPU here and built for the real device below.
    spec_data = _target_spec(target_kind, url, command_line, ready_url, api_key, service_pid, bool(preset or config_path))
    base = _runtime(config_path, preset, {}) if target_kind != "http" else None
    if target_kind == "http" and api_key:
        spec_data["api_key"] = api_key
    if base is not None:
        apply_allow_faults(spec_data, target_kind, base, allow_faults)
    try:
        spec = TypeAdapter(TargetSpec).validate_python(spec_data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, "command line")) from None
    the_scenario = resolve_scenario(scenario)
    resolve_objectives(objectives or DEFAULT_OBJECTIVES, cuda=False)
    budget_bytes = parse_bytes(memory_budget, "--memory-budget") if memory_budget else None
    timeout_s = parse_duration(timeout, "--timeout") if timeout else None
    if restart_each_trial and spec.kind == "http":
        raise ConfigError("--restart-each-trial: vvbench cannot restart a service it did not start (--target http)")
    if warm_start and resume:
        raise ConfigError("--warm-start: only a new study is warm-started (not with --resume)")
    _check_memory_is_readable(spec, list(objectives or DEFAULT_OBJECTIVES), budget_bytes is not None)
    if base is None:  # --target http: the running service's own config, once it is reachable and takes hot knobs
        base = _http_baseline(spec)
    if space_path:
        _for_target(load_space(space_path, base, cuda_available=False), spec)

    import torch

    from vvbench.tuner.outputs import trial_row, write_outputs
    from vvbench.tuner.study import Tuner, load_other_study, open_study

    cuda = torch.cuda.is_available()
    space = _for_target(load_space(space_path, base, cuda_available=cuda) if space_path else default_space(base, cuda_available=cuda), spec)
    names = resolve_objectives(objectives or DEFAULT_OBJECTIVES, cuda=cuda)
    out_dir = Path(out or Path("tunes") / study_name)
    out_dir.mkdir(parents=True, exist_ok=True)
    storage = storage or f"sqlite:///{out_dir / 'study.db'}"
    # before the new study exists, so that a bad --warm-start leaves nothing behind
    warm_from = load_other_study(warm_start_storage or storage, warm_start) if warm_start else None
    study = open_study(storage, study_name, names, resume=resume, seed=seed, heartbeat_s=heartbeat_s or None, trials=trials)
    for note in space.notes:
        err_console.print(f"note: {note}", highlight=False)
    objectives_of = names

    def on_trial(t) -> None:
        err_console.print(_line(trial_row(t, objectives_of)), highlight=False, soft_wrap=True)

    tuner = Tuner(study=study, space=space, scenario=the_scenario, base=base, target_spec=spec, out=out_dir, objectives=names,
                  trials=trials, floor_db=quality_floor, hot_trials=hot_trials, restart_each_trial=restart_each_trial, cuda=cuda, on_trial=on_trial,
                  budget_bytes=budget_bytes, timeout_s=timeout_s, notes=list(space.notes), warm_from=warm_from)
    interrupted = False
    final = None
    noted = len(tuner.notes)
    sigterm_interrupts()  # a cancelled CI job stops the study as Ctrl-C does (saved; a service given its config back)
    try:
        tuner.run()
        if finalists:
            final = tuner.finalise(finalists, repeats, on_run=_run_line)
    except KeyboardInterrupt:
        interrupted = True
        err_console.print(f"interrupted ({interrupted_by()}): the study is saved; continue it with --resume", highlight=False)
    for note in tuner.notes[noted:]:  # what the study learnt on the way (a warm start, a service not given its config back)
        err_console.print(f"note: {note}", highlight=False)
    summary = write_outputs(study, out_dir, names, directions(names), base, tuner.config_of, tuner.notes, final)
    if as_json:
        click.echo(json.dumps(summary, indent=2, default=str))
    else:
        c = summary["counts"]
        err_console.print(f"{summary['trials']} trials: {c['complete']} complete ({summary['feasible']} feasible), "
                          f"{c['fail']} failed, {c['pruned']} pruned by the memory plan", highlight=False)
        for line in _decision_lines(summary):
            err_console.print(line, highlight=False, soft_wrap=True)
        click.echo(f"vvbench serve --config {summary['recommended_yaml']}")
    ctx.exit(130 if interrupted else 0)
