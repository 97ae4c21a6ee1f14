"""`vvbench run` as a user runs it, against the scripted fake server (a real HTTP process).

Each test starts the fake server with the timing it needs — pausing mid-stream, slower than
real time, dying after N requests — runs the CLI in a subprocess, and reads the run directory.
"""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import psutil
import pytest
from fakekit import FakeTTS, one_run_dir, scenario_file, vv, wait_for

from vvbench.artifacts.scenarios import load_scenario
from vvbench.load.arrivals import schedule

RUN_FILES = {"run.json", "requests.parquet", "samples.parquet", "events.jsonl", "locust", "summary.md", "report.html"}


def read_run(run_dir):
    return json.loads((run_dir / "run.json").read_text()), pd.read_parquet(run_dir / "requests.parquet")


def assert_ok_row_invariants(rows: pd.DataFrame) -> None:
    ok = rows[rows["status"] == "ok"]
    assert len(ok)
    assert (ok["ttfb_s"] <= ok["ttfa_s"]).all() and (ok["ttfa_s"] <= ok["e2e_s"]).all()
    assert (ok["audio_s"] > 0).all()
    assert (ok["rtf"] == ok["e2e_s"] / ok["audio_s"]).all()


def one_error_line(r: subprocess.CompletedProcess) -> str:
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("vvbench: error: "), r.stderr
    assert "Traceback" not in r.stderr
    return lines[0]


def test_pausing_server_shows_the_stall_in_every_format(tmp_path):
    # chunks of 0.4 s audio every 0.1 s, 0.5 s of leading silence, a 2 s pause after 1.2 s of audio:
    # first audible audio at the 2nd chunk (0.15 s), playback from 0.35 s, 1.2 s buffered -> runs out
    # at 1.55 s, next audio at 2.35 s -> one stall of 0.8 s.
    classes = [
        {"name": "wav", "text": {"corpus": "short"}, "length": {"min_chars": 45, "max_chars": 60}, "timeout": "20s"},
        {"name": "sse_pcm", "text": {"corpus": "short"}, "length": {"min_chars": 45, "max_chars": 60},
         "response_format": "pcm", "stream_format": "sse", "timeout": "20s"},
        {"name": "job", "api": "job", "text": {"corpus": "short"}, "length": {"min_chars": 45, "max_chars": 60},
         "poll_interval": "0.2s", "timeout": "20s"},
    ]
    scen = scenario_file(tmp_path / "mix.yaml", classes=classes, arrival={"closed": {"users": 6}}, duration="3s",
                         slos={"success_min": 1.0, "c100_min": 0.99})
    with FakeTTS("--pause-after-s", "1.0", "--pause-s", "2.0", "--rtf", "0.25", "--silence-s", "0.5") as fake:
        r = vv("run", str(scen), "--target", "http", "--url", fake.url, "--out", str(tmp_path / "runs"), "--json")
    assert r.returncode == 1, r.stderr  # every request stalled 0.8 s: the continuity SLO fails
    run_dir = one_run_dir(tmp_path / "runs")
    assert RUN_FILES <= {p.name for p in run_dir.iterdir()}
    run, rows = read_run(run_dir)
    assert set(rows["cls"]) == {"wav", "sse_pcm", "job"} and (rows["status"] == "ok").all(), rows["error"].tolist()
    assert_ok_row_invariants(rows)
    speech = rows[rows["api"] == "speech"]
    assert (speech["ttfa_s"] - speech["ttfb_s"]).between(0.05, 0.5).all()  # the silent first chunk is not audible audio
    assert speech["max_stall_s"].between(0.6, 1.0).all(), speech["max_stall_s"].tolist()
    assert (speech["underruns"] == 1).all()
    jobs = rows[rows["api"] == "job"]
    assert (jobs["max_stall_s"] > 0.4).all() and (jobs["chunks"] > 3).all()
    counts = run["load"]["locust_requests"]
    assert len(rows) == counts["SPEECH"] + counts["JOB"] and run["summary_counts"]["rows_match_locust"]
    result = json.loads(r.stdout)
    assert result["passed"] is False and {v["slo"]: v["passed"] for v in result["slos"]} == {"success_min": True, "c100_min": False}
    assert result["summary"]["c100"] == 0.0 and result["summary"]["success"] == 1.0


