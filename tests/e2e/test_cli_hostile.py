"""Hostile command lines: each is one `vvbench: error:` line and exit 2, never a traceback or a hang.

Every command here fails before a model loads or a socket opens, so each is a second or two.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from fakekit import vv

AUDIO = "/etc/hostname"  # any small regular file reads as raw PCM with --rate

CASES = [
    # sizes and durations that overflow a float (1e400 reads as infinity)
    (["watch", "--rss-max", "1e400", "--", "true"], ["memory.rss.max", "too large"]),
    (["watch", "--trend-window", "1e400s", "--", "true"], ["memory.trend.window", "too large"]),
    (["serve", "--memory-guard", "1e400"], ["memory_guard", "too large"]),
    (["plan", "--budget", "1e400"], ["--budget", "too large"]),
    # knobs out of their finite bounds, from flags
    (["serve", "--request-timeout-s", "inf"], ["request_timeout_s", "finite"]),
    (["serve", "--cfg-scale", ".nan"], ["cfg_scale", "finite"]),
    (["serve", "--threads", "1024"], ["threads", "less than or equal to"]),
    (["serve", "--diffusion-steps", "adaptive:1,10,1e308"], ["diffusion_steps", "per_char"]),
    (["serve", "--header-timeout-s", "nan"], ["header_timeout_s", "finite"]),
    (["serve", "--max-jobs", "0"], ["max_jobs"]),
    # who may change the service
    (["serve", "--crash-after-requests", "3"], ["faults.crash_after_requests", "--allow-faults"]),
    (["serve", "--leak-mb-per-request", "10", "--noise-db", "-30"], ["faults.leak_mb_per_request", "faults.noise_db", "--allow-faults"]),
    (["serve", "--open-admin", "--host", "0.0.0.0"], ["--open-admin", "0.0.0.0"]),
    (["run", "smoke", "--hang-after-requests", "2"], ["faults.hang_after_requests", "--allow-faults"]),
    # check-audio
    (["check-audio", "--rate", "4294967295", AUDIO], ["--rate", "384000"]),
    (["check-audio", "--rate", "24000", "--expected-s", "nan", AUDIO], ["--expected-s", "nan"]),
    (["check-audio", "--rate", "24000", "--expected-s", "inf", AUDIO], ["--expected-s", "inf"]),
    (["check-audio", "--rate", "24000", "/dev/zero"], ["/dev/zero", "not a regular file"]),
    # a service PID that is not a process here (its memory would read NA, its CPU as other work)
    (["run", "smoke", "--target", "http", "--url", "http://127.0.0.1:1", "--service-pid", "999999999"], ["--service-pid 999999999", "no process"]),
    (["tune", "--scenario", "smoke", "--target", "http", "--url", "http://127.0.0.1:1", "--service-pid", "0"], ["--service-pid 0", "no process"]),
    # what click itself refuses: a flag's type, a missing argument or option, an unknown command or flag
    (["tune", "--scenario", "smoke", "--quality-floor", "abc"], ["--quality-floor", "not a valid float", "tune --help"]),
    (["run", "smoke", "--workers", "x"], ["--workers", "not a valid integer"]),
    (["report"], ["Missing argument 'RUN_DIR'"]),
    (["tune"], ["Missing option '--scenario'"]),
    (["nope"], ["No such command 'nope'"]),
    (["scenarios", "nope"], ["No such command 'nope'", "scenarios --help"]),
    (["--nope"], ["No such option '--nope'"]),
    (["run", "smoke", "--bogus"], ["No such option '--bogus'"]),
]


@pytest.mark.parametrize("args, words", CASES, ids=[" ".join(a)[:60] for a, _ in CASES])
def test_hostile_command_line_is_one_line_and_exit_2(tmp_path, args, words):
    r = vv(*args, timeout=60, cwd=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [line for line in (r.stdout + r.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("vvbench: error:"), r.stdout + r.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_a_fault_from_the_environment_needs_the_flag_too(tmp_path):
    r = subprocess.run([sys.executable, "-m", "vvbench.cli", "serve", "--port", "0"], capture_output=True, text=True,
                       timeout=60, cwd=tmp_path, env={**os.environ, "VVBENCH_FAULTS__NOISE_DB": "-30"})
    assert r.returncode == 2 and "faults.noise_db" in r.stderr and "--allow-faults" in r.stderr, r.stderr
