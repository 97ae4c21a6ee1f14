"""Shared test set-up: pin MKL's code path before torch runs anything (see vvbench.runtime)."""

import vvbench.runtime  # noqa: F401  (sets MKL_CBWR before the first matmul of the test process)
