"""Quality against the reference step count: waveform SNR and mel magnitude SNR per diffusion step count.

For each step count, every text is synthesised in this process by the runtime's `Engine` with the
same seed, and compared with the audio at the reference step count (the preset's maximum): the
waveform SNR (`vvbench.tuner.quality.snr_db`) and the phase-blind mel SNR the tuner uses
(`vvbench.tuner.spectral.mel_snr_db`). Printed: the worst over the texts of each, as a Markdown table.

    python bench/tune_quality_steps.py --preset tiny --steps 10,9,8,6,4,2
"""

from __future__ import annotations

import argparse

import numpy as np

from vvbench.core.audio import SAMPLE_RATE
from vvbench.runtime.config import RuntimeConfig
from vvbench.runtime.engine import Engine
from vvbench.runtime.request import SynthesisRequest
from vvbench.tuner.quality import snr_db
from vvbench.tuner.spectral import mel_snr_db

TEXTS = ("The quick brown fox jumps over the lazy dog. Then it rests.",
         "Good morning, and welcome to the show. Today we talk about trains.")


def synthesise(preset: str, steps: int, seed: int) -> list[np.ndarray]:
    engine = Engine(RuntimeConfig(preset=preset, diffusion_steps=steps, max_batch=1))
    try:
        out = []
        for i, text in enumerate(TEXTS):
            handle = engine.submit(SynthesisRequest(text=text, voice="alloy", seed=seed + i))
            out.append(np.concatenate([c.audio for c in handle.chunks()]))
        return out
    finally:
        engine.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--steps", default="10,9,8,6,4,2", help="step counts, the first is the reference")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    steps = [int(s) for s in args.steps.split(",")]
    ref = synthesise(args.preset, steps[0], args.seed)
    print(f"| steps | waveform SNR (dB, worst of {len(TEXTS)}) | mel SNR (dB, worst of {len(TEXTS)}) |")
    print("|---|---|---|")
    for n in steps:
        got = ref if n == steps[0] else synthesise(args.preset, n, args.seed)
        wave = min(snr_db(r, g) for r, g in zip(ref, got))
        mel = min(mel_snr_db(r, g, SAMPLE_RATE) for r, g in zip(ref, got))
        print(f"| {n} | {wave:.1f} | {mel:.1f} |")


if __name__ == "__main__":
    main()
