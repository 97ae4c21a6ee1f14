"""The `watch`, `check-audio` and `monitor export` commands (loaded on first use by `vvbench.cli.main`).

Thin: flags -> configuration -> `monitor.*` -> output and an exit code. `watch` exits 0 when
stopped (SIGTERM, SIGINT, `--run-for`), 1 when it gave up (crash loop; an attached process gone
with no way to restart it), 2 on bad configuration. `check-audio` exits 0 when every file passes,
1 when a file fails a check, 2 when a file cannot be read. Errors are one line (VVBenchGroup).
"""

from __future__ import annotations

import json
import math
import signal
import threading
import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from vvbench.core.errors import ConfigError, InputError

console = Console()

# flag -> dotted path in WatchConfig (the file's keys); values are validated there, once.
WATCH_FLAGS = {
    "pid": "pid", "url": "url", "api_key": "api_key", "events": "events", "sample_hz": "sample_hz",
    "metrics_port": "metrics.port", "metrics_host": "metrics.host", "rss_max": "memory.rss.max", "gpu_max": "memory.gpu.max",
    "trend_window": "memory.trend.window", "trend_horizon": "memory.trend.horizon", "memory_settle": "memory.settle",
    "probe_every": "health.every", "probe_timeout": "health.timeout", "probe_slow": "health.slow",
    "probe_failures": "health.failures", "start_timeout": "health.start_timeout",
    "grace": "restart.grace", "backoff": "restart.backoff", "backoff_max": "restart.backoff_max", "stable": "restart.stable",
    "crash_loop_restarts": "restart.crash_loop.restarts", "crash_loop_window": "restart.crash_loop.window",
    "restart_cmd": "restart.command", "canary_every": "canary.every", "canary_text": "canary.text",
    "canary_seed": "canary.seed", "canary_timeout": "canary.timeout", "snr_min": "canary.checks.snr_min_db",
    "snr_drop": "canary.snr_drop_db", "alert_cmd": "alert_cmd", "alert_timeout": "alert_timeout",
    "systemd": "systemd", "run_for": "run_for",
}


def _watch_overrides(kwargs: dict, command: tuple[str, ...]) -> dict:
    out = {WATCH_FLAGS[k]: v for k, v in kwargs.items() if k in WATCH_FLAGS and v is not None}
    consecutive = kwargs.get("consecutive")
    if consecutive is not None:
        out["memory.rss.consecutive"] = out["memory.gpu.consecutive"] = consecutive
    if command:
        out["command"] = list(command)
    return out


def _metrics_server(sup, events, cfg):
    from prometheus_client import CollectorRegistry

    from vvbench.monitor.exporter import MonitorCollector, WatchCollector, serve_metrics

    registry = CollectorRegistry()
    registry.register(MonitorCollector(lambda: sup.latest_row, sup.pids, lambda: sup.state.service_up, sup.ram_total_bytes))
    registry.register(WatchCollector(sup.state.snapshot, events))
    try:
        server, port = serve_metrics(registry, cfg.metrics.port, cfg.metrics.host)
    except OSError as exc:
        raise ConfigError(f"--metrics-port: cannot listen on {cfg.metrics.host}:{cfg.metrics.port}: {exc.strerror or exc}") from None
    host = f"[{cfg.metrics.host}]" if ":" in cfg.metrics.host else cfg.metrics.host
    events.emit("metrics", "info", f"metrics at http://{host}:{port}/metrics", port=port, host=cfg.metrics.host)
    return server


def _opt(*names, **kw):
    return click.option(*names, default=None, show_default=False, **kw)


