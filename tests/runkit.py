"""Run directories for the report and compare tests, written through the run's own writers.

`write_run(root, n=..., seed=..., slow=...)` builds `n` request rows of the real schema for a
streamed TTS service whose timing is drawn from `seed` — first audio after a lognormal delay,
then a chunk of audio every ~0.6 s per second of audio (faster than real time, with jitter that
sometimes stalls the player), a few failed requests, warm-up rows — and `slow` times every
server-side delay, as `faults.slow_factor` does to a real service. Each row's playback figures
come from the playback model over the row's own arrival timeline; the samples (RSS, CPU idle)
cover the same clock; the summary and SLO verdicts are computed by the same functions a run
uses, and the directory is written by `RunDir` with the Arrow schemas. A thousand rows take
well under a second, so the default tests need no real run. `vv` runs the CLI in this process,
`vv_process` as a user does, and `one_line_exit_2` checks the one-line error of bad input.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from vvbench.artifacts.metrics import metric_table
from vvbench.artifacts.playback import simulate
from vvbench.artifacts.record import Counts, GitFacts, LoadFacts, RunRecord, RunStatus, Tool, Window
from vvbench.artifacts.rundir import RunDir
from vvbench.artifacts.scenarios import resolve_scenario
from vvbench.artifacts.schemas import REQUESTS
from vvbench.core.audio import SAMPLE_RATE
from vvbench.reports.slo import judge, request_thresholds
from vvbench.reports.summary import summarize

T0 = 1.75e9
FRAME = 3200  # samples per 7.5 Hz frame


def _row(i: int, rng: np.random.Generator, t_start: float, slow: float, prebuffer_ms: float, warmup: bool) -> dict:
    chars = int(rng.integers(20, 600))
    frames = max(2, round(chars * 0.55))
    ttfa = slow * float(rng.lognormal(math.log(0.3), 0.3))
    t, total, arrivals = ttfa, 2 * FRAME, [(ttfa, 2 * FRAME)]
    while total < frames * FRAME:
        step = min(8, frames - total // FRAME)
        t += slow * step * FRAME / SAMPLE_RATE * 0.6 * float(rng.lognormal(0, 0.35))
        total += step * FRAME
        arrivals.append((t, total))
    failed = rng.random() < 0.01
    play = simulate(arrivals, SAMPLE_RATE, ttfa + prebuffer_ms / 1000.0)
    audio_s = total / SAMPLE_RATE
    return {
        "request_id": f"w0-{i}", "cls": "short", "worker": "w0", "t_start": t_start, "ttfb_s": ttfa - 0.01, "ttfa_s": ttfa,
        "e2e_s": t, "audio_s": audio_s, "rtf": math.nan if failed else t / audio_s, "chunks": len(arrivals),
        "max_stall_s": play.max_stall_s, "underruns": play.underruns, "underrun_s": play.underrun_s, "text_chars": chars,
        "voice": "alloy", "seed": i, "status": "http_error" if failed else "ok", "http_status": 500 if failed else 200,
        "error": "HTTP 500" if failed else None, "bytes": total * 2, "audio_md5": None, "api": "speech", "warmup": warmup,
        "t_scheduled": math.nan, "lag_s": math.nan, "headers_s": 0.005, "server_queue_s": 0.0, "sample_rate": SAMPLE_RATE,
        "playback_start_s": play.start_s, "index": i,
        "arrival_t_s": [a[0] for a in arrivals], "arrival_samples": [a[1] for a in arrivals],
    }


def write_run(root: Path, *, n: int = 400, seed: int = 0, slow: float = 1.0, duration_s: float = 60.0, warmup_s: float = 5.0,
              prebuffer_ms: float = 200.0, hostname: str = "ci-host", preset: str = "tiny", created_at: float = T0 - 5,
              other_cpu: float | None = None) -> Path:
    """A finished run directory under `root` (see the module docstring); returns its path."""
    rng = np.random.default_rng(seed)
    scenario = resolve_scenario("smoke").with_duration(duration_s).model_copy(update={"warmup": warmup_s, "prebuffer_ms": prebuffer_ms})
    starts = T0 + np.sort(rng.uniform(0, warmup_s + duration_s, n))
    rows = [_row(i, rng, float(t), slow, prebuffer_ms, bool(t < T0 + warmup_s)) for i, t in enumerate(starts)]
    frame = pd.DataFrame(rows, columns=REQUESTS.names)
    ticks = T0 + np.arange(0, warmup_s + duration_s + 10, 0.2)
    samples = pd.DataFrame({"t": ticks, "rss_bytes": 6e8 + 2e5 * np.arange(len(ticks)) + rng.normal(0, 2e6, len(ticks)),
                            "sys_cpu_idle": np.clip(rng.normal(0.45, 0.08, len(ticks)), 0, 1), "sample_cpu_s": 1e-4})
    if other_cpu is not None:  # CPU cores other processes on the host used (HostOtherCpuSampler)
        samples["host_other_cpu"] = np.clip(rng.normal(other_cpu, 0.01, len(ticks)), 0, None)
    summary = summarize(frame, samples, window_s=duration_s, request_slos=request_thresholds(scenario.slos))
    verdicts = judge(scenario.slos, summary)
    rd = RunDir(root, scenario.name)
    rd.write_requests(pa.Table.from_pylist(rows, schema=REQUESTS))
    rd.write_samples(pa.Table.from_pandas(samples, preserve_index=False))
    passed = all(v.passed for v in verdicts)
    rd.write_record(RunRecord(
        tool=Tool(version="test"), git=GitFacts(sha="0" * 40, dirty=False), run_id=rd.name,
        status=RunStatus.OK if passed else RunStatus.SLO_FAILED, created_at=created_at, finished_at=T0 + warmup_s + duration_s + 10,
        host={"hostname": hostname, "cpu_count": 2, "cpu_model": "test CPU", "gpus": [], "nvml": "no GPU",
              "versions": {"vvbench": "test"}},
        target={"kind": "embedded"}, runtime_config={"preset": preset, "faults": {"slow_factor": slow}}, scenario=scenario,
        load=LoadFacts(mode="local", sample_hz=5.0),
        window=Window(start_at=T0, warmup_end=T0 + warmup_s, window_end=T0 + warmup_s + duration_s),
        metrics=metric_table(), summary=summary, slos=verdicts, passed=passed,
        summary_counts=Counts(rows=n, warmup_rows=int(frame["warmup"].sum()), failed_rows=int((frame["status"] != "ok").sum()),
                              rows_match_locust=True)))
    return rd.finalize()


def vv(*args: str) -> subprocess.CompletedProcess:
    """The CLI in this process (its real group, one-line errors and exit codes included): no interpreter start per call."""
    from click.testing import CliRunner

    from vvbench.cli.main import cli

    result = CliRunner().invoke(cli, list(args), obj={})
    return subprocess.CompletedProcess(list(args), result.exit_code, result.stdout, result.stderr)


def vv_process(*args: str) -> subprocess.CompletedProcess:
    """`vvbench ARGS` in a subprocess, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "vvbench.cli", *args], capture_output=True, text=True, timeout=180)


def one_line_exit_2(r: subprocess.CompletedProcess) -> str:
    """The single `vvbench: error:` line of a command that exited 2 (no traceback)."""
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("vvbench: error: "), (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    return lines[0]
