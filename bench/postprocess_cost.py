"""CPU cost of the post-processing stages, streaming in 133 ms chunks (one runtime frame).

The signal is espeak-ng speech (a paragraph, resampled to 24 kHz, repeated to `--seconds`), or,
without espeak-ng, the same length of the runtime's `tiny` voice. Each repetition runs every case
once, in a rotated order (interleaved: drift on a shared machine spreads over all cases), over a
fresh stage: `process()` per 3200-sample chunk, then `flush()`. Reported per case, over the
repetitions: CPU seconds per second of audio (`time.process_time`, median and range), as a share
of one core per real-time stream, and the wall time of one `process()` call (median and p99 over
all chunks), which is the latency a chunk gains (besides what a stage holds back by design), and
the wall time of `flush()` (median).

    python bench/postprocess_cost.py --seconds 30 --repeats 7
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soxr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vvbench.core.audio import read_audio  # noqa: E402
from vvbench.core.postprocess import LoudnessNormaliser, Resampler, SilenceTrimmer, build_chain  # noqa: E402

R = 24_000
CHUNK = 3200
PARAGRAPH = ("Capacity planning starts with a question. How many concurrent streams does one machine "
             "sustain at our latency target? We measure, we change one knob, and we measure again. "
             "Then we write the numbers down, with the command that produced them.")

CASES = {
    "trim (VAD)": lambda: SilenceTrimmer(R),
    "resample 24->16 kHz": lambda: Resampler(R, 16_000),
    "resample 24->48 kHz": lambda: Resampler(R, 48_000),
    "resample 24->8 kHz": lambda: Resampler(R, 8_000),
    "resample 24->44.1 kHz": lambda: Resampler(R, 44_100),
    "loudness -16 LUFS (first 2 s)": lambda: LoudnessNormaliser(R, -16.0, measure_s=2.0),
    "loudness -16 LUFS (whole, at flush)": lambda: LoudnessNormaliser(R, -16.0, measure_s=None),
    "chain trim+48 kHz+loudness (first 2 s)": lambda: build_chain(R, out_rate=48_000, trim=True, loudness=-16.0),
}


class SileroProbe:
    """Comparison only (not part of vvbench): silero-vad's speech probability per 32 ms window at
    16 kHz, fed through the same soxr analysis stream as the trimmer, one torch thread."""

    def __init__(self):
        import torch
        from silero_vad import load_silero_vad

        torch.set_num_threads(1)
        self._torch, self._model = torch, load_silero_vad()
        self._to16 = soxr.ResampleStream(R, 16_000, 1, dtype="float32", quality="MQ")
        self._buf = np.zeros(0, np.float32)

    def process(self, x):
        self._buf = np.concatenate([self._buf, self._to16.resample_chunk(x)])
        n = len(self._buf) // 512
        for k in range(n):
            self._model(self._torch.from_numpy(self._buf[k * 512:(k + 1) * 512].copy()), 16_000).item()
        self._buf = self._buf[n * 512:]
        return np.zeros(0, np.float32)

    def flush(self):
        return np.zeros(0, np.float32)


try:  # the comparison runs only where silero-vad is installed (pip install silero-vad)
    import silero_vad  # noqa: F401

    CASES["silero-vad probability (comparison only)"] = SileroProbe
except ImportError:
    pass


def speech(seconds: float) -> tuple[np.ndarray, str]:
    if shutil.which("espeak-ng"):
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "p.wav"
            subprocess.run(["espeak-ng", "-w", str(path), PARAGRAPH], check=True, capture_output=True)
            x, rate = read_audio(path)
        x = soxr.resample(x.astype(np.float32), rate, R).astype(np.float32)
        source = "espeak-ng"
    else:
        from vvbench.runtime.config import RuntimeConfig
        from vvbench.runtime.engine import Engine
        from vvbench.runtime.request import SynthesisRequest

        engine = Engine(RuntimeConfig(preset="tiny"))
        try:
            handle = engine.submit(SynthesisRequest(text=PARAGRAPH, voice="alloy", seed=1))
            x = np.concatenate([c.audio for c in handle.chunks()]).astype(np.float32)
        finally:
            engine.close()
        source = "runtime tiny"
    reps = int(np.ceil(seconds * R / len(x)))
    return np.tile(x, reps)[:round(seconds * R)], source


def one(make, x: np.ndarray) -> tuple[float, list[float]]:
    stage = make()
    calls = []
    c0 = time.process_time()
    for i in range(0, len(x), CHUNK):
        t0 = time.perf_counter()
        stage.process(x[i:i + CHUNK])
        calls.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    stage.flush()
    calls.append(-(time.perf_counter() - t0))  # negative: the flush call, reported apart
    return time.process_time() - c0, calls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    x, source = speech(args.seconds)
    audio_s = len(x) / R
    names = list(CASES)
    for name in names:  # warm-up: imports, first allocations, soxr's filter design
        one(CASES[name], x[: R * 3])
    cpu = {n: [] for n in names}
    calls = {n: [] for n in names}
    for rep in range(args.repeats):
        order = names[rep % len(names):] + names[:rep % len(names)]
        for name in order:
            c, w = one(CASES[name], x)
            cpu[name].append(c / audio_s)
            calls[name].extend(w)
    rows = []
    for name in names:
        v = np.array(cpu[name])
        w_all = np.array(calls[name]) * 1e3
        w, f = w_all[w_all >= 0], -w_all[w_all < 0]
        rows.append({"case": name, "cpu_ms_per_audio_s_median": round(float(np.median(v)) * 1e3, 3),
                     "cpu_ms_per_audio_s_min": round(float(v.min()) * 1e3, 3), "cpu_ms_per_audio_s_max": round(float(v.max()) * 1e3, 3),
                     "core_share_per_stream_pct": round(float(np.median(v)) * 100, 3),
                     "call_ms_p50": round(float(np.median(w)), 3), "call_ms_p99": round(float(np.percentile(w, 99)), 3),
                     "flush_ms_median": round(float(np.median(f)), 3)})
    facts = {"source": source, "audio_s": audio_s, "chunk_samples": CHUNK, "repeats": args.repeats,
             "python": platform.python_version(), "machine": platform.processor() or platform.machine()}
    print(json.dumps({"facts": facts, "rows": rows}, indent=1))
    print("| case | CPU ms per s of audio, median (range) | share of a core per real-time stream | process() call ms p50 / p99 | flush() ms |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['cpu_ms_per_audio_s_median']:.2f} ({r['cpu_ms_per_audio_s_min']:.2f}–{r['cpu_ms_per_audio_s_max']:.2f}) "
              f"| {r['core_share_per_stream_pct']:.2f} % | {r['call_ms_p50']:.3f} / {r['call_ms_p99']:.3f} | {r['flush_ms_median']:.2f} |")


if __name__ == "__main__":
    main()
