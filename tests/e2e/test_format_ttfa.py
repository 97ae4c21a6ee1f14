"""`vvbench run` against the real embedded service: mp3 and opus TTFA against wav on the same requests.

The TTFA of a compressed stream may be later than wav's by the codec's delay (encoder lookahead)
plus one frame, plus 10 ms; this checks how TTFA is timed for compressed answers (decoding must
not hold audio back longer than the codec does), not how fast the service is.
"""

import pytest
from fakekit import one_run_dir, scenario_file, vv

from vvbench.artifacts.reader import load_run
from vvbench.core.formats.encode import CODEC_DELAYS

SAME = {"text": {"corpus": "short"}, "length": {"min_chars": 20, "max_chars": 80}, "voices": ["alloy", "echo"],
        "seeds": {"policy": "per_request", "value": 500}, "timeout": "60s"}


@pytest.mark.slow  # a 30 s run of the embedded tiny service
def test_mp3_and_opus_ttfa_within_codec_delay_of_wav_on_the_same_requests(tmp_path):
    classes = [{"name": fmt, "response_format": fmt, **SAME} for fmt in ("wav", "mp3", "opus")]
    scen = scenario_file(tmp_path / "formats.yaml", classes=classes, mix="round_robin", arrival={"closed": {"users": 1}},
                         warmup="2s", duration="30s", drain="60s")
    r = vv("run", str(scen), "--preset", "tiny", "--threads", "1", "--out", str(tmp_path / "runs"), "--json", timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = load_run(one_run_dir(tmp_path / "runs")).requests
    assert (rows["status"] == "ok").all(), rows["error"].tolist()
    assert (rows["format"] == rows["cls"]).all()
    rows = rows.assign(round=rows["index"] // 3)
    for _, g in rows.groupby("round"):  # each round: the same request in each format
        assert g[["text_chars", "voice", "seed"]].drop_duplicates().shape[0] == 1, g
    by = {fmt: g[~g["warmup"]].set_index("round") for fmt, g in rows.groupby("format")}
    wav, mp3, opus = by["wav"], by["mp3"], by["opus"]
    # the codec facts the rows carry
    assert (opus["sample_rate"] == 48_000).all() and (opus["codec_priming_samples"] == 312).all()
    # a raw mp3 stream cannot declare its delay: the service's X-Codec-Delay header does
    assert (mp3["sample_rate"] == 24_000).all() and (mp3["codec_priming_samples"] == CODEC_DELAYS["mp3"]).all()
    assert wav["codec_priming_samples"].isna().all() and (wav["sample_rate"] == 24_000).all()
    assert opus["bitrate_bps"].between(20_000, 60_000).all() and mp3["bitrate_bps"].between(50_000, 80_000).all()
    # codec delay + one frame + 10 ms, at the decoded rate
    bounds = {"mp3": (CODEC_DELAYS["mp3"] + 1152) / 24_000 + 0.010, "opus": 312 / 48_000 + 0.020 + 0.010}
    for fmt, g in (("mp3", mp3), ("opus", opus)):
        common = g.index.intersection(wav.index)
        assert len(common) >= 4, (fmt, len(common))
        diff = g.loc[common, "ttfa_s"] - wav.loc[common, "ttfa_s"]
        assert diff.median() <= bounds[fmt], (fmt, diff.round(4).tolist(), bounds[fmt])
        assert (g["ttfb_s"] <= g["ttfa_s"]).all()