@click.command("watch", context_settings={"allow_interspersed_args": False})
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@_opt("--config", "config_path", type=click.Path(dir_okay=False), help="watch.yaml (flags override it)")
@_opt("--pid", type=int, help="attach to this running process instead of spawning COMMAND")
@_opt("--url", help="the service's base URL (default: learned from the child's 'listening on URL' line)")
@click.option("--api-key", envvar="VVBENCH_API_KEY", default=None, help="Bearer key for the canary and /v1/stats [env VVBENCH_API_KEY]")
@_opt("--events", type=click.Path(dir_okay=False), help="append every event to this JSONL file")
@_opt("--metrics-port", type=int, help="serve Prometheus /metrics on this port (0: a free one)")
@_opt("--metrics-host", help="address for /metrics (default 127.0.0.1)")
@_opt("--sample-hz", type=float, help="sampling rate (default 5)")
@_opt("--rss-max", help="restart above this RSS of the process tree: 20GiB, 90% (of RAM), +2GiB (over its RSS once settled)")
@_opt("--gpu-max", help="restart above this GPU memory: 20GiB, 90% (of the GPU), +2GiB (over its memory once settled)")
@_opt("--consecutive", type=int, help="... for this many consecutive samples (default 3)")
@_opt("--trend-window", help="memory trend fitted over this window (default 60s)")
@_opt("--trend-horizon", help="restart when the trend crosses a threshold within this long (default 60s; 0 off)")
@_opt("--memory-settle", help="after ready, trend rules wait this long and +SIZE limits take their base here (default 60s)")
@_opt("--probe-every", help="health probe period (default 2s)")
@_opt("--probe-timeout", help="health probe timeout (default 2s)")
@_opt("--probe-slow", help="a 200 slower than this is a failed probe (default 1s)")
@_opt("--probe-failures", type=int, help="restart after this many failed probes in a row (default 3)")
@_opt("--start-timeout", help="restart when not ready this long after a start (default 5m)")
@_opt("--grace", help="drain time between SIGTERM and SIGKILL (default 30s)")
@_opt("--backoff", help="delay before the first restart (default 1s), doubling for each further one")
@_opt("--backoff-max", help="longest delay between restarts (default 60s)")
@_opt("--stable", help="ready this long and the backoff starts over (default 60s)")
@_opt("--crash-loop-restarts", type=int, help="crash-loop guard: this many restarts ... (default 5)")
@_opt("--crash-loop-window", help="... within this window: stop, alert, exit 1 (default 10m)")
@_opt("--restart-cmd", help="attach mode: command that restarts the service, e.g. 'systemctl restart tts' (no shell)")
@_opt("--canary-every", help="canary period (default 60s; 0 off)")
@_opt("--canary-text", help="canary text")
@_opt("--canary-seed", type=int, help="canary seed (default 1234)")
@_opt("--canary-timeout", help="canary request timeout (default 60s)")
@_opt("--snr-min", type=float, help="canary fails below this blind SNR in dB (default 25)")
@_opt("--snr-drop", type=float, help="canary fails this many dB below its clean baseline (default 10)")
@_opt("--alert-cmd", help="run for each alert with the event JSON on stdin (no shell)")
@_opt("--alert-timeout", help="alert command time limit (default 10s)")
@click.option("--systemd/--no-systemd", default=None, help="send READY=1 and WATCHDOG=1 to $NOTIFY_SOCKET")
@_opt("--run-for", help="stop after this long (default: until SIGTERM/SIGINT)")
@click.pass_context
def watch_cmd(ctx, command, config_path, **kwargs) -> None:
    """Supervise a TTS service: `vvbench watch [OPTIONS] -- COMMAND...`, or `--pid N` to watch one.

    Restarts on memory over a threshold (or growing towards it), failed health probes and exit;
    runs a canary synthesis and flags bad audio. See docs/watchdog.md.
    """
    from vvbench.monitor.watch.config import load_watch_config, preflight
    from vvbench.monitor.watch.events import EventLog
    from vvbench.monitor.watch.supervisor import Supervisor
    from vvbench.monitor.watch.systemd import SystemdNotifier

    cfg = load_watch_config(config_path, _watch_overrides(kwargs, command))
    preflight(cfg)
    events = EventLog(cfg.events, line_sink=lambda line: click.echo(line, err=True), alert_cmd=cfg.alert_cmd,
                      alert_timeout_s=cfg.alert_timeout)
    notifier = SystemdNotifier() if cfg.systemd else SystemdNotifier({})
    sup = Supervisor(cfg, events, notifier=notifier, stdout_sink=lambda line: click.echo(line, nl=False))
    if cfg.systemd and not notifier.active:
        events.emit("systemd", "warning", "--systemd given but NOTIFY_SOCKET is not set: no notifications")
    server = None
    try:
        server = _metrics_server(sup, events, cfg) if cfg.metrics.port is not None else None
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda signum, _frame: sup.request_stop(f"received {signal.Signals(signum).name}"))
        code = sup.run()
    finally:
        if server is not None:
            server.shutdown()
        events.close()
    ctx.exit(code)