def test_open_loop_keeps_its_rate_against_a_slow_server(tmp_path):
    # every request takes 0.5 s + its 2-3 s of audio: a closed loop would slow down, an open loop must not
    rate, duration = 10.0, 5.0
    scen = scenario_file(tmp_path / "poisson.yaml", arrival={"poisson": {"rate": rate}}, duration=f"{duration}s", drain="30s",
                         classes=[{"name": "s", "text": {"corpus": "short"}, "length": {"min_chars": 30, "max_chars": 45},
                                   "timeout": "20s"}])
    scheduled = len(schedule(load_scenario(scen).arrival, duration, seed=1))
    assert abs(scheduled - rate * duration) <= 0.15 * rate * duration
    with FakeTTS("--rtf", "1", "--first-delay-s", "0.5") as fake:
        r = vv("run", str(scen), "--target", "http", "--url", fake.url, "--out", str(tmp_path / "runs"))
    assert r.returncode == 0, r.stderr
    _, rows = read_run(one_run_dir(tmp_path / "runs"))
    assert len(rows) == scheduled and (rows["status"] == "ok").all()
    assert abs(len(rows) - rate * duration) <= 0.15 * rate * duration
    assert rows["lag_s"].quantile(0.95) < 0.25, rows["lag_s"].describe()
    starts, ends = rows["t_start"].to_numpy(), (rows["t_start"] + rows["e2e_s"]).to_numpy()
    peak = max(((starts <= t) & (ends > t)).sum() for t in starts)
    assert peak >= 20  # requests overlapped: nobody waited for an answer before sending
    assert_ok_row_invariants(rows)


def test_two_local_workers_share_the_load(tmp_path):
    scen = scenario_file(tmp_path / "s.yaml", arrival={"closed": {"users": 4}}, duration="3s")
    with FakeTTS() as fake:
        r = vv("run", str(scen), "--target", "http", "--url", fake.url, "--workers", "2", "--out", str(tmp_path / "runs"))
    assert r.returncode == 0, r.stderr
    run, rows = read_run(one_run_dir(tmp_path / "runs"))
    assert set(rows["worker"]) == {"w0", "w1"} and rows["request_id"].is_unique
    assert len(rows) == run["load"]["locust_requests"]["SPEECH"]
    assert run["load"]["mode"] == "master + 2 local workers"


def test_target_dying_mid_run_is_exit_2_with_rows_kept(tmp_path):
    scen = scenario_file(tmp_path / "s.yaml", duration="20s")
    t0 = time.monotonic()
    r = vv("run", str(scen), "--target", "command", "--out", str(tmp_path / "runs"),
           "--command", f"{sys.executable} -m vvbench.load.fakeserver --port {{port}} --exit-after 4")
    assert r.returncode == 2, (r.stdout, r.stderr)
    line = one_error_line(r)
    assert "exited with code 70" in line and "rows kept in" in line
    assert time.monotonic() - t0 < 20  # noticed at once, not at the end of the window
    run_dir = one_run_dir(tmp_path / "runs")
    run, rows = read_run(run_dir)
    assert run["status"] == "target_failed" and str(run_dir.name) in line
    assert (rows["status"] == "ok").sum() >= 3 and len(rows) == run["summary_counts"]["rows"]
    assert (run_dir / "target" / "stdout.log").exists()


def test_unreachable_target_is_one_line_exit_2(tmp_path):
    r = vv("run", "smoke", "--target", "http", "--url", "http://127.0.0.1:9", "--out", str(tmp_path / "runs"))
    assert r.returncode == 2
    line = one_error_line(r)
    assert "http://127.0.0.1:9 is unreachable" in line and "0 rows kept" in line
    run, rows = read_run(one_run_dir(tmp_path / "runs"))
    assert run["status"] == "target_failed" and len(rows) == 0


def test_invalid_scenario_file_is_one_line_exit_2(tmp_path):
    bad = scenario_file(tmp_path / "bad.yaml", arrival={"closed": {"users": 0}})
    r = vv("run", str(bad), "--target", "http", "--url", "http://127.0.0.1:9", "--out", str(tmp_path / "runs"))
    assert r.returncode == 2
    assert f"{bad}: arrival.closed.users: Input should be greater than or equal to 1" in one_error_line(r)
    assert not (tmp_path / "runs").exists()
    good = scenario_file(tmp_path / "good.yaml")
    v = vv("scenarios", "validate", str(good), str(bad))
    assert v.returncode == 2 and f"{good}: ok" in v.stdout
    assert f"{bad}: arrival.closed.users:" in one_error_line(v)
    assert vv("scenarios", "validate", str(good)).returncode == 0


