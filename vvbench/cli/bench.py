"""The `run`, `demo` and `scenarios` commands (loaded on first use by `vvbench.cli.main`).

Thin: flags -> `RunOptions` -> `vvbench.harness.run.run_benchmark` -> tables or JSON and an exit code
(0 every SLO met, 1 an SLO failed, 2 bad input / unreachable or dying target, 130 Ctrl-C or SIGTERM).
Knob flags (the same as `vvbench serve`) configure the embedded target, and fill the `{knob}`
placeholders of a command target; they make no sense for an http target and are refused there.
"""

from __future__ import annotations

import json
import shlex
import sys

import click
from pydantic import ValidationError
from rich.console import Console

from vvbench.cli.knobs import knob_options, overrides_from_flags
from vvbench.core.errors import ConfigError, InputError, VVBenchError
from vvbench.core.validation import format_validation_error

console = Console()
err_console = Console(stderr=True)

DEMO_RUNTIME = {"preset": "tiny", "max_batch": 2}


def _runtime(config_path, preset, overrides: dict):
    from vvbench.runtime.config import load_runtime_config

    if preset is not None:
        overrides["preset"] = preset
    return load_runtime_config(config_path, overrides=overrides)


def _target_spec(kind: str, url, command_line, ready_url, api_key, service_pid, runtime_given: bool) -> dict:
    if kind == "http":
        if not url:
            raise InputError("--target http needs --url (the service's base URL)", param="url")
        if runtime_given:
            raise InputError("knob flags, --preset and --config configure the embedded and command targets, not --target http")
        if service_pid is not None:
            import psutil

            if service_pid <= 0 or not psutil.pid_exists(service_pid):  # else its memory reads NA and its CPU as other work
                raise InputError(f"--service-pid {service_pid}: no process with this PID on this host", param="service_pid")
        return {"kind": "http", "url": url, "api_key": api_key, "pid": service_pid}
    if kind == "command":
        if not command_line:
            raise InputError("--target command needs --command 'ARGV TEMPLATE' (e.g. 'my-tts --port {port}')", param="command")
        spec = {"kind": "command", "argv": shlex.split(command_line)}
        if ready_url:
            spec["ready_url"] = ready_url
        if url:
            spec["url"] = url
        return spec
    if url or command_line:
        raise InputError("--url and --command need --target http or --target command")
    return {"kind": "embedded"}


def execute(options: dict, as_json: bool) -> int:
    """Run, show the live view, print the summary (or JSON); returns the exit code.

    A run that did not complete (target or load failure, Ctrl-C) still wrote its directory; it
    ends as one error line naming the reason and where the rows are (exit 2, or 130 for Ctrl-C).
    """
    from vvbench.cli.view import LiveView, summary_tables
    from vvbench.core.interrupts import sigterm_interrupts
    from vvbench.harness.run import RunOptions, run_with

    try:
        opts = RunOptions.model_validate(options)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, "command line", model=RunOptions)) from None
    title = opts.scenario if isinstance(opts.scenario, str) else opts.scenario.name
    sigterm_interrupts()  # a cancelled CI job stops the run as Ctrl-C does: its directory is written, its rows kept
    with LiveView(err_console, title) as view:
        result = run_with(opts, view=view)
    record = result.record
    if not record.status.completed:
        rows = record.summary_counts.rows
        raise RunFailed(f"{result.reason}; {rows} rows kept in {result.run_dir}", result.exit_code)
    if as_json:
        click.echo(json.dumps({"run_dir": str(result.run_dir), "status": record.status.value, "passed": record.passed,
                               "summary": record.summary, "slos": [v.model_dump() for v in record.slos],
                               "counts": record.summary_counts.model_dump()}, indent=2))
    else:
        data = record.model_dump(mode="json")
        for renderable in summary_tables(data):
            console.print(renderable)
        verdict = "every SLO met" if record.passed else "an SLO failed"
        console.print(f"run directory: [bold]{result.run_dir}[/] ({verdict})", soft_wrap=True, highlight=False)
    return result.exit_code


