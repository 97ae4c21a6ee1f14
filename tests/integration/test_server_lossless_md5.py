"""Lossless formats decode to the same PCM for the same seed, alone or sharing a batch, and across formats."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

import httpx

from vvbench.core.audio import decode_wav, to_pcm16
from vvbench.core.formats.decode import decode_file

TARGET = {"input": "The same seed gives the same voice every time.", "voice": "echo", "seed": 4242}
OTHERS = [{"input": "A different sentence to share the batch.", "voice": "alloy", "seed": 7},
          {"input": "Another request, longer than the first one by a few words.", "voice": "nova", "seed": 8},
          {"input": "Short one.", "voice": "onyx", "seed": 9}]


def pcm_md5(body: bytes, fmt: str) -> str:
    """MD5 of the decoded signal as 16-bit little-endian PCM."""
    if fmt == "pcm":
        return hashlib.md5(body).hexdigest()
    if fmt == "wav":
        samples, rate = decode_wav(body, "wav answer")
    else:
        samples, rate, _ = decode_file(body, "flac answer")
    assert rate == 24_000
    return hashlib.md5(to_pcm16(samples)).hexdigest()


def streamed(url: str, body: dict) -> bytes:
    with httpx.Client(base_url=url, timeout=120) as c, c.stream("POST", "/v1/audio/speech", json=body) as resp:
        assert resp.status_code == 200, resp.read()[:300]
        assert resp.headers["x-seed"] == str(body["seed"])
        return resp.read()


def test_same_seed_same_pcm_alone_in_a_batch_and_across_lossless_formats(server):
    md5s = {}
    for fmt in ("flac", "wav", "pcm"):
        alone = pcm_md5(streamed(server.url, {**TARGET, "response_format": fmt}), fmt)
        before = server.stats()["batch_sizes"]
        bodies = [{**b, "response_format": fmt} for b in (TARGET, *OTHERS)]
        with ThreadPoolExecutor(len(bodies)) as pool:
            answers = list(pool.map(lambda b: streamed(server.url, b), bodies))
        after = server.stats()["batch_sizes"]
        grew = {int(k) for k in after if after[k] > before.get(k, 0)}
        assert max(grew) >= 3, (before, after)  # the four really shared batches
        together = [pcm_md5(a, fmt) for a in answers]
        assert together[0] == alone, fmt
        assert len(set(together)) == 4  # the other requests are different audio
        md5s[fmt] = alone
    assert md5s["flac"] == md5s["wav"] == md5s["pcm"], md5s
