"""Runtime benchmark: aggregate frames/s versus batch size, per-stage time split, and the roofline.

For each preset and batch size B, an engine with `max_batch=B` gets B requests at once (same text
length, different seeds), after a warm-up round; the timed round's frames divided by its wall
time is the aggregate frames/s. Stage seconds come from the engine's own per-stage counters.
Achieved GFLOP/s counts the useful FLOPs of real streams (`vvbench.runtime.flops`), against the
machine's own fp32 GEMM rate measured in the same process (the roofline).

    python bench/runtime_batching.py --presets tiny small --batches 1 2 4 8 16 32
    python bench/runtime_batching.py --presets tiny --batches 1 16 --invariance both

Prints a Markdown table (paste into docs/benchmarks.md) and writes JSON with `--json-out`.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

import vvbench.runtime  # noqa: F401  (pins MKL's code path before torch runs)
from vvbench.runtime.config import RuntimeConfig
from vvbench.runtime.engine import Engine
from vvbench.runtime.flops import frame_flops
from vvbench.runtime.request import SynthesisRequest

TEXT = ("Batching pays when many streams share each step of the model, and this sentence is long "
        "enough to keep them all busy for a while. ")


def matmul_gflops(n: int = 2048, reps: int = 8) -> float:
    """The machine's fp32 GEMM rate in this process (same threads, same MKL code path)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9


def run_round(engine: Engine, batch: int, text: str, seed0: int) -> tuple[float, dict]:
    before = engine.stats()
    t0 = time.perf_counter()
    handles = [engine.submit(SynthesisRequest(text=text, seed=seed0 + i)) for i in range(batch)]
    for h in handles:
        h.audio(timeout=1800)
    wall = time.perf_counter() - t0
    after = engine.stats()
    delta = {k: after["stage_s"][k] - before["stage_s"][k] for k in after["stage_s"]}
    frames = after["frames"] - before["frames"]
    steps = after["steps"] - before["steps"]
    return wall, {"frames": frames, "steps": steps, "stage_s": delta}


def bench_point(preset: str, batch: int, invariant: bool, text: str, threads: int | None = None,
                max_batch: int | None = None) -> dict:
    """`batch` streams at once on an engine with `max_batch` slots (default: `batch`)."""
    cfg = RuntimeConfig(preset=preset, max_batch=max_batch or batch, batch_window_ms=2000 if not max_batch else 0,
                        batch_invariant=invariant, threads=threads)
    with Engine(cfg) as engine:
        run_round(engine, batch, text, 1000)  # warm-up: allocations, first-call costs
        wall, r = run_round(engine, batch, text, 0)
        steps_cfg = cfg.steps_for(len(text))
        n_frames = r["frames"] // batch
        context = len(engine.prompts.tokenizer.encode(text)) + engine.preset.voice_prompt_tokens + n_frames // 2
        flops = frame_flops(engine.loaded.model, steps=steps_cfg, context_tokens=context)
    per_frame = {k: v / r["frames"] for k, v in r["stage_s"].items() if v > 0}
    useful = sum(flops.values()) * r["frames"]
    return {
        "preset": preset, "batch": batch, "max_batch": cfg.max_batch, "batch_invariant": invariant, "frames": r["frames"], "wall_s": wall,
        "frames_per_s": r["frames"] / wall, "rtfx": r["frames"] / wall / engine.preset.frame_rate_hz,
        "step_ms": 1000 * sum(r["stage_s"].values()) / max(1, r["steps"]),
        "per_frame_ms": {k: 1000 * v for k, v in per_frame.items()},
        "gflop_per_frame": sum(flops.values()) / 1e9, "achieved_gflops": useful / wall / 1e9,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=["tiny", "small"])
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 2, 4, 8, 16, 32])
    ap.add_argument("--invariance", choices=["on", "off", "both"], default="on")
    ap.add_argument("--text-repeats", type=int, default=1, help="longer requests: repeat the text")
    ap.add_argument("--max-batch", type=int, default=None,
                    help="fixed slots for every point (the padding cost of batch invariance at partial load)")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (the `threads` knob)")
    ap.add_argument("--json-out", default=None)
    args = ap.parse_args()
    modes = {"on": [True], "off": [False], "both": [True, False]}[args.invariance]
    if args.threads:
        torch.set_num_threads(args.threads)
    roof = matmul_gflops()
    rows = []
    for preset in args.presets:
        for invariant in modes:
            for b in args.batches:
                rows.append(bench_point(preset, b, invariant, TEXT * args.text_repeats, args.threads, args.max_batch))
                r = rows[-1]
                print(f"# {preset} B={b} inv={invariant}: {r['frames_per_s']:.1f} frames/s", flush=True)
    print(f"\nmachine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}; fp32 GEMM 2048^3: {roof:.1f} GFLOP/s\n")
    print("| preset | batch | max_batch | invariant | frames/s | × batch 1 | RTFx | LM ms/frame | diffusion | decode | semantic | synth | GFLOP/frame | achieved GFLOP/s | % of GEMM |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    base: dict = {}
    for r in rows:
        key = (r["preset"], r["batch_invariant"])
        base.setdefault(key, r["frames_per_s"] if r["batch"] == 1 else None)
        speedup = r["frames_per_s"] / base[key] if base.get(key) else float("nan")
        pf = r["per_frame_ms"]
        print(f"| {r['preset']} | {r['batch']} | {r['max_batch']} | {'on' if r['batch_invariant'] else 'off'} | {r['frames_per_s']:.1f} | "
              f"{speedup:.1f} | {r['rtfx']:.1f} | {pf.get('lm', 0):.2f} | {pf.get('diffusion', 0):.2f} | "
              f"{pf.get('decode', 0):.2f} | {pf.get('semantic', 0):.2f} | {pf.get('synth', 0):.2f} | "
              f"{r['gflop_per_frame']:.3f} | {r['achieved_gflops']:.2f} | {100 * r['achieved_gflops'] / roof:.1f} |")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"gemm_gflops": roof, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
