"""`vvbench history` and `compare --baseline latest-passing` as a user runs them, on run directories
written by the run's own writers (tests/runkit.py); the same logic on real runs is tests/e2e/test_history_series.py."""

from __future__ import annotations

import json
import sqlite3

from runkit import T0, one_line_exit_2, vv, write_run


def runs(tmp_path, slows, name="runs"):
    """Run directories of one scenario started an hour apart (not registered: `history --add` does that)."""
    return [write_run(tmp_path / name, n=200, seed=200 + i, slow=s, created_at=T0 + 3600 * i) for i, s in enumerate(slows)]


def test_history_lists_the_runs_and_names_the_run_where_the_shift_began(tmp_path):
    dirs = runs(tmp_path, [1.0] * 6 + [1.5] * 6)
    db = tmp_path / "index.sqlite"
    r = vv("history", "--db", str(db), *(a for d in dirs for a in ("--add", str(d))), "--format", "json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert [x["run_id"] for x in data["runs"]] == [d.name for d in dirs]
    shifts = data["change_points"]["smoke"]
    for metric in ("ttfa_p95_s", "e2e_p50_s", "e2e_p95_s"):
        assert [s["run_id"] for s in shifts[metric]] == [dirs[6].name], (metric, shifts[metric])
        assert shifts[metric][0]["worse"] is True
    md = vv("history", "--db", str(db), "--scenario", "smoke", "--metric", "e2e_p50")
    assert md.returncode == 0 and f"e2e_p50_s: shift began at run {dirs[6].name}" in md.stdout, md.stdout
    assert md.stdout.count("| 2025-") == 12  # one table row per run
    page = tmp_path / "history.html"
    assert vv("history", "--db", str(db), "--metric", "e2e_p50_s,ttfa_p95", "--format", "html", "--out", str(page)).returncode == 0
    text = page.read_text()
    assert text.count("<svg") == 2 and "chart-smoke-e2e_p50_s" in text and "http://" not in text.replace("http://www.w3.org", "")
    newest = json.loads(vv("history", "--db", str(db), "--limit", "3", "--format", "json").stdout)
    assert [x["run_id"] for x in newest["runs"]] == [d.name for d in dirs[-3:]]


def test_a_flat_history_names_no_run(tmp_path):
    dirs = runs(tmp_path, [1.0] * 10)
    db = tmp_path / "index.sqlite"
    r = vv("history", "--db", str(db), *(a for d in dirs for a in ("--add", str(d))), "--format", "json")
    assert r.returncode == 0, r.stderr
    assert {m: s for m, s in json.loads(r.stdout)["change_points"]["smoke"].items() if s} == {}
    assert "no change point" in vv("history", "--db", str(db)).stdout


def test_compare_takes_the_latest_passing_run_from_the_index_as_baseline(tmp_path):
    dirs = runs(tmp_path, [1.0, 1.0, 1.0, 1.5])
    db = tmp_path / "runs" / "index.sqlite"  # next to the runs: where compare looks by default
    assert vv("history", "--db", str(db), *(a for d in dirs for a in ("--add", str(d)))).returncode == 0
    with sqlite3.connect(db) as conn:  # the newest earlier run failed its SLOs: not a baseline
        conn.execute("UPDATE runs SET status = 'slo_failed', passed = 0 WHERE run_id = ?", (dirs[2].name,))
    r = vv("compare", "--baseline", "latest-passing", str(dirs[3]), "--format", "json")
    assert r.returncode == 1, r.stdout[-2000:]
    data = json.loads(r.stdout)
    assert data["base"] == dirs[1].name and any(m.startswith("e2e_") for m in data["regressed"])
    assert f"baseline: {dirs[1].name}" in r.stderr
    same = vv("compare", "latest-passing", str(dirs[1]), "--format", "json")  # BASE named as an argument
    assert same.returncode == 0 and json.loads(same.stdout)["base"] == dirs[0].name, same.stderr
    assert vv("compare", str(dirs[0]), str(dirs[1])).returncode == 0  # BASE NEW still works


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    dirs = runs(tmp_path, [1.0, 1.0])
    db = tmp_path / "runs" / "index.sqlite"
    assert vv("history", "--db", str(db), "--add", str(dirs[1])).returncode == 0  # only the newest run indexed
    junk = tmp_path / "junk.sqlite"
    junk.write_text("not a database " * 100)
    cases = [
        (("history", "--db", str(junk)), "not a vvbench history index"),
        (("history", "--db", str(tmp_path / "absent.sqlite")), "no history index there"),
        (("history", "--db", str(db), "--metric", "ttfa_p96"), "unknown metric 'ttfa_p96'"),
        (("history", "--db", str(db), "--scenario", "podcast"), "no run of 'podcast'"),
        (("history", "--db", str(db), "--min-change", "lots"), "not a percentage"),
        (("history", "--db", str(db), "--add", str(tmp_path)), "run.json"),
        (("compare", "--baseline", "latest-passing", str(dirs[1])), "no passing run of scenario 'smoke'"),
        (("compare", "--baseline", "latest-passing", "--db", str(junk), str(dirs[1])), "not a vvbench history index"),
        (("compare", "--baseline", "latest-passing", str(dirs[0]), str(dirs[1])), "only NEW"),
        (("compare", str(dirs[1])), "give BASE and NEW"),
        (("compare", str(dirs[0]), "latest-passing"), "names a baseline: NEW must be a run directory"),
    ]
    for args, needle in cases:
        line = one_line_exit_2(vv(*args))
        assert needle in line, (args, line)
