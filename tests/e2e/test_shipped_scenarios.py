"""Every shipped scenario's run directory reads back through load_run and replays its own stalls (slow).

Each scenario runs as shipped (its mix, arrival process, formats and APIs), shortened to a few
seconds, against the scripted fake server (fast and exact, so the test stays minutes, not the
scenarios' real half hours), then its directory is read with `load_run`: the record validates,
both parquet files match their schemas, and the playback model replayed over every row's stored
arrival timeline at the scenario's prebuffer gives exactly the recorded stalls.
"""

from __future__ import annotations

import pytest
import yaml
from fakekit import FakeTTS, one_run_dir, vv

from vvbench.artifacts.reader import load_run
from vvbench.artifacts.scenarios import shipped_scenarios

pytestmark = pytest.mark.slow


def shortened(path, dest):
    data = yaml.safe_load(path.read_text())
    stages = (data.get("arrival") or {}).get("stages")
    if stages:
        total = sum(float(str(s["duration"]).rstrip("s")) for s in stages["stages"])
        for s in stages["stages"]:
            s["duration"] = f"{float(str(s['duration']).rstrip('s')) * 6 / total:.3f}s"
        data["warmup"] = "1s"
        data.pop("duration", None)
    else:
        data["warmup"], data["duration"] = "1s", "4s"
    data["drain"] = "20s"
    for cls in data["classes"]:
        cls["timeout"] = "20s"
        cls.setdefault("length", {})
        cls["length"]["max_chars"] = min(cls["length"].get("max_chars", 400), 600)
        cls["length"]["min_chars"] = min(cls["length"].get("min_chars", 1), 300)
        if "median_chars" in cls["length"]:
            cls["length"]["median_chars"] = min(cls["length"]["median_chars"], 300)
    dest.write_text(yaml.safe_dump(data))
    return dest


@pytest.mark.parametrize("name", sorted(shipped_scenarios()))
def test_a_shipped_scenario_round_trips_through_load_run(name, tmp_path):
    scenario = shortened(shipped_scenarios()[name], tmp_path / f"{name}.yaml")
    with FakeTTS("--chars-per-s", "200", "--rtf", "0.1") as fake:
        r = vv("run", str(scenario), "--target", "http", "--url", fake.url, "--out", str(tmp_path / "runs"), timeout=300)
    assert r.returncode in (0, 1), r.stderr  # a shortened scenario may miss an SLO; it must complete
    run = load_run(one_run_dir(tmp_path / "runs"))
    assert run.record.status.completed and run.record.scenario.classes
    rows = run.requests
    assert len(rows) == run.record.summary_counts.rows > 0
    ok = rows[rows["status"] == "ok"]
    assert len(ok) and ok["arrival_t_s"].map(len).gt(0).all()
    replay = run.replay(run.record.scenario.prebuffer_ms)
    assert replay["max_stall_s"].fillna(-1).tolist() == rows["max_stall_s"].fillna(-1).tolist()
    assert replay["underruns"].tolist() == rows["underruns"].tolist()
    assert len(run.samples) > 0
