"""Admission building blocks: token bucket, rate limiter, memory guard parsing, job slot caps."""

import pytest

from vvbench.core.errors import ConfigError
from vvbench.server.admission import MemoryGuard, RateLimiter, TokenBucket
from vvbench.server.settings import MemoryLimit, ServiceSettings, build_settings, parse_memory_guard


def test_token_bucket_allows_the_burst_then_refills_at_the_rate():
    bucket = TokenBucket(rate=2.0, burst=3, now=0.0)
    assert [bucket.take(0.0)[0] for _ in range(4)] == [True, True, True, False]
    allowed, wait = bucket.take(0.0)
    assert not allowed and wait == pytest.approx(0.5)
    assert bucket.take(0.5)[0] and not bucket.take(0.5)[0]
    assert bucket.take(10.0)[0] and bucket.tokens == pytest.approx(2.0)  # capped at the burst


def test_rate_limiter_keeps_one_bucket_per_key():
    limiter = RateLimiter(rate=0.001, burst=1)
    assert limiter.check("key:a")[0] and not limiter.check("key:a")[0]
    assert limiter.check("addr:127.0.0.1")[0]


@pytest.mark.parametrize("raw, expected", [
    ("0.9", MemoryLimit(fraction=0.9)), ("1", MemoryLimit(fraction=1.0)), ("8GiB", MemoryLimit(limit_bytes=8 * 2**30)),
    ("500MB", MemoryLimit(limit_bytes=500_000_000)), ("123456", MemoryLimit(limit_bytes=123456)), (None, None),
    ("8G", MemoryLimit(limit_bytes=8 * 2**30)),  # the same units as `vvbench watch --rss-max 8G`
    ("90%", MemoryLimit(fraction=0.9)),
])
def test_memory_guard_forms(raw, expected):
    assert parse_memory_guard(raw) == expected


@pytest.mark.parametrize("raw", ["lots", "-5", "8 parsecs", "0", "0MB", "150%"])
def test_bad_memory_guard_names_the_option(raw):
    with pytest.raises(ConfigError, match="memory_guard"):
        parse_memory_guard(raw)


def test_memory_guard_compares_resident_memory():
    assert MemoryGuard(MemoryLimit(limit_bytes=1)).over("cpu") is not None
    assert MemoryGuard(MemoryLimit(fraction=1.0)).over("cpu") is None


def test_job_streams_leave_slots_to_streaming_requests():
    s = ServiceSettings()
    assert [s.job_streams(b) for b in (1, 2, 3, 8)] == [1, 1, 1, 4]
    assert ServiceSettings(max_job_streams=6).job_streams(4) == 4
    assert ServiceSettings(short_first=False).job_streams(8) == 8
    assert s.chunk_frames_for(7.5) == 75 and ServiceSettings(job_chunk_frames=4).chunk_frames_for(7.5) == 4


def test_build_settings_reports_the_bad_option():
    with pytest.raises(ConfigError, match="max_job_streams"):
        build_settings(max_job_streams=0)
    assert build_settings(rate_limit_rps=2.5, rate_burst=None).burst() == 3
