"""Several `vvbench tune` workers on one study, stale trials of a dead worker, and warm starts.

PostgreSQL is real: Debian's server, initialised by the test in a temporary directory owned by
the `postgres` user (the server refuses to run as root), listening on a free loopback port with
its socket in that directory, and stopped with `pg_ctl stop -m fast` by its data directory. Each
worker is its own `vvbench tune` process with its own embedded service. All `-m slow`.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import psutil
import pytest
import yaml
from fakekit import scenario_file, vv

from vvbench.core.net import free_port
from vvbench.tuner.study import counted

pytestmark = pytest.mark.slow


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


def _as_postgres(*argv) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", "postgres", "--", *map(str, argv)], check=True, capture_output=True, text=True, timeout=120)


@pytest.fixture
def postgres_url():
    bindir = _pg_bin()
    if bindir is None or shutil.which("runuser") is None:
        pytest.skip("PostgreSQL server binaries are not installed (scripts/install.sh test installs them)")
    root = Path(tempfile.mkdtemp(prefix="vvbench-pg-"))
    os.chmod(root, 0o755)
    data = root / "data"
    shutil.chown(root, "postgres", "postgres")
    port = free_port()
    _as_postgres(bindir / "initdb", "-D", data, "-A", "trust", "-U", "postgres")
    _as_postgres(bindir / "pg_ctl", "-D", data, "-l", root / "log", "-w", "-o",
                 f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        _as_postgres(bindir / "pg_ctl", "-D", data, "stop", "-m", "fast")
        shutil.rmtree(root, ignore_errors=True)


def _tune_argv(tmp: Path, out: str, storage: str, *extra: str) -> list[str]:
    scenario = scenario_file(tmp / "t.yaml", warmup="0s", duration="2s", slos={"success_min": 0.9})
    space = tmp / "space.yaml"
    space.write_text(yaml.safe_dump({"diffusion_steps": {"choices": [8, 10]}, "chunk_frames": {"choices": [4, 8]}}))
    return [sys.executable, "-m", "vvbench.cli", "tune", "--preset", "tiny", "--scenario", str(scenario), "--space", str(space),
            "--storage", storage, "--study", "s", "--out", str(tmp / out), "--finalists", "0", *extra]


def _start(argv) -> subprocess.Popen:
    # own session: the worker and the service it starts can be stopped together by the worker's PID
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _wait_for(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.3)
    return False


def _study(storage: str) -> optuna.Study | None:
    try:
        return optuna.load_study(study_name="s", storage=storage)
    except KeyError:
        return None


def test_two_workers_share_one_postgres_study_without_running_a_trial_twice(tmp_path, postgres_url):
    first = _start(_tune_argv(tmp_path, "A", postgres_url, "--trials", "5", "--seed", "1"))
    try:
        # the first worker creates the study (two creating it at once would race); the second joins it with --resume
        assert _wait_for(lambda: (s := _study(postgres_url)) is not None and s.user_attrs.get("objectives"), 120)
        second = _start(_tune_argv(tmp_path, "B", postgres_url, "--trials", "5", "--seed", "2", "--resume"))
        out_b, err_b = second.communicate(timeout=900)
        out_a, err_a = first.communicate(timeout=900)
    finally:
        for p in (first,):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
    assert first.returncode == 0, err_a[-3000:]
    assert second.returncode == 0, err_b[-3000:]
    study = _study(postgres_url)
    trials = [t for t in study.trials if not t.user_attrs.get("surplus")]
    assert counted(study) == 5 and len(trials) == 5
    workers = {t.user_attrs["worker"] for t in trials}
    assert len(workers) == 2, workers  # both took part
    run_dirs = [t.user_attrs["run_dir"] for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(run_dirs) == len(set(run_dirs))
    # every trial ran on exactly one worker: its run directory is under that worker's tune directory
    under = {"A": sum(1 for d in run_dirs if Path(d).is_relative_to(tmp_path / "A")),
             "B": sum(1 for d in run_dirs if Path(d).is_relative_to(tmp_path / "B"))}
    assert under["A"] + under["B"] == len(run_dirs) and min(under.values()) >= 1, under
    assert sum(1 for t in trials if t.user_attrs.get("baseline")) == 1


def test_a_dead_workers_running_trial_is_failed_as_stale_by_the_next_one(tmp_path):
    storage = f"sqlite:///{tmp_path / 'T.db'}"
    doomed = _start(_tune_argv(tmp_path, "A", storage, "--trials", "3", "--heartbeat", "1"))
    try:
        assert _wait_for(lambda: (s := _study(storage)) is not None
                         and any(t.state == optuna.trial.TrialState.RUNNING for t in s.trials), 180)
        # what it started (the service, in a session of its own, the load) is in no group of the worker's
        left = psutil.Process(doomed.pid).children(recursive=True)
        assert any("serve" in p.cmdline() for p in left), [p.cmdline() for p in left]
        os.killpg(doomed.pid, signal.SIGKILL)  # the worker, as a power cut or the OOM killer would
        doomed.wait(timeout=30)
        # none of it outlives the worker: the service drains its trial's requests (30 s at most) and stops
        _, alive = psutil.wait_procs(left, timeout=40)
        assert not alive, [p.cmdline() for p in alive]
    finally:
        if doomed.poll() is None:
            os.killpg(doomed.pid, signal.SIGKILL)
    stale = next(t.number for t in _study(storage).trials if t.state == optuna.trial.TrialState.RUNNING)
    time.sleep(3.5)  # past the grace period (3 heartbeats of 1 s)
    r = vv(*_tune_argv(tmp_path, "A", storage, "--trials", "3", "--heartbeat", "1", "--resume")[3:], timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    study = _study(storage)
    assert study.trials[stale].state == optuna.trial.TrialState.FAIL
    row = json.loads((tmp_path / "A" / "trials.json").read_text())[stale]
    assert row["reason"].startswith("stale: its worker") and row["worker"].endswith(f":{doomed.pid}")
    assert counted(study) == 3


def test_a_new_study_is_warm_started_from_another_ones_pareto_set(tmp_path):
    storage = f"sqlite:///{tmp_path / 'T.db'}"
    r = vv(*_tune_argv(tmp_path, "A", storage, "--trials", "3", "--seed", "2")[3:], timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    old = json.loads((tmp_path / "A" / "pareto.json").read_text())
    argv = _tune_argv(tmp_path, "B", storage, "--trials", str(1 + len(old)), "--warm-start", "s")[3:]
    argv[argv.index("--study") + 1] = "s2"
    r = vv(*argv, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    new = optuna.load_study(study_name="s2", storage=storage).trials
    assert new[0].user_attrs["baseline"]
    expected = [t["params"] for t in old if t["params"] != new[0].params]
    warm = [t.params for t in new if t.user_attrs.get("warm_start") == "s"]
    assert warm == [p for i, p in enumerate(expected) if p not in expected[:i]]
    assert "warm start:" in json.dumps(json.loads((tmp_path / "B" / "summary.json").read_text())["notes"])
