"""The `capacity` command: the highest load at which SCENARIO meets every SLO, and the fleet for a target load.

Thin: parse `--sweep KEY=V1,V2,...` or `--search` (with `--min`/`--max`), build the same target
as `vvbench run` (the same target, preset, config and knob flags), `vvbench.harness.capacity.run_capacity`,
write the capacity directory (`--out`, default `capacity/<scenario>-<UTC>`: `runs/` with every
point's run directory, `capacity.json`, `capacity.md`, `capacity.html`), print a table or
`--json`. Exit 0 when a capacity was found, 1 when no load met the SLOs, 2 for bad input (one
line), 130 when Ctrl-C or SIGTERM stopped the search (the directory is still written). `--target-load` is in the sweep key's unit: concurrent streams for `users`, requests per
minute for `rate`.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import click
from rich.console import Console

from vvbench.cli.bench import _runtime, _target_spec, apply_allow_faults, target_options
from vvbench.cli.knobs import knob_options, overrides_from_flags
from vvbench.core.errors import InputError
from vvbench.core.files import write_atomic

console = Console()
err_console = Console(stderr=True)
SWEEP_KEYS = ("users", "rate")


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{what}: {text!r} is not a number", param="sweep") from None
    if not math.isfinite(value) or value <= 0:
        raise InputError(f"{what}: {text!r} must be a positive number", param="sweep")
    return value


def parse_sweep(raw: str) -> tuple[str, list[float]]:
    """`users=1,2,4,8` -> ("users", [1, 2, 4, 8]), sorted and unique; InputError for anything else."""
    key, sep, values = raw.partition("=")
    key = key.strip()
    if not sep:
        raise InputError(f"--sweep {raw!r}: expected KEY=V1,V2,... with KEY one of {', '.join(SWEEP_KEYS)}", param="sweep")
    if key not in SWEEP_KEYS:
        raise InputError(f"--sweep: unknown key {key!r}; use one of {', '.join(SWEEP_KEYS)}", param="sweep")
    parts = [p.strip() for p in values.split(",") if p.strip()]
    if not parts:
        raise InputError(f"--sweep {key}=: the sweep is empty; give loads such as {key}=1,2,4,8", param="sweep")
    loads = sorted({_number(p, f"--sweep {key}") for p in parts})
    if key == "users" and any(v != int(v) for v in loads):
        raise InputError(f"--sweep users: users are whole numbers, got {', '.join(f'{v:g}' for v in loads)}", param="sweep")
    return key, loads


def _plan_args(sweep, search, key_opt, lo, hi):
    if sweep and search:
        raise InputError("give --sweep KEY=V1,V2,... or --search, not both")
    if not sweep and not search:
        raise InputError("give --sweep KEY=V1,V2,... (e.g. users=1,2,4,8) or --search")
    if sweep:
        if lo is not None or hi is not None:
            raise InputError("--min and --max bound a --search; a --sweep lists its loads")
        key, loads = parse_sweep(sweep)
        return key, loads, 1.0, 0.0
    start = _number(str(lo), "--min") if lo is not None else 1.0
    cap = _number(str(hi), "--max") if hi is not None else 256.0
    if cap < start:
        raise InputError(f"--max {cap:g} is below --min {start:g}")
    if key_opt == "users" and (start != int(start) or cap != int(cap)):
        raise InputError("--search users: --min and --max are whole numbers")
    return key_opt, [], start, cap


def _on_point(point) -> None:
    verdict = "[yellow]interrupted[/]" if point.aborted else "[green]met[/]" if point.met else "[red]not met[/]"
    err_console.print(f"  load {point.load:g}: {verdict} - {point.why}", highlight=False, soft_wrap=True)


@click.command("capacity")
@click.argument("scenario")
@click.option("--sweep", default=None, metavar="KEY=V1,V2,...", help="run each load: users=1,2,4,8 (closed loop) or rate=0.5,1,2 (open loop, req/s)")
@click.option("--search", is_flag=True, help="bracket from --min doubling, then bisect (integers for users, to --resolution for rate)")
@click.option("--key", "key_opt", type=click.Choice(SWEEP_KEYS), default="users", show_default=True, help="--search: which load to search")
@click.option("--min", "lo", type=float, default=None, help="--search: first load (default 1)")
@click.option("--max", "hi", type=float, default=None, help="--search: highest load tried (default 256)")
@click.option("--resolution", type=click.FloatRange(min=0, min_open=True), default=None,
              help="--search rate: stop when the bracket is narrower (req/s; default 10% of --min)")
@click.option("--target-load", type=click.FloatRange(min=0, min_open=True), default=None,
              help="instances needed for this load: concurrent streams (users) or requests per minute (rate)")
@click.option("--headroom", type=click.FloatRange(min=0, max=1, min_open=True), default=0.8, show_default=True,
              help="share of one instance's capacity to plan for")
@click.option("--confidence", type=click.FloatRange(min=0.5, max=1, max_open=True), default=0.95, show_default=True,
              help="confidence of the Wilson interval whose lower bound must clear each SLO's share")
@click.option("--duration", default=None, help="measured duration of each point, overriding the scenario's (30s, 5m)")
@click.option("--out", default=None, type=click.Path(file_okay=False), help="capacity directory (default capacity/<scenario>-<UTC>)")
@click.option("--json", "as_json", is_flag=True, help="print capacity.json")
@target_options
@click.option("--allow-faults", is_flag=True, help="embedded: start the service with --allow-faults, for fault knobs")
@click.option("--service-pid", type=int, default=None, help="http: the service's PID on this host, to sample its memory and CPU")
@click.option("--preset", default=None, help="embedded/command: model shapes (default tiny)")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None, help="embedded/command: RuntimeConfig YAML/JSON")
@knob_options
@click.pass_context
def capacity_cmd(ctx, scenario, sweep, search, key_opt, lo, hi, resolution, target_load, headroom, confidence, duration, out, as_json,
                 target_kind, url, command_line, ready_url, api_key, allow_faults, service_pid, preset, config_path, **kwargs) -> None:
    """Find the highest load at which SCENARIO meets every SLO (exit 0; 1 when no load does; 130 when interrupted)."""
    from vvbench.artifacts.scenarios import resolve_scenario
    from vvbench.core.interrupts import sigterm_interrupts
    from vvbench.core.units import parse_duration
    from vvbench.harness.capacity import CapacityPlan, check_plan, run_capacity
    from vvbench.reports.capacity_render import capacity_html, capacity_json, capacity_markdown

    key, loads, start, cap = _plan_args(sweep, search, key_opt, lo, hi)
    scen = resolve_scenario(scenario)
    overrides = overrides_from_flags(kwargs)
    spec = _target_spec(target_kind, url, command_line, ready_url, api_key, service_pid, bool(overrides or preset or config_path))
    runtime = _runtime(config_path, preset, overrides)
    if target_kind == "embedded" and api_key:
        spec["api_key"] = api_key
    apply_allow_faults(spec, target_kind, runtime, allow_faults)
    plan = CapacityPlan(scenario=scen, key=key, loads=loads, search=search, start=start, cap=cap, resolution=resolution,
                        confidence=confidence, target_load=target_load, headroom=headroom,
                        duration_s=parse_duration(duration, "--duration") if duration else None)
    check_plan(plan)
    folder = Path(out) if out else Path("capacity") / f"{scen.name}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    folder.mkdir(parents=True, exist_ok=True)
    target = _build_target(spec, runtime, folder)
    err_console.print(f"capacity of {scen.name}: {'search' if search else 'sweep'} over {key} -> {folder}", highlight=False)
    sigterm_interrupts()  # a cancelled CI job stops the search as Ctrl-C does: the points so far are kept
    result = run_capacity(plan, target, folder, on_point=_on_point,
                          on_start=lambda load: err_console.print(f"  running {key} = {load:g} ...", highlight=False))
    write_atomic(folder / "capacity.json", capacity_json(result))
    write_atomic(folder / "capacity.md", capacity_markdown(result))
    write_atomic(folder / "capacity.html", capacity_html(result))
    if as_json:
        click.echo(capacity_json(result), nl=False)
    else:
        _print_table(result, folder)
    if result.interrupted is not None:
        err_console.print(f"interrupted ({result.interrupted}): the points so far are in {folder}; the search did not finish",
                          highlight=False, soft_wrap=True)
        ctx.exit(130)
    ctx.exit(0 if result.capacity is not None else 1)


def _build_target(spec: dict, runtime, folder: Path):
    from pydantic import TypeAdapter

    from vvbench.harness.targets import TargetSpec

    return TypeAdapter(TargetSpec).validate_python(spec).build(runtime, folder / "target")


def _print_table(result, folder: Path) -> None:
    from rich.table import Table

    from vvbench.reports.capacity_render import POINT_HEADER, headline, point_rows

    head = Table(title=f"capacity: {result.scenario}", show_header=False)
    for k, v in headline(result):
        head.add_row(k, v)
    console.print(head)
    points = Table(title="points")
    keep = [0, 1, 2, 3, 4, 5, 7]  # the attainment details and the run directories are in capacity.md
    for i in keep:
        points.add_column(POINT_HEADER[i], min_width=11 if i == 1 else None)  # room for INTERRUPTED
    for row in point_rows(result):
        points.add_row(*(row[i] for i in keep))
    console.print(points)
    for note in result.notes:
        console.print(f"note: {note}", highlight=False, soft_wrap=True)
    console.print(f"capacity directory: [bold]{folder}[/] (capacity.html, capacity.md, capacity.json, runs/)", soft_wrap=True)
