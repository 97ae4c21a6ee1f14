"""`vvbench tune --target http` against a real `vvbench serve` that the tuner did not start.

Such a service is changed through `POST /admin/config` alone: its own config is the baseline
(here `--max-batch 2`, not the preset's default), only hot knobs are searched (the restart-only
knobs of the space are left out, with a note), and its memory is sampled through
`--service-pid`. A service whose /admin is off is refused before any study exists.
"""

from __future__ import annotations

import json
import subprocess
import sys

import optuna
import yaml

from tests.fakekit import scenario_file
from tests.integration.serverkit import Server


def tune(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vvbench.cli", "tune", *args], capture_output=True, text=True, timeout=300)


def test_a_service_started_elsewhere_is_tuned_on_its_own_config_through_hot_knobs(tmp_path):
    scenario = scenario_file(tmp_path / "s.yaml", warmup="0s", duration="2s", slos={"success_min": 0.9})
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"chunk_frames": {"choices": [4, 8]}, "max_batch": {"choices": [1, 4]}}))
    closed = Server(tmp_path / "closed", tmp_path / "closed-data").serve()  # /admin off: no --api-key, no --open-admin
    try:
        r = tune("--target", "http", "--url", closed.url, "--service-pid", str(closed.pid), "--scenario", str(scenario),
                 "--space", str(space), "--out", str(tmp_path / "refused"))
    finally:
        closed.stop(30)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 2 and len(lines) == 1 and "takes no knobs through /admin/config: /admin is off" in lines[0], r.stderr
    assert not (tmp_path / "refused" / "study.db").exists()

    server = Server(tmp_path / "open", tmp_path / "open-data", "--open-admin", "--max-batch", "2").serve()
    out = tmp_path / "D"
    try:
        r = tune("--target", "http", "--url", server.url, "--service-pid", str(server.pid), "--scenario", str(scenario),
                 "--space", str(space), "--out", str(out), "--study", "s", "--trials", "2", "--finalists", "0", "--seed", "1")
        alive = server.poll() is None
        config = server.stats()["config"]
    finally:
        server.stop(30)
    assert r.returncode == 0, r.stderr[-3000:]
    assert alive and "max_batch left out: restart-only knobs" in " ".join(r.stderr.split())
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{out / 'study.db'}")
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2
    assert all(set(t.params) == {"chunk_frames"} for t in study.trials)
    assert study.trials[0].params == {"chunk_frames": 8}  # the service's own value is the baseline
    assert all(t.user_attrs["metrics"]["peak_rss_bytes"] > 100 * 2**20 for t in study.trials)  # sampled through --service-pid
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["complete"] == 2
    recommended = yaml.safe_load((out / "recommended.yaml").read_text())
    assert recommended["max_batch"] == 2 == config["max_batch"]  # the service's restart-only knobs are kept as they were
