"""Check `vvbench plan` against measured process memory on the CPU (and CUDA peaks on a GPU).

For each case a fresh process imports torch and the runtime, records its RSS (the baseline),
builds the engine and runs `streams` concurrent requests of about `minutes` of audio each, while a
thread samples RSS at 50 Hz. Measured = peak RSS - baseline; predicted = the plan's total for the
same config, streams and length. On a GPU, `torch.cuda.max_memory_allocated` is the measurement.

    python bench/plan_memory.py                       # tiny and small on CPU
    python bench/plan_memory.py --case vibevoice-1.5b:2:1 --device cuda
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, sys, threading, time
sys.path.insert(0, sys.argv[5])
import vvbench.runtime  # noqa: F401
import torch
from rsspeak import PeakRSS
from vvbench.core.audio import SAMPLE_RATE
from vvbench.runtime.config import RuntimeConfig
from vvbench.runtime.engine import Engine
from vvbench.runtime.plan import memory_plan, REFERENCE_TEXT
from vvbench.runtime.request import SynthesisRequest
from vvbench.runtime.text import plan_prosody

preset, streams, minutes, device = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
torch.ones(8) @ torch.ones(8)
rss = PeakRSS()
reps = max(1, round(minutes * 60 / plan_prosody(REFERENCE_TEXT).duration_s))
text = " ".join([REFERENCE_TEXT] * reps)
cfg = RuntimeConfig(preset=preset, max_batch=streams, device=device, max_input_chars=10**6)
if device.startswith("cuda"):
    torch.cuda.reset_peak_memory_stats()
engine = Engine(cfg)
after_load = rss.current()
handles = [engine.submit(SynthesisRequest(text=text, seed=i)) for i in range(streams)]
samples = [0] * streams
def consume(i):  # a client plays audio as it arrives and drops it, as a player does
    for chunk in handles[i].chunks(timeout=3600):
        samples[i] += len(chunk.audio)
threads = [threading.Thread(target=consume, args=(i,)) for i in range(streams)]
[t.start() for t in threads]
[t.join() for t in threads]
audio_s = sum(samples) / SAMPLE_RATE / streams
stats = engine.stats()
engine.close()
rss.stop()
plan = memory_plan(cfg, streams=streams, max_audio_min=audio_s / 60).to_json()
dev = plan["devices"]["cuda:0" if device.startswith("cuda") else "cpu"]
measured = torch.cuda.max_memory_allocated() if device.startswith("cuda") else rss.peak - rss.base
print(json.dumps({"preset": preset, "streams": streams, "audio_min": audio_s / 60, "measured_bytes": measured,
                  "load_bytes": after_load - rss.base, "planned": dev, "planned_total": dev["total"],
                  "engine_kv_peak_note": "kv allocated per stream at admission", "weights_bytes": stats["weights_bytes"]}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", action="append", help="PRESET:STREAMS:MINUTES (repeatable)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    cases = args.case or ["tiny:8:1", "small:4:0.5"]
    print("| preset | streams | audio min/stream | planned MiB (weights / KV / conv / activations) | planned total MiB | measured MiB | measured / planned | of which after load MiB |")
    print("|---|---|---|---|---|---|---|---|")
    for case in cases:
        preset, streams, minutes = case.split(":")
        out = subprocess.run([sys.executable, "-c", CHILD, preset, streams, minutes, args.device,
                              str(Path(__file__).resolve().parent)],
                             capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        p = r["planned"]
        mib = 2**20
        print(f"| {r['preset']} | {r['streams']} | {r['audio_min']:.2f} | {p['weights'] / mib:.1f} / {p['kv_cache'] / mib:.1f} / "
              f"{p['conv_cache'] / mib:.2f} / {p['activations'] / mib:.1f} | {r['planned_total'] / mib:.1f} | "
              f"{r['measured_bytes'] / mib:.1f} | {r['measured_bytes'] / r['planned_total']:.2f} | {r['load_bytes'] / mib:.1f} |", flush=True)


if __name__ == "__main__":
    main()
