"""The gate on real runs of the embedded `tiny` service: the same config passes, `faults.slow_factor 1.5` fails.

Each pair of runs goes at the same time (two `vvbench run` processes, each with its own embedded
service on one thread), so both see the same contention from whatever else shares the machine:
run one after the other on a shared 2-core machine, two runs of the same config were seen to
differ by 20-40% in E2E, which the gate rightly calls a change. Side by side, each run is the
other's "other work" on the host, so compare needs `--force` (it refuses a run measured on a busy
host). Each run lasts the scenario's
fixed 3 + 20 s (plus start-up and drain); nothing here waits on a timer of its own.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from fakekit import one_run_dir, vv

pytestmark = pytest.mark.slow

SCENARIO = {
    "name": "gate", "seed": 0, "description": "two closed-loop users, short texts of similar length",
    "classes": [{"name": "short", "text": {"corpus": "short"}, "length": {"min_chars": 30, "max_chars": 40}, "timeout": "30s"}],
    "arrival": {"closed": {"users": 2}}, "warmup": "3s", "duration": "20s", "drain": "20s", "prebuffer_ms": 200,
}


def run_pair(tmp_path, name: str, *new_flags: str):
    """Two runs of the gate scenario at the same time: the base, and one with `new_flags`; their directories."""
    scen = tmp_path / "gate.yaml"
    scen.write_text(yaml.safe_dump(SCENARIO))
    outs = [tmp_path / f"{name}-base", tmp_path / f"{name}-new"]
    procs = [subprocess.Popen([sys.executable, "-m", "vvbench.cli", "run", str(scen), "--threads", "1", "--out", str(out), *flags],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for out, flags in zip(outs, ((), new_flags))]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
    return [one_run_dir(out) for out in outs]


def test_same_config_passes_and_a_slowed_service_fails_on_ttfa_and_e2e(tmp_path):
    base, same = run_pair(tmp_path, "aa")
    r = vv("compare", str(base), str(same), "--format", "json", "--force")
    assert r.returncode == 0, r.stdout[-4000:]
    assert json.loads(r.stdout)["regressed"] == []

    base, slow = run_pair(tmp_path, "slow", "--allow-faults", "--slow-factor", "1.5")
    assert json.loads((slow / "run.json").read_text())["runtime_config"]["faults"]["slow_factor"] == 1.5
    r = vv("compare", str(base), str(slow), "--format", "json", "--force")
    assert r.returncode == 1, r.stdout[-4000:]
    regressed = json.loads(r.stdout)["regressed"]
    assert any(m.startswith("ttfa_") for m in regressed) and any(m.startswith("e2e_") for m in regressed), regressed