def _verdict(report) -> str:
    return "ok" if report.ok else "FAIL " + "; ".join(report.reasons())


def _fmt(v, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


@click.command("check-audio")
@click.argument("files", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="print the reports as JSON")
@click.option("--rate", type=int, default=None,
              help="sample rate of raw 16-bit little-endian PCM input (files that are not WAV, mp3, Ogg Opus, AAC or FLAC)")
@click.option("--expected-s", type=float, default=None, help="expected duration in seconds (the duration check: truncation)")
@click.option("--snr-min", type=float, default=None, help="blind SNR floor in dB (default 25)")
@click.option("--thresholds", "thresholds_path", type=click.Path(dir_okay=False), default=None,
              help="YAML of check thresholds (see docs/watchdog.md)")
@click.pass_context
def check_audio_cmd(ctx, files, as_json, rate, expected_s, snr_min, thresholds_path) -> None:
    """Check speech audio FILES (wav, mp3, opus, aac, flac, raw pcm): blind SNR, silence, dropouts, clipping, level, duration, NaN/empty."""
    import yaml
    from pydantic import ValidationError

    from vvbench.core.audio import MAX_SAMPLE_RATE
    from vvbench.core.formats.decode import read_audio_file
    from vvbench.core.validation import format_validation_error
    from vvbench.monitor.audio.checks import AudioThresholds, check_audio

    if expected_s is not None and not (math.isfinite(expected_s) and expected_s > 0):
        raise InputError(f"--expected-s must be a positive number of seconds, got {expected_s}")
    if rate is not None and not 0 < rate <= MAX_SAMPLE_RATE:
        raise InputError(f"--rate must be between 1 and {MAX_SAMPLE_RATE} Hz, got {rate}")
    raw = {}
    if thresholds_path:
        try:
            raw = yaml.safe_load(Path(thresholds_path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{thresholds_path}: cannot read thresholds: {' '.join(str(exc).split())}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{thresholds_path}: expected a mapping of thresholds, got {type(raw).__name__}")
    if snr_min is not None:
        raw["snr_min_db"] = snr_min
    try:
        thresholds = AudioThresholds.model_validate(raw)
    except ValidationError as exc:
        origins = {"snr_min_db": "command line"} if snr_min is not None else {}
        raise ConfigError(format_validation_error(exc, thresholds_path or "command line", model=AudioThresholds,
                                                  origins=origins)) from None
    results, unreadable = [], 0
    for path in files:
        try:
            samples, sr, fmt = read_audio_file(path, rate)
        except InputError as exc:
            unreadable += 1
            click.echo(f"vvbench: error: {exc}", err=True)
            results.append({"file": path, "ok": None, "error": str(exc)})
            continue
        report = check_audio(samples, sr, expected_s=expected_s, thresholds=thresholds)
        results.append({"file": path, "format": fmt, "report": report})
    if as_json:
        click.echo(json.dumps([r if "report" not in r else {"file": r["file"], "format": r["format"], **r["report"].to_json()} for r in results], indent=2))
    elif unreadable < len(results):  # nothing read: the error lines say it all
        table = Table(title="audio checks")
        for col in ("file", "format", "dur s", "SNR dB", "RMS / peak dBFS", "active", "longest gap s", "clipped", "verdict"):
            table.add_column(col, overflow="fold")
        for r in results:
            if "report" not in r:
                table.add_row(r["file"], "", "", "", "", "", "", "", "UNREADABLE")
                continue
            m = r["report"].levels.to_json()
            table.add_row(r["file"], r["format"], _fmt(m["duration_s"], ".2f"), _fmt(m["snr_db"], ".1f"),
                          f"{_fmt(m['rms_dbfs'], '.1f')} / {_fmt(m['peak_dbfs'], '.1f')}", _fmt(m["active_ratio"], ".0%"),
                          _fmt(m["longest_gap_s"], ".2f"), _fmt(m["clipped_ratio"], ".3%"), _verdict(r["report"]))
        out = console if console.is_terminal else Console(width=200)  # logs and pipes: no wrapped file names
        out.print(table)
    failed = any("report" in r and not r["report"].ok for r in results)
    ctx.exit(2 if unreadable else 1 if failed else 0)


@click.group("monitor")
def monitor_group() -> None:
    """Standalone monitoring of a running service (the watchdog exports the same metrics)."""


@monitor_group.command("export")
@click.option("--pid", type=int, required=True, help="the service's PID (its process tree is sampled)")
@click.option("--url", default=None, help="the service's base URL: vvbench_monitor_service_up probes its /healthz at each scrape")
@click.option("--health-path", default="/healthz", show_default=True)
@click.option("--port", type=int, default=9310, show_default=True, help="port for /metrics (0: a free one)")
@click.option("--host", default="127.0.0.1", show_default=True, help="address to bind (loopback by default)")
@click.option("--once", is_flag=True, help="print one scrape to stdout and exit (no server)")
@click.option("--run-for", default=None, help="stop after this long (default: until SIGTERM/SIGINT)")
def monitor_export_cmd(pid, url, health_path, port, host, once, run_for) -> None:
    """Export the service's memory, CPU and GPU readings for Prometheus, computed at each scrape."""
    import psutil
    from prometheus_client import CollectorRegistry, generate_latest

    from vvbench.core.units import parse_duration
    from vvbench.monitor.exporter import MonitorCollector, ScrapeTimeSource, serve_metrics
    from vvbench.monitor.sampleloop import SampleLoop
    from vvbench.monitor.samplers import ProcessTreeSampler, SystemCpuSampler, tree_pids
    from vvbench.monitor.watch.config import readable_process
    from vvbench.monitor.watch.probes import probe_once

    root = readable_process(pid)
    limit_s = parse_duration(run_for, "--run-for") if run_for else None

    def up() -> bool:
        alive = root.is_running() and root.status() != psutil.STATUS_ZOMBIE
        if not alive or url is None:
            return alive
        return probe_once(url.rstrip("/") + health_path, timeout_s=1.0, slow_s=1.0).ok

    # GPU readings are taken by the collector itself, per device and per process of the tree
    source = ScrapeTimeSource(SampleLoop([ProcessTreeSampler(pid), SystemCpuSampler()], hz=1.0))
    source()  # primes the CPU readings: a first CPU reading has no interval to measure over
    registry = CollectorRegistry()
    registry.register(MonitorCollector(source, lambda: tree_pids(pid), up, psutil.virtual_memory().total))
    if once:
        time.sleep(0.5)  # the interval the CPU shares of the one scrape are measured over
        click.echo(generate_latest(registry).decode(), nl=False)
        return
    try:
        server, bound = serve_metrics(registry, port, host)
    except OSError as exc:
        raise ConfigError(f"--port: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    click.echo(f"vvbench monitor: metrics at http://{host}:{bound}/metrics", err=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait(limit_s)
    server.shutdown()
