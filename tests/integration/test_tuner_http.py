"""`vvbench tune --target http` against a real `vvbench serve` that the tuner did not start.

Such a service is changed through `POST /admin/config` alone: its own config is the baseline
(here `--max-batch 2`, not the preset's default), only hot knobs are searched (the restart-only
knobs of the space are left out, with a note), and its memory is sampled through
`--service-pid`; when the study ends, the service gets its own config back. Without the service's
API key its /admin refuses the tuner, which is refused before any study exists.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import httpx
import optuna
import yaml

from tests.fakekit import scenario_file
from tests.integration.serverkit import Server

KEY = "tuning-key"


def stats(server: Server) -> dict:
    return httpx.get(f"{server.url}/v1/stats", headers={"Authorization": f"Bearer {KEY}"}, timeout=10).json()


def tune(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vvbench.cli", "tune", *args], capture_output=True, text=True, timeout=300)


def test_a_service_started_elsewhere_is_tuned_on_its_own_config_through_hot_knobs(tmp_path):
    scenario = scenario_file(tmp_path / "s.yaml", warmup="0s", duration="2s", slos={"success_min": 0.9})
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"chunk_frames": {"choices": [4, 8]}, "max_batch": {"choices": [1, 4]}}))
    # behind an API key, as a production service is: /admin takes the key, so without it the tuner can change nothing
    server = Server(tmp_path / "svc", tmp_path / "data", "--api-key", KEY, "--max-batch", "2").serve()
    target = ["--target", "http", "--url", server.url, "--service-pid", str(server.pid), "--scenario", str(scenario), "--space", str(space)]
    out = tmp_path / "D"
    try:
        before = stats(server)["config"]
        refused = tune(*target, "--out", str(tmp_path / "refused"))
        r = tune(*target, "--api-key", KEY, "--out", str(out), "--study", "s", "--trials", "2", "--finalists", "0", "--seed", "2")
        alive = server.poll() is None
        config = stats(server)["config"]
        # stopped by SIGTERM (a cancelled CI job) while a trial's knobs are on the service: given its own back all the same
        cancelled = subprocess.Popen([sys.executable, "-m", "vvbench.cli", "tune", *target, "--api-key", KEY, "--out", str(tmp_path / "C"),
                                      "--study", "c", "--trials", "3", "--finalists", "0", "--seed", "2"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 120
            while stats(server)["config"] == before and cancelled.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            during = stats(server)["config"]
            cancelled.send_signal(signal.SIGTERM)
            _, cancelled_err = cancelled.communicate(timeout=120)
        finally:
            if cancelled.poll() is None:
                cancelled.kill()
        after_cancel = stats(server)["config"]
    finally:
        server.stop(30)
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert refused.returncode == 2 and len(lines) == 1 and "takes no knobs through /admin/config" in lines[0], refused.stderr
    assert not (tmp_path / "refused" / "study.db").exists()
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
    # seed 2 samples the other choice for trial 1, so the service had a trial's knobs and was given its own back when done
    assert study.trials[-1].params == {"chunk_frames": 4} and config == before
    assert during["chunk_frames"] == 4 != before["chunk_frames"], during  # a trial's knobs were on when SIGTERM came
    assert cancelled.returncode == 130, cancelled_err[-3000:]
    assert "interrupted (SIGTERM): the study is saved; continue it with --resume" in cancelled_err
    assert after_cancel == before
    trial = optuna.load_study(study_name="c", storage=f"sqlite:///{tmp_path / 'C' / 'study.db'}").trials[1]  # (2: its follower, queued)
    assert trial.params == {"chunk_frames": 4} and trial.state == optuna.trial.TrialState.FAIL
    assert trial.user_attrs["reason"] == "interrupted (SIGTERM)"
