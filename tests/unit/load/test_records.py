"""Rows built from synthetic outcomes: invariants, failed rows, parquet round trip."""

import math

import numpy as np
import pytest

from vvbench.artifacts.schemas import REQUEST_COLUMNS as COLUMNS
from vvbench.core.audio import to_pcm16
from vvbench.load.audio import AudioStream
from vvbench.load.client import Outcome
from vvbench.load.mix import RequestSpec
from vvbench.load.records import RowRecorder, build_row, read_rows

RATE = 24_000
SPEC = RequestSpec(index=7, cls="short", api="speech", text="Hello there.", voice="alloy", seed=3,
                   response_format="pcm", stream_format="audio", speed=1.0, timeout_s=30, poll_s=1)

DESIGN_COLUMNS = ["request_id", "cls", "worker", "t_start", "ttfb_s", "ttfa_s", "e2e_s", "audio_s", "rtf", "chunks",
                  "max_stall_s", "underruns", "underrun_s", "text_chars", "voice", "seed", "status", "http_status",
                  "error", "bytes", "audio_md5"]


def streamed(pieces: list[tuple[float, float]]) -> Outcome:
    """An outcome whose audio (a loud tone) arrived as (t_s, seconds of audio) pieces."""
    out = Outcome(t_start=1000.0, http_status=200)
    s = AudioStream("pcm", RATE)
    for t, secs in pieces:
        data = to_pcm16(0.3 * np.sin(np.arange(int(secs * RATE)) / 5.0))
        if math.isnan(out.ttfb_s):
            out.ttfb_s = t
        if s.feed(data):
            out.ttfa_s = t
        out.bytes += len(data)
        out.e2e_s = t
        out.chunks += 1
        out.arrivals.append((t, s.samples))
    out.stream = s
    return out


def test_columns_start_with_design_section_6():
    assert list(COLUMNS[: len(DESIGN_COLUMNS)]) == DESIGN_COLUMNS


def test_ok_row_invariants_and_a_pause_shows_as_stall():
    out = streamed([(0.2, 0.5), (0.3, 0.5), (2.5, 0.5), (2.6, 0.5)])
    row = build_row(SPEC, out, worker="w0", prebuffer_ms=200, warmup=False)
    assert row["status"] == "ok" and row["audio_s"] == pytest.approx(2.0)
    assert row["ttfb_s"] <= row["ttfa_s"] <= row["e2e_s"]
    assert row["rtf"] == row["e2e_s"] / row["audio_s"]
    # playback starts 0.4, 1 s buffered -> runs out at 1.4, next audio at 2.5
    assert row["max_stall_s"] == pytest.approx(1.1) and row["underruns"] == 1
    assert row["request_id"] == "w0-7" and row["text_chars"] == len(SPEC.text) and row["seed"] == 3


def test_failed_row_is_kept_without_latency_figures():
    out = Outcome(t_start=1000.0, http_status=503).fail("rejected", "HTTP 503: queue full")
    row = build_row(SPEC, out, worker="w1", prebuffer_ms=200, warmup=True, t_scheduled=999.5)
    assert row["status"] == "rejected" and math.isnan(row["rtf"]) and row["audio_md5"] is None
    assert row["lag_s"] == pytest.approx(0.5) and row["warmup"] is True


def test_parts_round_trip(tmp_path):
    rec = RowRecorder(tmp_path, "w0")
    ok = build_row(SPEC, streamed([(0.1, 1.0)]), worker="w0", prebuffer_ms=0, warmup=False)
    bad = build_row(SPEC, Outcome(t_start=999.0).fail("connect_error", "refused"), worker="w0", prebuffer_ms=0, warmup=False)
    rec.add(ok)
    assert rec.flush() == 1
    rec.add(bad)
    rec.flush()
    assert rec.flush() == 0
    df = read_rows(tmp_path)
    assert list(df.columns) == list(COLUMNS)
    assert list(df["status"]) == ["connect_error", "ok"]  # sorted by t_start
    assert df["http_status"].isna().tolist() == [True, False]
    assert len(read_rows(tmp_path / "none")) == 0
