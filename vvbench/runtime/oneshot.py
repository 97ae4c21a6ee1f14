"""One synthesis through the engine, start to finish: what `vvbench synth` and the demo run."""

from __future__ import annotations

import time
from pathlib import Path

from vvbench.core.audio import write_wav
from vvbench.runtime.config import RuntimeConfig
from vvbench.runtime.engine import Engine
from vvbench.runtime.request import SynthesisRequest


def synthesize_to_file(config: RuntimeConfig, text: str, out: str | Path, *, voice: str = "alloy",
                       seed: int | None = 0, speed: float = 1.0) -> dict:
    """Build the engine, synthesise `text` once, write a WAV; return the figures as a dict.

    `wall_s` runs from submission to the last chunk (model loading is `load_s`, and with
    `compile` the warm-up that compiles is `warmup_s`, both apart);
    `rtf = wall_s / audio_s` (below 1 is faster than real time); `ttfc_s` is the time to the
    first chunk.
    """
    t0 = time.perf_counter()
    engine = Engine(config)
    load_s = time.perf_counter() - t0
    warmup_s = None
    try:
        if config.compile:  # first calls compile (tens of seconds on CPU): keep that out of the figures
            t_w = time.perf_counter()
            engine.warmup()
            warmup_s = time.perf_counter() - t_w
        request = SynthesisRequest(text=text, voice=voice, seed=seed, speed=speed)
        t1 = time.perf_counter()
        handle = engine.submit(request)
        parts = []
        ttfc_s = None
        for chunk in handle.chunks():
            if ttfc_s is None:
                ttfc_s = time.perf_counter() - t1
            parts.append(chunk.audio)
        wall_s = time.perf_counter() - t1
        import numpy as np

        audio = np.concatenate(parts) if parts else np.zeros(0, np.float32)
        write_wav(out, audio, handle.sample_rate)
        stats = engine.stats()
    finally:
        engine.close()
    audio_s = len(audio) / handle.sample_rate
    return {
        "out": str(out),
        "preset": config.preset,
        "voice": voice,
        "seed": request.seed,
        "text_chars": len(text),
        "audio_s": audio_s,
        "wall_s": wall_s,
        "rtf": wall_s / audio_s if audio_s else None,
        "ttfc_s": ttfc_s,
        "load_s": load_s,
        "warmup_s": warmup_s,
        "frames": handle.n_frames,
        "stage_s": {k: v for k, v in handle.timings().items() if k not in ("total", "first_chunk")},
        "device": stats["device"],
        "notes": config.notes() + engine.loaded.notes,
    }
