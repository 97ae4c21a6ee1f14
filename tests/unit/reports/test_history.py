"""The history index over run directories written by the run's own writers (tests/runkit.py).

A series of runs of one scenario, 6 at `slow` 1.0 and 6 at `slow` 1.5 (every server-side delay
50% longer, as `faults.slow_factor` does), must have its latency change point named at the 7th
run; the same 12 runs all at 1.0 must have none. Each run has its own seed, so the series carries
run-to-run noise as real runs do.
"""

from __future__ import annotations

import sqlite3

import pytest
from runkit import T0, write_run

from vvbench.artifacts.reader import load_run
from vvbench.core.errors import ArtifactError
from vvbench.reports.history import INDEX_SCHEMA, HistoryIndex, change_points, config_hash, default_db, register_run


def series(tmp_path, slows, **kw):
    """Run directories of one scenario started an hour apart, registered in `tmp_path/index.sqlite`; (db, run ids)."""
    db, ids = tmp_path / "index.sqlite", []
    for i, slow in enumerate(slows):
        path = write_run(tmp_path / "runs", n=200, seed=100 + i, slow=slow, created_at=T0 + 3600 * i, **kw)
        run = load_run(path)
        register_run(db, path, run.record)
        ids.append(run.record.run_id)
    return db, ids


def test_register_and_list_keep_what_a_run_was(tmp_path):
    db, ids = series(tmp_path, [1.0, 1.0, 1.0])
    with HistoryIndex(db) as index:
        runs = index.runs()
        assert [r.run_id for r in runs] == ids  # oldest first
        assert index.scenarios() == ["smoke"]
        first = runs[0]
        record = load_run(first.path).record
        assert first.scenario == "smoke" and first.host == "ci-host" and first.preset == "tiny"
        assert first.git_sha == "0" * 40 and first.config_hash == config_hash(record.runtime_config)
        assert first.status == record.status.value and first.passed == record.passed
        assert first.metrics["ttfa_p95_s"] == pytest.approx(record.summary["ttfa_p95_s"])
        assert [r.run_id for r in index.runs(limit=2)] == ids[1:]
        assert index.runs("dialogue") == []


def test_registering_a_run_again_replaces_it(tmp_path):
    db, ids = series(tmp_path, [1.0])
    with HistoryIndex(db) as index:
        path = index.runs()[0].path
    register_run(db, path, load_run(path).record)
    with HistoryIndex(db) as index:
        assert [r.run_id for r in index.runs()] == ids


def test_latest_passing_is_the_newest_ok_run_of_that_scenario_preset_and_host_before_new(tmp_path):
    db, ids = series(tmp_path, [1.0, 1.0, 1.0])
    with HistoryIndex(db) as index:
        runs = index.runs()
        assert all(r.passed for r in runs), [r.status for r in runs]
        assert index.latest_passing("smoke").run_id == ids[-1]
        assert index.latest_passing("smoke", before=runs[2].created_at, exclude=ids[2]).run_id == ids[1]
        assert index.latest_passing("smoke", host="other-host") is None
        assert index.latest_passing("smoke", preset="small") is None
        assert index.latest_passing("dialogue") is None


def test_a_failed_or_vanished_run_is_never_the_baseline(tmp_path):
    db, ids = series(tmp_path, [1.0, 1.0])
    with HistoryIndex(db) as index:
        newest = index.runs()[-1]
    import shutil

    shutil.rmtree(newest.path)  # a runs folder pruned by retention
    with HistoryIndex(db, create=True) as index:
        assert index.latest_passing("smoke").run_id == ids[0]
        index.conn.execute("UPDATE runs SET status = 'slo_failed' WHERE run_id = ?", (ids[0],))
        index.conn.commit()
        assert index.latest_passing("smoke") is None


def test_a_run_measured_on_a_busy_host_is_never_the_baseline(tmp_path):
    db, ids = tmp_path / "index.sqlite", []
    for i, other in enumerate([0.02, 0.9]):  # the newer one ran while other work took 0.9 of 2 cores
        path = write_run(tmp_path / "runs", n=100, seed=200 + i, created_at=T0 + 3600 * i, other_cpu=other)
        register_run(db, path, load_run(path).record)
        ids.append(load_run(path).record.run_id)
    with HistoryIndex(db) as index:
        assert index.latest_passing("smoke").run_id == ids[0]


def test_a_file_that_is_not_an_index_is_refused_and_left_alone(tmp_path):
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database, just text " * 40)
    with pytest.raises(ArtifactError, match="not a vvbench history index"):
        HistoryIndex(junk)
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    for create in (False, True):
        with pytest.raises(ArtifactError, match="without its meta table"):
            HistoryIndex(other, create=create)
    with sqlite3.connect(other) as conn:
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["t"]
    with pytest.raises(ArtifactError, match="no history index there"):
        HistoryIndex(tmp_path / "absent.sqlite")
    assert not (tmp_path / "absent.sqlite").exists()


def test_an_index_of_a_newer_schema_is_refused(tmp_path):
    db, _ = series(tmp_path, [1.0])
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(INDEX_SCHEMA + 1),))
    with pytest.raises(ArtifactError, match="newer than this vvbench reads"):
        HistoryIndex(db)


def test_the_default_index_sits_in_the_runs_root_unless_the_environment_names_one(tmp_path, monkeypatch):
    monkeypatch.delenv("VVBENCH_HISTORY_DB", raising=False)
    assert default_db(tmp_path / "runs") == tmp_path / "runs" / "index.sqlite"
    monkeypatch.setenv("VVBENCH_HISTORY_DB", str(tmp_path / "elsewhere.sqlite"))
    assert default_db(tmp_path / "runs") == tmp_path / "elsewhere.sqlite"


def test_a_slow_step_is_named_at_the_first_slowed_run(tmp_path):
    db, ids = series(tmp_path, [1.0] * 6 + [1.5] * 6)
    with HistoryIndex(db) as index:
        runs = index.runs(completed=True)
    for metric in ("ttfa_p50_s", "e2e_p50_s"):
        shifts = change_points(runs, metric)
        assert [s.run_id for s in shifts] == [ids[6]], (metric, shifts)
        shift = shifts[0]
        assert shift.worse and shift.change == pytest.approx(0.5, abs=0.15) and shift.p_value < 0.001
        assert (shift.n_before, shift.n_after) == (6, 6)
    assert [s.worse for s in change_points(runs, "throughput_rps")] in ([], [True])  # fewer requests per second, if any


def test_a_flat_series_has_no_change_point(tmp_path):
    db, _ = series(tmp_path, [1.0] * 12)
    with HistoryIndex(db) as index:
        runs = index.runs(completed=True)
    for metric in ("ttfa_p50_s", "ttfa_p95_s", "e2e_p50_s", "e2e_p95_s", "rtf_p95", "c100"):
        assert change_points(runs, metric) == [], metric
