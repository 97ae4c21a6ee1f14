"""`vvbench demo`, the README's first command: the smoke scenario against the embedded tiny runtime."""

import json
import time

import pandas as pd
from fakekit import one_run_dir, vv

from vvbench.artifacts.reader import load_run
from vvbench.artifacts.record import SCHEMA_VERSION

RUN_FILES = {"run.json", "requests.parquet", "samples.parquet", "events.jsonl", "locust", "summary.md", "report.html", "target"}
DESIGN_COLUMNS = ["request_id", "cls", "worker", "t_start", "ttfb_s", "ttfa_s", "e2e_s", "audio_s", "rtf", "chunks",
                  "max_stall_s", "underruns", "underrun_s", "text_chars", "voice", "seed", "status", "http_status",
                  "error", "bytes", "audio_md5"]


def test_demo_end_to_end(tmp_path):
    t0 = time.monotonic()
    r = vv("demo", "--out", str(tmp_path / "runs"), cwd=tmp_path, timeout=240)
    wall = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    assert wall < 120, wall  # under a minute on an idle 2-core machine; this guards against hangs on a loaded one
    run_dir = one_run_dir(tmp_path / "runs")
    assert RUN_FILES <= {p.name for p in run_dir.iterdir()}
    assert str(run_dir.name) in r.stdout and "TTFA" in r.stdout and "every SLO met" in r.stdout
    assert not (tmp_path / "vvbench-data").exists()  # the embedded service's jobs went to a temp dir

    run = json.loads((run_dir / "run.json").read_text())
    assert run["schema_version"] == SCHEMA_VERSION and run["tool"]["name"] == "vvbench" and run["status"] == "ok" and run["passed"]
    assert run["target"]["kind"] == "embedded" and run["runtime_config"]["preset"] == "tiny"
    assert run["scenario"]["name"] == "smoke" and run["host"]["cpu_count"] and "sha" in run["git"]
    assert {m["name"] for m in run["metrics"]} >= {"ttfa_p95_s", "e2e_p99_s", "rtf_p50", "c100", "success", "goodput_rps"}
    assert [v["passed"] for v in run["slos"]] == [True, True]

    rows = pd.read_parquet(run_dir / "requests.parquet")
    assert list(rows.columns[: len(DESIGN_COLUMNS)]) == DESIGN_COLUMNS
    locust = pd.read_csv(run_dir / "locust" / "locust_stats.csv")
    assert len(rows) == locust.loc[locust["Type"] == "SPEECH", "Request Count"].sum() > 0
    assert rows["warmup"].any() and (~rows["warmup"]).sum() == run["summary"]["requests"]
    ok = rows[rows["status"] == "ok"]
    assert len(ok) == len(rows)
    assert (ok["ttfb_s"] <= ok["ttfa_s"]).all() and (ok["ttfa_s"] <= ok["e2e_s"]).all()
    assert (ok["audio_s"] > 0).all() and (ok["rtf"] == ok["e2e_s"] / ok["audio_s"]).all()
    assert ok["audio_md5"].str.len().eq(32).all()

    samples = pd.read_parquet(run_dir / "samples.parquet")
    assert len(samples) >= 20 and samples["rss_bytes"].notna().all() and samples["queue_depth"].notna().any()
    assert samples["t"].min() <= rows["t_start"].min() <= rows["t_start"].max() <= samples["t"].max()
    assert run["summary"]["peak_rss_bytes"] == samples["rss_bytes"].max()

    # the run directory reads back through load_run, and the stored arrivals replay the recorded stalls exactly
    loaded = load_run(run_dir)
    assert loaded.record.status.value == "ok" and len(loaded.requests) == len(rows)
    assert loaded.requests["arrival_t_s"].map(len).gt(0).all()
    replay = loaded.replay(run["scenario"]["prebuffer_ms"])
    assert replay["max_stall_s"].tolist() == rows["max_stall_s"].tolist()
    assert replay["underruns"].tolist() == rows["underruns"].tolist()
    assert loaded.replay(60_000)["underruns"].eq(0).all()  # a minute of buffer outlasts every stall of a smoke run

    events = [json.loads(line)["event"] for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert events[:3] == ["target_starting", "target_ready", "load_started"] and "done" in events
    assert "<table>" in (run_dir / "report.html").read_text() and "smoke" in (run_dir / "summary.md").read_text()
