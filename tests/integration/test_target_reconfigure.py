"""Target.reconfigure on real services, and one warm embedded target serving several runs (the tuner's loop)."""

from __future__ import annotations

import json

import httpx
import pytest
import yaml

from vvbench.core.errors import ConfigError, TargetError
from vvbench.harness.run import run
from vvbench.harness.targets import EmbeddedTarget, HttpTarget
from vvbench.runtime.config import RuntimeConfig

SHORT = {"name": "warm", "classes": [{"name": "short", "text": {"corpus": "short"}, "length": {"dist": "fixed", "min_chars": 30}}],
         "arrival": {"closed": {"users": 1}}, "warmup": "1s", "duration": "3s", "drain": "20s", "slos": {"success_min": 0.5}}


def stats(target) -> dict:
    """/v1/stats of a target's service, with the key the target drew for it."""
    return httpx.get(f"{target.url}/v1/stats", headers={"Authorization": f"Bearer {target.api_key}"}, timeout=30).json()


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    target = EmbeddedTarget(RuntimeConfig(preset="tiny", max_batch=2, threads=1), tmp_path_factory.mktemp("warm"))
    with target:
        yield target


def test_hot_knobs_apply_on_the_warm_service_and_restart_knobs_restart_it(warm):
    pid = warm.pid
    same = warm.reconfigure({"max_batch": 2})
    assert same.how == "unchanged" and same.changed == () and warm.pid == pid

    hot = warm.reconfigure({"batch_window_ms": 12.5, "diffusion_steps": {"min": 2, "max": 6, "per_char": 0.01}})
    assert hot.how == "hot" and set(hot.changed) == {"batch_window_ms", "diffusion_steps"}
    assert warm.pid == pid and stats(warm)["config"]["batch_window_ms"] == 12.5

    cold = warm.reconfigure({"max_batch": 3, "chunk_frames": 6})
    assert cold.how == "restart" and set(cold.changed) == {"max_batch", "chunk_frames"}
    assert warm.pid != pid and warm.alive()
    config = stats(warm)["config"]
    assert config["max_batch"] == 3 and config["chunk_frames"] == 6
    assert config["batch_window_ms"] == 12.5  # the hot change survived the restart

    with pytest.raises(ConfigError, match="max_batch"):
        warm.reconfigure({"max_batch": 0})
    assert stats(warm)["config"]["max_batch"] == 3  # a refused value changes nothing


def test_an_http_target_applies_hot_knobs_but_cannot_restart(warm):
    # the embedded service drew its own key: admin is closed to anyone without it
    assert httpx.post(f"{warm.url}/admin/config", json={"batch_window_ms": 7.0}, timeout=30).status_code == 401
    keyless = HttpTarget(warm.url)
    keyless.start()
    with pytest.raises(TargetError):
        keyless.reconfigure({"batch_window_ms": 7.0})
    other = HttpTarget(warm.url, api_key=warm.api_key)
    other.start()
    assert other.reconfigure({"batch_window_ms": 7.0}).how == "hot"
    assert stats(warm)["config"]["batch_window_ms"] == 7.0
    with pytest.raises(TargetError, match="max_batch need a restart"):
        other.reconfigure({"max_batch": 1})


def test_one_warm_target_serves_several_runs_and_stays_up(warm, tmp_path):
    scenario = tmp_path / "warm.yaml"
    scenario.write_text(yaml.safe_dump(SHORT))
    pid = warm.pid
    first = run(scenario, target=warm, out=tmp_path / "runs")
    warm.reconfigure({"batch_window_ms": 3.0})
    second = run(scenario, target=warm, out=tmp_path / "runs")
    assert first.status.value == "ok" and second.status.value == "ok", (first.reason, second.reason)
    assert first.exit_code == 0 and first.run_dir != second.run_dir
    assert warm.alive() and warm.pid == pid  # not stopped by either run
    records = [json.loads((r.run_dir / "run.json").read_text()) for r in (first, second)]
    assert [r["target"]["pid"] for r in records] == [pid, pid]
    assert records[1]["runtime_config"]["batch_window_ms"] == 3.0
    events = [json.loads(line)["event"] for line in (first.run_dir / "events.jsonl").read_text().splitlines()]
    assert events[0] == "target_reused" and "target_stopped" not in events
