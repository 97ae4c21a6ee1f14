"""The run directory as code: write it through the models and schemas, read it back through load_run."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vvbench.artifacts.reader import load_run
from vvbench.artifacts.record import SCHEMA_VERSION, Counts, GitFacts, LoadFacts, RunRecord, RunStatus, Tool, Window
from vvbench.artifacts.rundir import RunDir
from vvbench.artifacts.scenarios import resolve_scenario
from vvbench.artifacts.schemas import ARRIVAL_COLUMNS, LOOP, REQUESTS, conform
from vvbench.core.audio import to_pcm16
from vvbench.core.errors import ArtifactError
from vvbench.load.audio import AudioStream
from vvbench.load.client import Outcome
from vvbench.load.mix import RequestSpec
from vvbench.load.records import build_row, to_table

RATE = 24_000


def _outcome(i: int) -> Outcome:
    """A request whose audio arrived in bursts with a gap, so that small prebuffers stall."""
    out = Outcome(t_start=1000.0 + i, http_status=200)
    stream = AudioStream("pcm", RATE)
    for k, t in enumerate((0.3, 0.45, 0.9 + 0.1 * i, 1.5)):
        data = to_pcm16(0.3 * np.sin(np.arange(int(0.2 * RATE)) / 5.0 + k))
        if math.isnan(out.ttfb_s):
            out.ttfb_s = t
        if stream.feed(data) and math.isnan(out.ttfa_s):
            out.ttfa_s = t
        out.e2e_s, out.bytes, out.chunks = t, out.bytes + len(data), out.chunks + 1
        out.arrivals.append((t, stream.samples))
    out.stream = stream
    return out


def write_run(root, n: int = 6, prebuffer_ms: float = 100.0):
    scenario = resolve_scenario("smoke").model_copy(update={"prebuffer_ms": prebuffer_ms})
    rd = RunDir(root, scenario.name)
    rows = [build_row(RequestSpec(index=i, cls="short", api="speech", text="Hello.", voice="alloy", seed=i, response_format="pcm",
                                  stream_format="audio", speed=1.0, timeout_s=30, poll_s=1),
                      _outcome(i), worker="w0", prebuffer_ms=prebuffer_ms, warmup=i == 0) for i in range(n)]
    rd.write_requests(to_table(rows))
    rd.write_samples(pa.Table.from_pylist([{"t": 1000.0 + k, "rss_bytes": 2**28 + k, "sample_cpu_s": 1e-4} for k in range(5)]))
    record = RunRecord(tool=Tool(version="0"), git=GitFacts(), run_id=rd.name, status=RunStatus.OK, created_at=999.0,
                       finished_at=1010.0, host={"hostname": "h"}, target={"kind": "http"}, scenario=scenario,
                       load=LoadFacts(sample_hz=5.0), window=Window(), metrics=[], summary={"ttfa_p95_s": 0.3}, slos=[],
                       passed=True, summary_counts=Counts(rows=n, warmup_rows=1, failed_rows=0, rows_match_locust=True))
    rd.write_record(record)
    return rd.finalize()


def test_round_trip_and_replay_at_the_own_prebuffer_gives_the_recorded_stalls(tmp_path):
    path = write_run(tmp_path)
    run = load_run(path)
    assert run.record.status is RunStatus.OK and run.version == SCHEMA_VERSION
    assert run.record.scenario.name == "smoke" and len(run.requests) == 6 and len(run.samples) == 5
    assert list(run.requests.columns) == REQUESTS.names
    assert run.samples["gpu_mem_used_bytes"].isna().all()  # a sampler column the run did not have: null
    own = run.replay(run.record.scenario.prebuffer_ms)
    assert (run.requests["underruns"] > 0).any(), "the synthetic rows must stall at 100 ms of prebuffer"
    assert own["max_stall_s"].tolist() == run.requests["max_stall_s"].tolist()
    assert own["underruns"].tolist() == run.requests["underruns"].tolist()
    assert own["underrun_s"].tolist() == run.requests["underrun_s"].tolist()
    assert (run.replay(2000)["underruns"] == 0).all()  # two seconds of buffer outlast every gap


def one_line_error(path) -> str:
    with pytest.raises(ArtifactError) as info:
        run = load_run(path)
        _ = run.requests, run.samples
    message = str(info.value)
    assert "\n" not in message
    return message


def test_a_newer_schema_is_refused(tmp_path):
    path = write_run(tmp_path)
    data = json.loads((path / "run.json").read_text())
    data["schema_version"] = SCHEMA_VERSION + 1
    (path / "run.json").write_text(json.dumps(data))
    message = one_line_error(path)
    assert "run.json" in message and "newer" in message


def test_missing_and_corrupt_files_name_the_file(tmp_path):
    path = write_run(tmp_path)
    raw = (path / "requests.parquet").read_bytes()
    (path / "requests.parquet").write_bytes(raw[: len(raw) // 2])
    assert "requests.parquet" in one_line_error(path)
    (path / "run.json").write_text("{not json")
    assert "run.json: not valid JSON" in one_line_error(path)
    (path / "run.json").unlink()
    assert "run.json: missing" in one_line_error(path)
    assert "no such run directory" in one_line_error(tmp_path / "nope")


def test_a_record_that_does_not_validate_names_the_field(tmp_path):
    path = write_run(tmp_path)
    data = json.loads((path / "run.json").read_text())
    data["status"] = "mostly fine"
    (path / "run.json").write_text(json.dumps(data))
    assert "status" in one_line_error(path)


def test_a_schema_1_run_is_upgraded_and_says_it_cannot_replay(tmp_path):
    path = write_run(tmp_path)
    data = json.loads((path / "run.json").read_text())
    data.update(schema_version=1, status="target_died", passed=False)
    del data["formulas"]["percentile"]
    (path / "run.json").write_text(json.dumps(data))
    old = pq.read_table(path / "requests.parquet").drop_columns(list(ARRIVAL_COLUMNS))
    pq.write_table(old, path / "requests.parquet")
    run = load_run(path)
    assert run.version == 1 and run.record.status is RunStatus.TARGET_FAILED and run.record.formulas.percentile
    assert run.requests["arrival_t_s"].isna().all() and len(run.requests) == 6
    with pytest.raises(ArtifactError, match="did not record arrival timelines"):
        run.replay(200)


def test_writes_are_checked_against_the_schema():
    table = to_table([])
    with pytest.raises(ArtifactError, match="columns not in the schema: extra"):
        conform(table.append_column("extra", pa.array([], pa.int64())), REQUESTS, "requests.parquet")
    with pytest.raises(ArtifactError, match="missing columns: ttfa_s"):
        conform(table.drop_columns(["ttfa_s"]), REQUESTS, "requests.parquet")


@pytest.mark.parametrize("damage", ["newer", "truncated", "no-record"])
def test_vvbench_report_says_one_line_and_exits_2(tmp_path, damage):
    path = write_run(tmp_path)
    ok = subprocess.run([sys.executable, "-m", "vvbench.cli", "report", str(path)], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "vvbench run" in ok.stdout, ok.stderr
    if damage == "newer":
        data = json.loads((path / "run.json").read_text())
        data["schema_version"] = 99
        (path / "run.json").write_text(json.dumps(data))
    elif damage == "truncated":
        (path / "samples.parquet").write_bytes((path / "samples.parquet").read_bytes()[:40])
    else:
        (path / "run.json").unlink()
    r = subprocess.run([sys.executable, "-m", "vvbench.cli", "report", str(path)], capture_output=True, text=True, timeout=120)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("vvbench: error: "), r.stderr
    assert "Traceback" not in r.stderr


def test_a_schema_2_run_reads_with_an_unknown_clock_and_no_loop(tmp_path):
    path = write_run(tmp_path)
    data = json.loads((path / "run.json").read_text())
    data["schema_version"] = 2
    del data["trust"]
    (path / "run.json").write_text(json.dumps(data))
    pq.write_table(pq.read_table(path / "requests.parquet").drop_columns(["clock"]), path / "requests.parquet")
    run = load_run(path)
    assert run.version == 2 and run.record.trust is None
    assert run.requests["clock"].isna().all() and len(run.requests) == 6
    assert len(run.loop) == 0 and list(run.loop.columns) == list(LOOP.names)
    assert run.replay(200)["underruns"].notna().all()  # schema 2 has arrival timelines


def test_a_schema_3_run_keeps_its_clock_and_loop(tmp_path):
    path = write_run(tmp_path)
    pq.write_table(pa.Table.from_pylist([{"t": 1000.0, "worker": "w0", "lag_s": 0.2, "tick_s": 0.01, "run_delay_s": 0.0,
                                          "cpu_s": 0.001}], schema=LOOP), path / "loop.parquet")
    run = load_run(path)
    assert (run.requests["clock"] == "read").all()  # Outcome's default: no kernel stamps in these synthetic rows
    assert run.loop["lag_s"].tolist() == [0.2]


def test_a_schema_3_run_reads_its_format_columns_as_nulls(tmp_path):
    from vvbench.artifacts.schemas import FORMAT_COLUMNS

    path = write_run(tmp_path)
    assert (load_run(path).requests["format"] == "pcm").all()  # today's rows name their format
    data = json.loads((path / "run.json").read_text())
    data["schema_version"] = 3
    (path / "run.json").write_text(json.dumps(data))
    pq.write_table(pq.read_table(path / "requests.parquet").drop_columns(list(FORMAT_COLUMNS)), path / "requests.parquet")
    run = load_run(path)
    assert run.version == 3 and run.record.schema_version == SCHEMA_VERSION
    assert all(run.requests[c].isna().all() for c in FORMAT_COLUMNS) and len(run.requests) == 6
    assert list(run.requests.columns) == REQUESTS.names
