"""What the post-processing stages share: the stage contract, input checks, the error type."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from vvbench.core.errors import InputError

__all__ = ["Stage", "PostprocessError", "as_mono_float32", "check_rate"]


class PostprocessError(InputError, ValueError):
    """A post-processing parameter is out of range; the message names the parameter and the range.

    An InputError (the service answers it as a client error naming `param`) and a ValueError.
    """


class Stage(Protocol):
    """One streaming stage. `process(x)` takes the next piece of a float32 mono signal and returns
    the output that is ready (possibly empty: a stage may hold samples back); `flush()` ends the
    stream and returns what was held. `seconds` is the cumulative time spent in both, measured
    with time.perf_counter (for the service's Server-Timing header). A stage keeps no reference
    to the arrays it returns."""

    seconds: float

    def process(self, x: np.ndarray) -> np.ndarray: ...

    def flush(self) -> np.ndarray: ...


def as_mono_float32(x: np.ndarray) -> np.ndarray:
    """`x` as a 1-D float32 array (a copy only when the dtype changes); ValueError otherwise."""
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"post-processing takes mono audio as a 1-D array, got shape {x.shape}")
    return x.astype(np.float32, copy=False)


def check_rate(rate: int, name: str = "rate") -> int:
    """A sample rate as a positive int; PostprocessError naming `name` otherwise."""
    if isinstance(rate, bool) or int(rate) != rate or not 1_000 <= int(rate) <= 384_000:
        raise PostprocessError(f"{name} must be an integer from 1000 to 384000 Hz, got {rate!r}", param=name)
    return int(rate)
