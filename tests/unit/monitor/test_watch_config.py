"""Watchdog configuration: units, precedence (file < flags), and bad configuration as one line and exit 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from vvbench.core.errors import ConfigError
from vvbench.monitor.watch.config import load_watch_config, parse_limit, preflight
from vvbench.monitor.watch.rules import Limit

CMD = {"command": [sys.executable, "-c", "pass"]}


@pytest.mark.parametrize("text, expected", [
    ("20GiB", Limit(bytes=20 * 2**30)), ("512MB", Limit(bytes=512 * 10**6)), ("123456", Limit(bytes=123456)),
    ("90%", Limit(fraction=0.9)), ("0.9", Limit(fraction=0.9)), (0.5, Limit(fraction=0.5)), (4096, Limit(bytes=4096)),
    ("+150MB", Limit(growth_bytes=150 * 10**6)),
])
def test_thresholds_read_sizes_and_shares(text, expected):
    assert parse_limit(text) == expected


@pytest.mark.parametrize("text, message", [
    ("-5GiB", "must not be negative"), ("20XB", "cannot read"), ("0", "must be positive"), ("150%", "between 0 and 1"),
    ("0%", "must be positive"), ("+0", "must be positive"), ("+5%", "cannot read"),
])
def test_bad_thresholds(text, message):
    with pytest.raises(ValueError, match=message):
        parse_limit(text)


def test_file_then_flags(tmp_path):
    path = tmp_path / "watch.yaml"
    path.write_text("memory:\n  rss: {max: 2GiB, consecutive: 5}\nhealth: {every: 500ms, failures: 4}\n"
                    "canary: {every: 10s, checks: {snr_min_db: 20}}\nrestart: {grace: 1m}\n")
    cfg = load_watch_config(path, {**CMD, "memory.rss.max": "90%", "health.every": "3s"})
    assert cfg.memory.rss.max == Limit(fraction=0.9)  # flag wins
    assert cfg.memory.rss.consecutive == 5  # file kept where no flag
    assert cfg.health.every == 3.0 and cfg.health.failures == 4
    assert cfg.canary.every == 10.0 and cfg.canary.checks.snr_min_db == 20
    assert cfg.restart.grace == 60.0
    assert cfg.metrics.host == "127.0.0.1" and cfg.metrics.port is None


def test_defaults_build_the_rule_set():
    cfg = load_watch_config(None, CMD)
    assert [r.name for r in cfg.rules()] == ["exit", "start_timeout", "health"]
    cfg = load_watch_config(None, {**CMD, "memory.rss.max": "1GiB", "memory.gpu.max": "90%", "canary.restart_after": 2})
    assert [r.name for r in cfg.rules()] == ["exit", "start_timeout", "memory", "memory", "memory_trend",
                                                  "memory_trend", "health", "canary"]
    no_trend = load_watch_config(None, {**CMD, "memory.rss.max": "1GiB", "memory.trend.horizon": "0s"})
    assert "memory_trend" not in [r.name for r in no_trend.rules()]


@pytest.mark.parametrize("overrides, message", [
    ({**CMD, "memory.rss.max": "-1GiB"}, "command line: memory.rss.max: must not be negative"),
    ({**CMD, "memory.gpu.max": "20XB"}, "command line: memory.gpu.max: cannot read '20XB' as a size"),
    ({**CMD, "health.every": "5 parsecs"}, "command line: health.every:"),
    ({**CMD, "health.failures": 0}, "command line: health.failures:"),
    ({}, "give either a command"),
    ({**CMD, "pid": 1}, "not both or neither"),
    ({**CMD, "restart.command": "true"}, "attach mode"),
])
def test_invalid_values_name_the_field(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_watch_config(None, overrides)


def test_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("memory:\n  rss: {maximum: 2GiB}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: memory.rss.maximum: unknown key; allowed: max, consecutive"):
        load_watch_config(bad, CMD)
    with pytest.raises(ConfigError, match="cannot read"):
        load_watch_config(tmp_path / "missing.yaml", CMD)
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_watch_config(tmp_path / "list.yaml", CMD)


def test_preflight_finds_missing_commands_and_dead_pids():
    with pytest.raises(ConfigError, match="command not found: no-such-tts-server"):
        preflight(load_watch_config(None, {"command": ["no-such-tts-server", "--port", "1"]}))
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    with pytest.raises(ConfigError, match=f"--pid {p.pid}: no such process"):
        preflight(load_watch_config(None, {"pid": p.pid}))
    preflight(load_watch_config(None, CMD))  # a real command passes


def vv(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vvbench.cli", *args], check=False, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("args, message", [
    (["--rss-max", "-5GiB", "--", sys.executable, "-c", "pass"], "must not be negative"),
    (["--gpu-max", "20XB", "--", sys.executable, "-c", "pass"], "cannot read '20XB' as a size"),
    (["--pid", "999999999"], "no such process"),
    (["--", "no-such-tts-server"], "command not found: no-such-tts-server"),
    (["--probe-every", "-2s", "--", sys.executable], "must not be negative"),
    (["--memory-settle", "-5s", "--", sys.executable], "memory.settle: must not be negative"),
    (["--events", "/proc/no-such-dir/events.jsonl", "--", sys.executable], "cannot open for appending"),
    (["--config", "/nonexistent/watch.yaml", "--", sys.executable], "/nonexistent/watch.yaml: cannot read"),
])
def test_watch_cli_bad_configuration_is_one_line_and_exit_2(args, message):
    out = vv("watch", *args)
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vvbench: error: ") and message in lines[0], out.stderr
    assert out.stdout == ""
