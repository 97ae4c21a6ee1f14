"""Five maximum-length jobs next to three closed-loop streaming clients on a real `tiny` server.

Runs `bench/longform.py ttfa` (one round: the idle condition and the five-job condition, in that
order) and checks what must hold: the jobs make progress, every streaming request succeeds with a
TTFA p95 within 2x of the idle service's, peak RSS stays within the memory budget, and deleting
every job returns /v1/stats to idle within 2 s and the job store to its size (within 1 MiB).
A real server holding ~1.4 GiB of admitted jobs, 15-60 s on a 2-core machine: `-m slow`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "longform.py"


@pytest.mark.slow
def test_five_max_length_jobs_leave_streaming_clients_their_ttfa(tmp_path):
    out = tmp_path / "rows.json"
    subprocess.run([sys.executable, str(BENCH), "ttfa", "--preset", "tiny", "--rounds", "1", "--requests", "3",
                    "--jobs", "0", "5", "--memory-budget", "2GiB", "--max-s", "600", "--out", str(out)],
                   check=True, timeout=900)
    result = json.loads(out.read_text())
    idle, loaded = (next(r for r in result["rows"] if r["jobs"] == n) for n in (0, 5))
    assert idle["ok"] == idle["sent"] and loaded["ok"] == loaded["sent"] == 9, loaded
    assert loaded["job_prefill_tokens"] > 1000, loaded  # the jobs read their scripts meanwhile
    assert loaded["ttfa_p95_s"] <= 2 * idle["ttfa_p95_s"], (idle, loaded)
    assert loaded["peak_rss_mib"] * 2**20 <= result["budget_bytes"], loaded
    assert loaded["held_for_memory"] >= 1, loaded  # not all five fit: the rest waited, none was refused
    assert loaded["idle_after_delete_s"] is not None and loaded["idle_after_delete_s"] <= 2.0, loaded
    assert abs(loaded["store_delta_bytes"]) < 2**20, loaded