def test_usage_errors(tmp_path):
    for args, words in ((["run"], "SCENARIO is required"), (["run", "smoke", "--target", "http"], "needs --url"),
                        (["run", "smoke", "--target", "http", "--url", "http://x", "--max-batch", "4"], "not --target http"),
                        (["run", "smoke", "--duration", "soon"], "cannot read 'soon' as a duration"),
                        (["run", "smoke", "--target", "command", "--command", "my-tts --port {port} --x {nope}"],
                         "unknown placeholder {nope}")):
        r = vv(*args, cwd=tmp_path)
        assert r.returncode == 2 and words in one_error_line(r), (args, r.stderr)
    runs = tmp_path / "runs"
    assert not runs.exists() or not any(runs.iterdir())  # nothing ran: no run directory, not even a partial one


def test_scenarios_list_json():
    r = vv("scenarios", "list", "--json")
    assert r.returncode == 0
    names = {s["name"] for s in json.loads(r.stdout)}
    assert {"smoke", "short-burst", "dialogue", "podcast-long", "spike-15", "nightly"} <= names


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_stops_everything_and_keeps_the_run(tmp_path, sig):
    # SIGTERM as a cancelled CI job or `timeout` sends it: the same clean stop as Ctrl-C, not Python's default death
    scen = scenario_file(tmp_path / "s.yaml", duration="60s")
    out = tmp_path / "runs"
    # As a terminal's foreground job has it: SIGINT at its default. A suite started in the background of a
    # shell without job control inherits SIGINT ignored, and a process that inherits SIG_IGN keeps it (POSIX).
    proc = subprocess.Popen([sys.executable, "-m", "vvbench.cli", "run", str(scen), "--target", "command", "--out", str(out),
                             "--command", f"{sys.executable} -m vvbench.load.fakeserver --port {{port}}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert wait_for(lambda: any(out.glob(".*.partial/.work/rows/*.parquet")), timeout_s=30)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert f"interrupted ({'SIGTERM' if sig == signal.SIGTERM else 'Ctrl-C'})" in err
    run, rows = read_run(one_run_dir(out))
    assert run["status"] == "aborted" and len(rows) > 0
    assert not psutil.pid_exists(run["target"]["pid"])
    children = [p for p in psutil.process_iter(["cmdline"]) if str(out) in " ".join(p.info["cmdline"] or [])]
    assert not children


def test_a_sigkilled_run_leaves_no_load_on_a_service_it_did_not_start(tmp_path):
    # SIGKILL (the OOM killer, a power cut) runs none of `vvbench run`'s clean-up; its load process, in a session of
    # its own, would go on loading a production service for the rest of the 60 s window but for its tether
    scen = scenario_file(tmp_path / "s.yaml", duration="60s")
    out = tmp_path / "runs"
    with FakeTTS() as fake:
        proc = subprocess.Popen([sys.executable, "-m", "vvbench.cli", "run", str(scen), "--target", "http", "--url", fake.url,
                                 "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert wait_for(lambda: any(out.glob(".*.partial/.work/rows/*.parquet")), timeout_s=30)
            load = [p for p in psutil.Process(proc.pid).children(recursive=True) if "vvbench.load.worker" in p.cmdline()]
            assert load
            proc.kill()
            proc.wait(10)
            _, alive = psutil.wait_procs(load, timeout=15)  # its SIGTERM: users stopped, rows flushed, exit
            assert not alive, [p.cmdline() for p in alive]
            assert fake.running  # not ours: left alone
        finally:
            if proc.poll() is None:
                proc.kill()
            for p in psutil.process_iter(["cmdline"]):
                if str(out) in " ".join(p.info["cmdline"] or []):
                    p.kill()


def test_embedded_target_crashing_mid_run(tmp_path):
    scen = scenario_file(tmp_path / "s.yaml", duration="30s")
    r = vv("run", str(scen), "--preset", "tiny", "--max-batch", "2", "--allow-faults", "--crash-after-requests", "3", "--out", str(tmp_path / "runs"))
    assert r.returncode == 2 and "exited with code 70" in one_error_line(r)
    run, rows = read_run(one_run_dir(tmp_path / "runs"))
    assert run["status"] == "target_failed" and (rows["status"] == "ok").sum() >= 1
    assert np.isfinite(rows["t_start"]).all()
