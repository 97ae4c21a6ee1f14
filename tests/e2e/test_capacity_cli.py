"""`vvbench capacity` as a user runs it: bad input is one line and exit 2; a sweep on `tiny` finds met and unmet loads.

The sweep runs `capacity-smoke` at 1, 2, 4 and 8 closed-loop users against the embedded `tiny`
runtime with `--max-batch 2`: two streams are stepped together and the others queue, so time to
first audio grows with the users whatever else the machine is doing (measured here: TTFA p50
about 0.2 s at one user, 3 s at eight, against the 1.5 s SLO). It is run twice; the second
answer must be the first or a neighbouring step of the sweep.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from fakekit import scenario_file, wait_for
from runkit import one_line_exit_2, vv

LOADS = [1, 2, 4, 8]


@pytest.mark.parametrize("args, says", [
    (["capacity-smoke", "--sweep", "users="], "the sweep is empty"),
    (["capacity-smoke", "--sweep", "users"], "expected KEY=V1,V2"),
    (["capacity-smoke", "--sweep", "streams=1,2"], "unknown key 'streams'"),
    (["capacity-smoke", "--sweep", "users=1,two"], "'two' is not a number"),
    (["capacity-smoke", "--sweep", "users=0,2"], "must be a positive number"),
    (["capacity-smoke", "--sweep", "users=-1"], "must be a positive number"),
    (["capacity-smoke", "--sweep", "users=1.5"], "whole numbers"),
    (["capacity-smoke", "--sweep", "users=1,2", "--search"], "not both"),
    (["capacity-smoke"], "give --sweep"),
    (["capacity-smoke", "--sweep", "rate=1,2"], "needs a poisson or constant"),
    (["capacity-smoke", "--search", "--min", "8", "--max", "2"], "below --min"),
    (["no-such-scenario", "--sweep", "users=1"], "unknown scenario 'no-such-scenario'"),
    (["missing.yaml", "--sweep", "users=1"], "cannot read scenario file"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, monkeypatch, args, says):
    monkeypatch.chdir(tmp_path)
    line = one_line_exit_2(vv("capacity", *args))
    assert says in line, line
    assert not (tmp_path / "capacity").exists()  # nothing ran, nothing written


def _sweep(out: Path) -> dict:
    r = subprocess.run([sys.executable, "-m", "vvbench.cli", "capacity", "capacity-smoke", "--sweep", "users=1,2,4,8",
                        "--max-batch", "2", "--target-load", "40", "--out", str(out), "--json"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(r.stdout)
    assert result == json.loads((out / "capacity.json").read_text())
    return result


@pytest.mark.slow
def test_sweep_on_tiny_finds_a_met_and_an_unmet_load_and_repeats(tmp_path):
    first = _sweep(tmp_path / "first")
    met = {p["load"]: p["met"] for p in first["points"]}
    assert sorted(met) == LOADS and met[1] and not met[8], [(p["load"], p["why"]) for p in first["points"]]
    assert first["capacity"] in LOADS[:-1]
    for p in first["points"]:
        assert (Path(p["run_dir"]) / "run.json").is_file() and Path(p["run_dir"]).parent == tmp_path / "first" / "runs"
    fleet = first["fleet"]
    assert fleet["instances"] >= 40 / (first["capacity"] * 0.8) and fleet["instances_n_plus_1"] == fleet["instances"] + 1
    page = (tmp_path / "first" / "capacity.html").read_text()
    assert page.count("<svg") == 3  # TTFA, c100 and goodput against load
    assert "capacity users = " in page

    second = _sweep(tmp_path / "second")
    i, j = LOADS.index(first["capacity"]), LOADS.index(second["capacity"])
    assert abs(i - j) <= 1, (first["capacity"], second["capacity"])


def test_sigterm_stops_the_sweep_keeps_its_directory_and_exits_130(tmp_path):
    # a cancelled CI job: the sweep stops as Ctrl-C stops it; the interrupted point is kept but is no verdict
    scen = scenario_file(tmp_path / "s.yaml", duration="60s")
    out = tmp_path / "cap"
    proc = subprocess.Popen([sys.executable, "-m", "vvbench.cli", "capacity", str(scen), "--sweep", "users=1,2", "--out", str(out), "--json",
                             "--target", "command", "--command", f"{sys.executable} -m vvbench.load.fakeserver --port {{port}}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: any((out / "runs").glob(".*.partial/.work/rows/*.parquet")), timeout_s=30)
        proc.send_signal(signal.SIGTERM)
        printed, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted (SIGTERM)" in err.splitlines()[-1], err
    result = json.loads((out / "capacity.json").read_text())
    assert json.loads(printed) == result  # --json still prints what was decided
    assert result["interrupted"] == "SIGTERM" and result["capacity"] is None
    (point,) = result["points"]
    assert point["load"] == 1 and point["status"] == "aborted" and point["met"] is None and "interrupted (SIGTERM)" in point["why"]
    assert (Path(point["run_dir"]) / "run.json").is_file()
    assert "| 1 | INTERRUPTED |" in (out / "capacity.md").read_text()
    assert "class='interrupted'" in (out / "capacity.html").read_text()
    target_pid = json.loads((Path(point["run_dir"]) / "run.json").read_text())["target"]["pid"]
    assert not psutil.pid_exists(target_pid)
