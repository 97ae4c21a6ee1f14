"""One parser each for sizes, durations and shares."""

import pytest

from vvbench.core.errors import ConfigError
from vvbench.core.units import parse_bytes, parse_duration, parse_fraction


@pytest.mark.parametrize("text, value", [("20GiB", 20 * 2**30), ("512MB", 512 * 10**6), ("1.5e9", 1_500_000_000),
                                         ("64 KiB", 65536), (1024, 1024), ("2g", 2 * 2**30)])
def test_bytes(text, value):
    assert parse_bytes(text) == value


@pytest.mark.parametrize("text, value", [("30s", 30.0), ("5m", 300.0), ("250ms", 0.25), ("1h", 3600.0), (2, 2.0)])
def test_durations(text, value):
    assert parse_duration(text) == value


@pytest.mark.parametrize("text, value", [("90%", 0.9), ("0.25", 0.25), (1, 1.0)])
def test_fractions(text, value):
    assert parse_fraction(text) == value


@pytest.mark.parametrize("fn, bad", [(parse_bytes, "20 parsecs"), (parse_bytes, "-3GB"), (parse_duration, "soon"),
                                     (parse_duration, "-1s"), (parse_fraction, "120%"), (parse_fraction, "most")])
def test_bad_values_say_what_was_expected(fn, bad):
    with pytest.raises(ConfigError, match="threshold"):
        fn(bad, "threshold")


@pytest.mark.parametrize("fn, bad", [(parse_bytes, "1e400"), (parse_bytes, 1e400), (parse_bytes, float("nan")),
                                     (parse_bytes, "2EiB"), (parse_bytes, str(2**61)), (parse_duration, "1e400"),
                                     (parse_duration, "1e400ms"), (parse_duration, float("inf")), (parse_duration, "9000h"), (parse_fraction, "nan"), (parse_fraction, "1e400%")])
def test_huge_and_non_finite_values_are_one_line_errors(fn, bad):
    # 1e400 reads as float infinity; int() of it is an OverflowError a user would see as a traceback.
    with pytest.raises(ConfigError, match="^--opt: "):
        fn(bad, "--opt")


def test_the_bounds_themselves_are_accepted():
    assert parse_bytes(str(2**60)) == 2**60
    assert parse_duration("8784h") == 366 * 86_400
