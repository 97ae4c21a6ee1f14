"""One parser each for byte sizes (`20GiB`, `512MB`, `1.5e9`), durations (`30s`, `5m`) and shares (`90%`).

Every result is finite and bounded: sizes up to `MAX_BYTES` (1 EiB, beyond any memory this tool
watches), durations up to `MAX_SECONDS` (a year). `1e400`, `inf` or `nan` is a one-line
`ConfigError` naming the option, never an OverflowError further on.
"""

from __future__ import annotations

import math
import re

from vvbench.core.errors import ConfigError

_BYTES = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
_SECONDS = {"": 1.0, "ms": 1e-3, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_NUM = r"([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)"
MAX_BYTES = 2**60
MAX_SECONDS = 366 * 86_400.0


def _number_unit(text: str | int | float, units: dict, what: str, kind: str, examples: str, most: float, most_text: str) -> float:
    """Read `<number><unit>` (unit from `units`, plain numbers in the base unit) -> base units, at most `most`."""
    if isinstance(text, (int, float)):
        value, unit = float(text), ""
    else:
        m = re.fullmatch(_NUM + r"\s*([a-zA-Z]*)", text.strip())
        if not m or m.group(2).lower() not in units:
            raise ConfigError(f"{what}: cannot read {text!r} as a {kind}; use e.g. {examples}")
        value, unit = float(m.group(1)), m.group(2).lower()
    if math.isnan(value):
        raise ConfigError(f"{what}: cannot read {text!r} as a {kind}; use e.g. {examples}")
    if value < 0:
        raise ConfigError(f"{what}: must not be negative (got {text!r})")
    result = value * units[unit]
    if not result <= most:  # also catches inf (1e400 reads as inf)
        raise ConfigError(f"{what}: {text!r} is too large; the most is {most_text}")
    return result


def parse_bytes(text: str | int | float, what: str = "size") -> int:
    """`20GiB` -> 21474836480; plain numbers are bytes. Units: B, KB/MB/GB/TB (10^n), KiB..TiB (2^n)."""
    return int(_number_unit(text, _BYTES, what, "size", "512MiB, 20GiB, 1.5e9", MAX_BYTES, "1 EiB"))


def parse_duration(text: str | int | float, what: str = "duration") -> float:
    """`30s` -> 30.0, `5m` -> 300.0, `250ms` -> 0.25; plain numbers are seconds."""
    return _number_unit(text, _SECONDS, what, "duration", "250ms, 30s, 5m, 1h", MAX_SECONDS, "366 days")


def parse_fraction(text: str | float, what: str = "share") -> float:
    """`90%` -> 0.9, `0.9` -> 0.9; must lie in 0..1."""
    raw = str(text).strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise ConfigError(f"{what}: cannot read {text!r} as a share; use e.g. 90% or 0.9") from None
    if not 0 <= value <= 1:
        raise ConfigError(f"{what}: must be between 0 and 1 (0%..100%), got {text!r}")
    return value
