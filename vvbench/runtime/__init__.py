"""The reference TTS runtime: a VibeVoice-shaped PyTorch model, its engine and its knobs.

Importing this package pins MKL's code path (`MKL_CBWR`) unless the user already chose one:
with MKL's default dispatch, two processes with the same seed were seen to produce different
bits (the branch MKL picks for a small GEMM varies from run to run with 2 threads), which breaks
the runtime's promise that a seed gives the same audio. MKL reads the variable at its first
call, so this must run before any torch matmul in the process. The branch is the widest one the CPU supports (AVX-512, else AVX2, else COMPATIBLE).
"""

from __future__ import annotations

import os


def _mkl_branch() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return "COMPATIBLE"
    if " avx512f" in flags:
        return "AVX512"
    if " avx2" in flags:
        return "AVX2"
    return "COMPATIBLE"


os.environ.setdefault("MKL_CBWR", _mkl_branch())
