"""`vvbench run` with opus and mp3 classes against the fake server encoding its answers with PyAV."""

import json

import pandas as pd
import pytest
from fakekit import FakeTTS, one_run_dir, scenario_file, vv

from vvbench.artifacts.reader import load_run
from vvbench.artifacts.record import SCHEMA_VERSION


@pytest.mark.slow  # 14 s on the 2-core machine when quiet, 45 s when shared
def test_opus_and_mp3_classes_record_format_rate_priming_and_bitrate(tmp_path):
    length = {"min_chars": 30, "max_chars": 60}  # the fake server's audio: chars / 15 s long, the same for the same length
    classes = [{"name": fmt, "text": {"corpus": "short"}, "length": length, "response_format": fmt, "timeout": "20s"}
               for fmt in ("opus", "mp3", "wav")]
    scen = scenario_file(tmp_path / "formats.yaml", classes=classes, arrival={"closed": {"users": 6}}, duration="3s",
                         slos={"success_min": 1.0})
    # 0.5 s of leading silence, chunks of 0.4 s audio every 0.1 s
    with FakeTTS("--silence-s", "0.5", "--rtf", "0.25") as fake:
        r = vv("run", str(scen), "--target", "http", "--url", fake.url, "--out", str(tmp_path / "runs"), "--json")
    assert r.returncode == 0, r.stderr
    run_dir = one_run_dir(tmp_path / "runs")
    assert json.loads((run_dir / "run.json").read_text())["schema_version"] == SCHEMA_VERSION
    assert "- **formats**: opus: opus, mp3: mp3, wav: wav" in (run_dir / "summary.md").read_text()
    rows = load_run(run_dir).requests
    assert set(rows["cls"]) == {"opus", "mp3", "wav"} and (rows["status"] == "ok").all(), rows["error"].tolist()
    assert (rows["format"] == rows["cls"]).all()
    by = {cls: g for cls, g in rows.groupby("cls")}
    opus, mp3, wav = by["opus"], by["mp3"], by["wav"]
    assert (opus["sample_rate"] == 48_000).all() and (mp3["sample_rate"] == 24_000).all()
    assert (opus["codec_priming_samples"] == 312).all()  # OpusHead's pre-skip
    assert mp3["codec_priming_samples"].isna().all() and wav["codec_priming_samples"].isna().all()  # not declared
    assert opus["bitrate_bps"].between(20_000, 80_000).all() and mp3["bitrate_bps"].between(40_000, 100_000).all()
    assert wav["bitrate_bps"].between(380_000, 390_000).all()  # 16-bit 24 kHz plus a 44-byte header
    for g in (opus, mp3, wav):
        # codecs add at most a few frames (an mp3 without a LAME frame: its delay and padding; Opus: one pre-skip)
        assert (g["audio_s"] - g["text_chars"] / 15).between(0, 0.1).all(), (g["audio_s"] - g["text_chars"] / 15).tolist()
        assert (g.groupby("text_chars")["audio_md5"].nunique() == 1).all()  # the same audio decodes to the same PCM
        # 0.5 s of leading silence is not audible: first audible audio is timed at the arrival of a piece
        # that brought the decoded total past it
        for ttfa, times, totals, rate in zip(g["ttfa_s"], g["arrival_t_s"], g["arrival_samples"], g["sample_rate"]):
            at = list(times).index(ttfa)
            assert totals[at] >= 0.52 * rate, (ttfa, list(times), list(totals))
        assert (g["ttfb_s"] <= g["ttfa_s"]).all() and (g["ttfa_s"] <= g["e2e_s"]).all()
        assert (g["max_stall_s"] == 0).all()
        # the arrival timeline ends at the decoded total, at the decoded rate
        assert all(a[-1] == n for a, n in zip(g["arrival_samples"], g["audio_s"] * g["sample_rate"]))
    assert opus["audio_md5"].iloc[0] != mp3["audio_md5"].iloc[0] != wav["audio_md5"].iloc[0]
    assert pd.api.types.is_float_dtype(rows["bitrate_bps"])
