"""The exporter on a fresh registry: values at scrape time, promtool-clean names, the shipped dashboard and config."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import psutil
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from vvbench.monitor.exporter import (
    MonitorCollector,
    ScrapeTimeSource,
    WatchCollector,
    serve_metrics,
)
from vvbench.monitor.sampleloop import SampleLoop
from vvbench.monitor.samplers import ProcessTreeSampler, SystemCpuSampler
from vvbench.monitor.watch.canary import CanaryResult
from vvbench.monitor.watch.events import EventLog
from vvbench.monitor.watch.rules import Phase
from vvbench.monitor.watch.state import WatchState

REPO = Path(__file__).resolve().parents[3]
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed")


def build(tmp_path, pid=None):
    pid = pid or os.getpid()
    loop = SampleLoop([ProcessTreeSampler(pid), SystemCpuSampler()], hz=1)
    state = WatchState()
    state.update(phase=Phase.RUNNING, service_up=True, started_t=1.7e9, limits_bytes={"rss": 2.0 * 2**30})
    state.count("restarts", "memory", 2)
    state.count("health_probes", "ok", 5)
    state.record_canary(CanaryResult(t=1.7e9, ok=False, status=200, latency_s=0.5, failed=["snr", "md5"],
                                     checks={"http": True, "snr": False, "md5": False, "silence": True, "duration": None},
                                     snr_db=12.5, baseline_snr_db=100.0))
    events = EventLog(tmp_path / "events.jsonl")
    events.emit("restart", "warning", "test restart")
    registry = CollectorRegistry()
    registry.register(MonitorCollector(ScrapeTimeSource(loop), lambda: {pid}, lambda: True, psutil.virtual_memory().total))
    registry.register(WatchCollector(state.snapshot, events))
    return registry, events


def parse(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def names(text: str) -> set[str]:
    found = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            found.add(line.split()[2])
        elif line and not line.startswith("#"):
            found.add(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0))
    return found


def test_values_are_computed_at_scrape_time(tmp_path):
    registry, events = build(tmp_path)
    text = generate_latest(registry).decode()
    values = parse(text)
    rss = values["vvbench_monitor_process_resident_memory_bytes"]
    # The exporter reads the whole process tree: other tests' module-scoped servers are children here.
    me = psutil.Process()
    tree = me.memory_info().rss + sum(c.memory_info().rss for c in me.children(recursive=True))
    assert abs(rss - tree) < 200 * 2**20
    assert values['vvbench_watch_restarts_total{reason="memory"}'] == 2
    assert values['vvbench_watch_restarts_total{reason="exit"}'] == 0  # every reason exists from the start
    assert values['vvbench_watch_phase{phase="running"}'] == 1 and values['vvbench_watch_phase{phase="draining"}'] == 0
    assert values['vvbench_watch_canary_check_passed{check="snr"}'] == 0
    assert values['vvbench_watch_canary_check_passed{check="silence"}'] == 1
    assert 'vvbench_watch_canary_check_passed{check="duration"}' not in values  # not measured: absent, not NaN
    assert values["vvbench_watch_canary_snr_decibels"] == 12.5
    assert values['vvbench_watch_canary_failures_total{check="md5"}'] == 1
    assert values['vvbench_watch_events_total{severity="warning"}'] == 1
    assert values["vvbench_monitor_gpus"] == 0  # no GPU here: declared, zero devices, no per-device series
    assert "# TYPE vvbench_monitor_gpu_memory_used_bytes gauge" in text
    # a second scrape sees new state: nothing is cached between scrapes
    events.emit("crash_loop", "critical", "test")
    assert parse(generate_latest(registry).decode())['vvbench_watch_events_total{severity="critical"}'] == 1
    events.close()


def test_a_gone_process_leaves_its_series_out_instead_of_failing(tmp_path):
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    registry, events = build(tmp_path, pid=p.pid)
    text = generate_latest(registry).decode()
    assert "vvbench_monitor_process_resident_memory_bytes" not in parse(text)
    assert "# TYPE vvbench_monitor_process_resident_memory_bytes gauge" in text
    events.close()


@needs_promtool
def test_promtool_check_metrics_is_clean(tmp_path):
    registry, events = build(tmp_path)
    text = generate_latest(registry).decode()
    out = subprocess.run([PROMTOOL, "check", "metrics"], input=text, check=False, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and not out.stdout.strip() and not out.stderr.strip(), out.stdout + out.stderr
    events.close()


def test_dashboard_uses_only_names_the_exporter_exports(tmp_path):
    registry, events = build(tmp_path)
    exported = names(generate_latest(registry).decode())
    dashboard = json.loads((REPO / "deploy" / "grafana-vvbench.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [v["query"] for v in dashboard["templating"]["list"]]
    used = {m for e in exprs for m in re.findall(r"\bvvbench_[a-z_]+", e)}
    assert len(used) >= 20
    assert used <= exported, sorted(used - exported)
    alerts = (REPO / "deploy" / "vvbench-alerts.yml").read_text()
    assert set(re.findall(r"\bvvbench_[a-z_]+", alerts)) <= exported
    events.close()


@needs_promtool
def test_shipped_prometheus_config_and_alert_rules_are_valid():
    out = subprocess.run([PROMTOOL, "check", "config", str(REPO / "deploy" / "prometheus.yml")],
                         check=False, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout + out.stderr


def test_metrics_server_binds_loopback_and_serves(tmp_path):
    registry, events = build(tmp_path)
    server, port = serve_metrics(registry, 0)
    try:
        assert server.server_address[0] == "127.0.0.1"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            body = resp.read().decode()
        assert "vvbench_monitor_process_resident_memory_bytes" in body
    finally:
        server.shutdown()
        server.server_close()
        events.close()


@needs_promtool
def test_monitor_export_once_on_a_real_process():
    busy = "import time; x = bytearray(64 * 2**20); t = time.time() + 60\nwhile time.time() < t: pass"
    child = subprocess.Popen([sys.executable, "-c", busy])
    try:
        out = subprocess.run([sys.executable, "-m", "vvbench.cli", "monitor", "export", "--pid", str(child.pid), "--once"],
                             check=False, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        values = parse(out.stdout)
        assert values["vvbench_monitor_process_resident_memory_bytes"] >= 64 * 2**20
        assert values["vvbench_monitor_service_up"] == 1
        assert values["vvbench_monitor_process_cpu_ratio"] > 0.2  # a spinning process; measured over an interval, not 0
        lint = subprocess.run([PROMTOOL, "check", "metrics"], input=out.stdout, check=False, capture_output=True, text=True, timeout=60)
        assert lint.returncode == 0 and not lint.stdout.strip(), lint.stdout
    finally:
        child.kill()
        child.wait()
    gone = subprocess.run([sys.executable, "-m", "vvbench.cli", "monitor", "export", "--pid", str(child.pid), "--once"],
                          check=False, capture_output=True, text=True, timeout=60)
    assert gone.returncode == 2 and gone.stderr.count("\n") == 1 and "no such process" in gone.stderr
