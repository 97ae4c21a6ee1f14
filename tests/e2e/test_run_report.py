"""`vvbench run` writes report.html and summary.md; `vvbench report` re-renders them byte for byte.

Against the scripted fake server (a real HTTP process) pausing 2 s mid-stream, so every request
stalls at the run's prebuffer and the report has stalls to draw.
"""

from __future__ import annotations

from fakekit import FakeTTS, one_run_dir, scenario_file, vv


def test_the_runs_own_report_is_what_report_re_renders(tmp_path):
    scen = scenario_file(tmp_path / "s.yaml", duration="3s", arrival={"closed": {"users": 3}})
    with FakeTTS("--pause-after-s", "1.0", "--pause-s", "2.0", "--rtf", "0.25") as fake:
        r = vv("run", str(scen), "--target", "http", "--url", fake.url, "--out", str(tmp_path / "runs"))
    assert r.returncode == 0, r.stderr
    run_dir = one_run_dir(tmp_path / "runs")
    html = vv("report", str(run_dir), "--format", "html")
    assert html.returncode == 0, html.stderr
    assert html.stdout == (run_dir / "report.html").read_text()
    assert vv("report", str(run_dir)).stdout == (run_dir / "summary.md").read_text()
    page = html.stdout
    assert "playback stall" in page and "id='chart-timeline'><svg" in page
    # 2.5 s of prebuffer outlasts the 2 s pause, 200 ms does not
    md = vv("report", str(run_dir), "--prebuffer-ms", "2500").stdout
    assert "| 200 ms (the run's) | 0.0% | 0.0% | 0.0% |" in md and "| 2500 ms | 100.0% | 100.0% | 100.0% |" in md