class RunFailed(VVBenchError):
    """A run that did not complete (its directory is written); exit 2, or 130 when interrupted."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def _worker(master_host: str, master_port: int | None) -> int:
    """Be a load worker: its log on this terminal; Ctrl-C stops it by PID (SIGTERM: it flushes its rows first)."""
    from vvbench.core.proc import Child

    worker = Child([sys.executable, "-m", "vvbench.load.worker", "--role", "worker", "--master-host", master_host,
                    "--master-port", str(master_port or 5557), "--log-level", "INFO"], name="load worker").start()
    try:
        return worker.reap(None)
    except KeyboardInterrupt:
        return worker.stop(30)


def apply_allow_faults(target: dict, target_kind: str, runtime, allow_faults: bool) -> None:
    """`--allow-faults` into the target spec; fault knobs without it (embedded) are an InputError."""
    if allow_faults and target_kind != "embedded":
        raise InputError("--allow-faults starts the embedded target's service with it; other targets are started by you")
    faults = runtime.faults.any_set()
    if target_kind == "embedded" and faults and not allow_faults:
        raise InputError(f"{', '.join('faults.' + n for n in faults)}: fault knobs need --allow-faults "
                         "(the embedded service refuses them otherwise)")
    if allow_faults:
        target["allow_faults"] = True


def target_options(func):
    """The target flags shared by `run` and `tune`: --target, --url, --command, --ready-url, --api-key."""
    for opt in reversed([
        click.option("--target", "target_kind", type=click.Choice(["embedded", "http", "command"]), default="embedded",
                     show_default=True, help="embedded: start `vvbench serve` here; http: a running service at --url; command: start --command"),
        click.option("--url", default=None, help="http: the service's base URL; command: its URL template (default http://127.0.0.1:{port})"),
        click.option("--command", "command_line", default=None, help="command: argv template with {port} and {knob} placeholders (no shell)"),
        click.option("--ready-url", default=None, help="command: readiness URL template (default http://127.0.0.1:{port}/readyz)"),
        click.option("--api-key", envvar="VVBENCH_API_KEY", default=None, help="Bearer key for the target [env VVBENCH_API_KEY]"),
    ]):
        func = opt(func)
    return func


@click.command("run")
@click.argument("scenario", required=False)
@target_options
@click.option("--allow-faults", is_flag=True, help="embedded: start the service with --allow-faults, for fault knobs (--crash-after-requests, ...)")
@click.option("--service-pid", type=int, default=None, help="http: the service's PID on this host, to sample its memory and CPU")
@click.option("--out", default="runs", show_default=True, type=click.Path(file_okay=False), help="where run directories go")
@click.option("--duration", default=None, help="measured duration, overriding the scenario's (30s, 5m)")
@click.option("--workers", type=int, default=1, show_default=True, help="load processes (local), or remote workers to wait for with --master")
@click.option("--master", is_flag=True, help="run the Locust master here and wait for --workers workers started with `vvbench run --worker`")
@click.option("--master-bind-host", default="127.0.0.1", show_default=True, help="--master: address to bind (0.0.0.0 for other hosts)")
@click.option("--master-port", type=int, default=None, help="--master: port (default 5557 for --master, a free one for local workers)")
@click.option("--worker", is_flag=True, help="be a load worker for a master at --master-host (no SCENARIO needed)")
@click.option("--master-host", default="127.0.0.1", show_default=True, help="--worker: the master's address")
@click.option("--sample-hz", type=float, default=5.0, show_default=True, help="sampling rate of memory, CPU, GPU and service stats")
@click.option("--clock", type=click.Choice(["auto", "read"]), default="auto", show_default=True,
              help="request timing: auto = kernel arrival stamps where the platform gives them; read = when the bytes were read")
@click.option("--stall-threshold-ms", type=click.FloatRange(min=0, min_open=True), default=50.0, show_default=True,
              help="a load worker's event-loop lag over this marks the run's timing as not trusted")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
@click.option("--preset", default=None, help="embedded/command: model shapes (default tiny)")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None, help="embedded/command: RuntimeConfig YAML/JSON")
@knob_options
@click.pass_context
def run_cmd(ctx, scenario, target_kind, url, command_line, ready_url, api_key, allow_faults, service_pid, out, duration, workers, master,
            master_bind_host, master_port, worker, master_host, sample_hz, clock, stall_threshold_ms, as_json, preset,
            config_path, **kwargs) -> None:
    """Run SCENARIO (a shipped name, see `vvbench scenarios list`, or a YAML file) against a target."""
    from vvbench.core.units import parse_duration

    if worker:
        ctx.exit(_worker(master_host, master_port))
    if not scenario:
        raise InputError("SCENARIO is required (a shipped name such as smoke, or a YAML file); see `vvbench scenarios list`")
    overrides = overrides_from_flags(kwargs)
    runtime_given = bool(overrides or preset or config_path)
    target = _target_spec(target_kind, url, command_line, ready_url, api_key, service_pid, runtime_given)
    runtime = _runtime(config_path, preset, overrides)
    if target_kind == "embedded" and api_key:
        target["api_key"] = api_key  # the embedded service requires it too, so authentication is exercised
    apply_allow_faults(target, target_kind, runtime, allow_faults)
    options = {"scenario": scenario, "target": target, "runtime": runtime, "out": out, "workers": workers,
               "master": master, "master_bind_host": master_bind_host, "sample_hz": sample_hz,
               "clock": clock, "stall_threshold_ms": stall_threshold_ms, "master_port": master_port or (5557 if master else None),
               "duration_s": parse_duration(duration, "--duration") if duration else None}
    ctx.exit(execute(options, as_json))


@click.command("demo")
@click.option("--out", default="runs", show_default=True, type=click.Path(file_okay=False), help="where the run directory goes")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
@click.pass_context
def demo_cmd(ctx, out: str, as_json: bool) -> None:
    """Benchmark the embedded `tiny` runtime with the `smoke` scenario (under a minute on 2 CPU cores)."""
    runtime = _runtime(None, None, dict(DEMO_RUNTIME))
    options = {"scenario": "smoke", "target": {"kind": "embedded"}, "runtime": runtime, "out": out}
    ctx.exit(execute(options, as_json))


@click.group("scenarios")
def scenarios_group() -> None:
    """List the shipped scenarios, or validate scenario files."""


@scenarios_group.command("list")
@click.option("--json", "as_json", is_flag=True)
def scenarios_list(as_json: bool) -> None:
    """The scenarios shipped in scenarios/ (use a name with `vvbench run NAME`)."""
    from rich.table import Table

    from vvbench.artifacts.scenarios import load_scenario, shipped_scenarios

    items = []
    for name, path in shipped_scenarios().items():
        s = load_scenario(path)
        items.append({"name": name, "arrival": s.arrival.kind, "warmup_s": s.warmup, "duration_s": s.duration,
                      "classes": [c.name for c in s.classes], "slos": s.slos, "description": s.description, "file": str(path)})
    if as_json:
        click.echo(json.dumps(items, indent=2))
        return
    table = Table(title="shipped scenarios")
    for col in ("name", "arrival", "window", "classes", "description"):
        table.add_column(col)
    for it in items:
        table.add_row(it["name"], it["arrival"], f"{it['warmup_s']:g} + {it['duration_s']:g} s", ", ".join(it["classes"]), it["description"])
    console.print(table)


@scenarios_group.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.pass_context
def scenarios_validate(ctx, files) -> None:
    """Validate scenario FILES; each invalid one prints `FILE: dotted.path: expectation` (exit 2)."""
    from vvbench.artifacts.scenarios import load_scenario

    bad = 0
    for f in files:
        try:
            s = load_scenario(f)
        except ConfigError as exc:
            bad += 1
            click.echo(f"vvbench: error: {' '.join(str(exc).split())}", err=True)
            continue
        click.echo(f"{f}: ok ({s.name}: {len(s.classes)} classes, {s.arrival.kind}, {s.warmup:g} + {s.duration:g} s)")
    ctx.exit(2 if bad else 0)
