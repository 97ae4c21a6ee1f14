"""The root `vvbench` group: global flags, one-line errors, and commands loaded on first use.

Exit codes: 0 ok, 1 a check failed (an SLO, a regression, an audio check), 2 usage or input
error with one line on stderr (`--debug` shows the traceback), 130 interrupted.

Each command lives in the module named in `COMMANDS` and is imported only when it is invoked
(or when `--help` lists the commands), so a command's start-up cost and side effects are its
own: `vvbench watch` loads the monitor, never the runtime, torch or Locust.
"""

from __future__ import annotations

import importlib
import logging
import sys
import traceback

import click

from vvbench import __version__
from vvbench.core.errors import VVBenchError

# command name -> "module:attribute", in the order `--help` lists them
COMMANDS = {
    "demo": "vvbench.cli.bench:demo_cmd",
    "run": "vvbench.cli.bench:run_cmd",
    "scenarios": "vvbench.cli.bench:scenarios_group",
    "serve": "vvbench.cli.runtime:serve",
    "synth": "vvbench.cli.runtime:synth",
    "plan": "vvbench.cli.runtime:plan",
    "watch": "vvbench.cli.watch:watch_cmd",
    "check-audio": "vvbench.cli.watch:check_audio_cmd",
    "monitor": "vvbench.cli.watch:monitor_group",
    "report": "vvbench.cli.report:report_cmd",
    "compare": "vvbench.cli.compare:compare_cmd",
    "history": "vvbench.cli.history:history_cmd",
    "tune": "vvbench.cli.tune:tune_cmd",
    "capacity": "vvbench.cli.capacity:capacity_cmd",
}


class VVBenchGroup(click.Group):
    """Loads commands lazily; turns VVBenchError into one line and its exit code (2 by default), and click's usage
    errors (an invalid flag value, a missing argument, an unknown command or flag) into one line and exit 2."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, _, attr = target.partition(":")
        return getattr(importlib.import_module(module), attr)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except VVBenchError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                traceback.print_exc()
            click.echo(f"vvbench: error: {' '.join(str(exc).split())}", err=True)
            ctx.exit(exc.exit_code)
        except click.UsageError as exc:  # a command's flag value, a missing argument, an unknown command
            _usage_line(exc, ctx.command_path)
            ctx.exit(exc.exit_code)

    def make_context(self, info_name, args, parent=None, **extra) -> click.Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:  # the root's own flags (`vvbench --nope`)
            _usage_line(exc, info_name or "vvbench")
            raise click.exceptions.Exit(exc.exit_code) from None


def _usage_line(exc: click.UsageError, where: str) -> None:
    where = exc.ctx.command_path if exc.ctx is not None else where
    click.echo(f"vvbench: error: {' '.join(exc.format_message().split())} (see {where} --help)", err=True)


@click.group(cls=VVBenchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="show tracebacks")
@click.option("-v", "--verbose", count=True, help="log more (-v info, -vv debug)")
@click.version_option(__version__, prog_name="vvbench")
@click.pass_context
def cli(ctx: click.Context, debug: bool, verbose: int) -> None:
    """Benchmark, monitor and autotune text-to-speech serving."""
    from vvbench.core.proc import follow_tether

    follow_tether()  # started by a vvbench process (a tuner's service, a test's watchdog): stop when it is gone
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def main() -> None:
    """Console-script entry point."""
    cli(obj={})
