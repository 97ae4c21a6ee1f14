"""Long-form jobs next to interactive traffic, and the memory of one job against its length.

`ttfa`: starts `vvbench serve` on loopback (a child process, stopped by PID) with a memory
budget, then runs rounds; each round runs every job count of `--jobs` (default 0, 1 and 5) in an
order rotated per round (interleaved, so the machine's drift falls on every condition alike).
A condition posts that many maximum-length jobs (`max_job_chars` characters of the `long`
corpus), then 3 closed-loop streaming clients send `--requests` short requests each. Per
request: TTFA (send to first audio byte) and continuity (the playback model of
`vvbench.artifacts.playback`: longest stall and stall total, playback starting at first audio).
Then every job is deleted and the script records how long `/v1/stats` took to read idle (no
stream, no queue, no KV) and the job store's size against its size before the jobs. The server's
peak RSS is sampled at 5 Hz; job progress is the engine's prefill tokens and frames meanwhile.

`memory`: one fresh process per length builds an engine and submits one job of that many minutes
of the reference prose; once its prompt is in and 20 frames are out, it reports peak RSS above
the engine-loaded baseline, the KV bytes held and the plan's figure for the same length; then the
plan alone for the GPU presets (bf16, CUDA) at the same lengths.

    python bench/longform.py ttfa --preset tiny --rounds 2
    python bench/longform.py memory --minutes 1 10 30 90
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vvbench.artifacts.playback import simulate  # noqa: E402
from vvbench.load.corpora import units  # noqa: E402
from vvbench.server.settings import DEFAULT_MAX_JOB_CHARS  # noqa: E402

SHORT = ["Yes, that works for me.", "Please hold on a second.", "The meeting starts at noon.",
         "Thanks, see you tomorrow.", "Could you repeat that?", "It is raining again."]
CLIENTS = 3


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))] if ordered else float("nan")


def job_text(chars: int) -> str:
    prose = " ".join(units("long"))
    text = prose
    while len(text) < chars:
        text += " " + prose
    return text[:chars].rsplit(". ", 1)[0] + "."


def store_bytes(root: Path) -> int:
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file())


class Server:
    """`vvbench serve` as a child process in its own session, and a 5 Hz RSS sampler on it."""

    def __init__(self, args, data_dir: Path):
        cmd = [sys.executable, "-m", "vvbench.cli", "serve", "--preset", args.preset, "--port", "0",
               "--data-dir", str(data_dir), "--threads", str(args.threads), "--memory-budget", args.memory_budget,
               "--max-batch", str(args.max_batch)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=open(data_dir.parent / "serve.log", "w"),
                                     text=True, start_new_session=True)
        self.url = self.proc.stdout.readline().split()[-1]
        self.ps = psutil.Process(self.proc.pid)
        self.peak = 0
        self._stop = threading.Event()
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.ps.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.2)

    def stop(self) -> None:
        self._stop.set()
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)


def client(url: str, idx: int, n: int, out: list, lock: threading.Lock) -> None:
    with httpx.Client(base_url=url, timeout=60) as c:
        for i in range(n):
            body = {"input": SHORT[(idx + i) % len(SHORT)], "seed": idx * 1000 + i, "response_format": "pcm"}
            t0 = time.perf_counter()
            arrivals, got, status = [], 0, None
            try:
                with c.stream("POST", "/v1/audio/speech", json=body) as resp:
                    status = resp.status_code
                    for piece in resp.iter_raw():
                        if piece and status == 200:
                            got += len(piece) // 2
                            arrivals.append((time.perf_counter() - t0, got))
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            ttfa = arrivals[0][0] if arrivals else None
            play = simulate(arrivals, 24000, ttfa) if ttfa is not None else None
            with lock:
                out.append({"status": status, "ttfa_s": ttfa, "max_stall_s": play.max_stall_s if play else None,
                            "underrun_s": play.underrun_s if play else None})


def condition(server: Server, c: httpx.Client, jobs: int, text: str, args, root: Path) -> dict:
    before = store_bytes(root)
    s0 = c.get("/v1/stats").json()
    server.peak = server.ps.memory_info().rss
    ids = [c.post("/v1/jobs", json={"input": text, "seed": i, "response_format": "pcm"}).json()["id"] for i in range(jobs)]
    t_jobs = time.monotonic()
    while jobs and time.monotonic() - t_jobs < 3 and c.get("/v1/stats").json()["active_streams"] == 0:
        time.sleep(0.1)
    out: list = []
    lock = threading.Lock()
    threads = [threading.Thread(target=client, args=(server.url, i, args.requests, out, lock)) for i in range(CLIENTS)]
    [t.start() for t in threads]
    [t.join(args.requests * 70) for t in threads]
    s1 = c.get("/v1/stats").json()
    for job_id in ids:
        c.delete(f"/v1/jobs/{job_id}")
    t_del = time.monotonic()
    idle_s = None
    while time.monotonic() - t_del < 10:
        s = c.get("/v1/stats").json()
        if (s["active_streams"], s["queue_depth"], s["kv_cache_bytes"]) == (0, 0, 0):
            idle_s = time.monotonic() - t_del
            break
        time.sleep(0.05)
    ok = [r for r in out if r["status"] == 200 and r["ttfa_s"] is not None]
    return {
        "jobs": jobs, "ok": len(ok), "sent": len(out),
        "ttfa_p50_s": pct([r["ttfa_s"] for r in ok], 50), "ttfa_p95_s": pct([r["ttfa_s"] for r in ok], 95),
        "max_stall_s": max((r["max_stall_s"] for r in ok), default=float("nan")),
        "underrun_s_mean": statistics.fmean([r["underrun_s"] for r in ok]) if ok else float("nan"),
        "job_prefill_tokens": s1["prefill_tokens"] - s0["prefill_tokens"],
        "frames": s1["frames"] - s0["frames"], "window_s": time.monotonic() - t_jobs,
        "stream_reserved_mib": s1["stream_reserved_bytes"] / 2**20, "held_for_memory": s1["held_for_memory"],
        "max_iteration_s": s1["max_iteration_s"], "peak_rss_mib": server.peak / 2**20,
        "idle_after_delete_s": idle_s, "store_delta_bytes": store_bytes(root) - before,
    }


def run_ttfa(args) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="vvbench-longform-"))
    data = tmp / "data"
    text = job_text(args.job_chars)
    server = Server(args, data)
    deadline = time.monotonic() + args.max_s
    rows = []
    try:
        with httpx.Client(base_url=server.url, timeout=60) as c:
            while c.get("/readyz").status_code != 200:
                time.sleep(0.2)
            budget = c.get("/v1/stats").json()["memory_budget_bytes"]
            print(f"# {args.preset}, budget {budget / 2**20:.0f} MiB, jobs of {len(text)} chars, load avg {os.getloadavg()}")
            for r in range(args.rounds):
                order = args.jobs[r % len(args.jobs):] + args.jobs[: r % len(args.jobs)]
                for jobs in order:
                    if time.monotonic() > deadline:
                        break
                    row = condition(server, c, jobs, text, args, data)
                    row["round"] = r
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    finally:
        server.stop()
    print(f"# load avg after {os.getloadavg()}; peak RSS budget {budget / 2**20:.0f} MiB")
    print("| jobs | streaming ok / sent | TTFA p50 / p95 (s) | longest stall (s) | job prefill tokens / frames in window | peak RSS MiB | idle after delete (s) | store Δ (KiB) |")
    print("|---|---|---|---|---|---|---|---|")
    for jobs in args.jobs:
        mine = [x for x in rows if x["jobs"] == jobs]
        for x in mine:
            print(f"| {jobs} (round {x['round']}) | {x['ok']} / {x['sent']} | {x['ttfa_p50_s']:.2f} / {x['ttfa_p95_s']:.2f} | "
                  f"{x['max_stall_s']:.2f} | {x['job_prefill_tokens']} / {x['frames']} | {x['peak_rss_mib']:.0f} | "
                  f"{x['idle_after_delete_s'] if x['idle_after_delete_s'] is None else round(x['idle_after_delete_s'], 2)} | "
                  f"{x['store_delta_bytes'] / 1024:.0f} |")
    if args.out:
        Path(args.out).write_text(json.dumps({"preset": args.preset, "budget_bytes": budget, "rows": rows}, indent=1))


MEMORY_CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[4])
import vvbench.runtime  # noqa: F401
import torch
from rsspeak import PeakRSS
from vvbench.core.audio import SAMPLE_RATE
from vvbench.runtime.config import RuntimeConfig
from vvbench.runtime.engine import Engine
from vvbench.runtime.plan import memory_plan, REFERENCE_TEXT
from vvbench.runtime.request import SynthesisRequest
from vvbench.runtime.text import plan_prosody

preset, minutes, threads = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
reps = max(1, round(minutes * 60 / plan_prosody(REFERENCE_TEXT).duration_s))
text = " ".join([REFERENCE_TEXT] * reps)
cfg = RuntimeConfig(preset=preset, max_batch=8, threads=threads)
engine = Engine(cfg)
engine.warmup()
rss = PeakRSS()
t0 = time.perf_counter()
h = engine.submit(SynthesisRequest(text=text, seed=1, priority=1, max_input_chars=10**6, first_chunk_frames=20))
next(h.chunks(timeout=3600))
wall = time.perf_counter() - t0
stats = engine.stats()
h.cancel()
rss.stop()
audio_min = h.n_frames * 3200 / SAMPLE_RATE / 60
plan = memory_plan(cfg, streams=1, max_audio_min=audio_min).to_json()
print(json.dumps({"preset": preset, "audio_min": audio_min, "chars": len(text), "rss_above_loaded": rss.peak - rss.base,
                  "kv_bytes": stats["kv_cache_bytes"], "planned_kv": plan["kv_bytes_per_stream"],
                  "prefill_s": h.timings().get("prefill", 0.0), "first_chunk_s": wall,
                  "max_iteration_s": stats["max_iteration_s"]}))
engine.close()
"""


def run_memory(args) -> None:
    print("| preset | audio min | chars | KV held MiB | planned KV MiB | RSS above loaded engine MiB | prefill s | first chunk s | longest iteration s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for minutes in args.minutes:
        out = subprocess.run([sys.executable, "-c", MEMORY_CHILD, args.preset, str(minutes), str(args.threads),
                              str(Path(__file__).resolve().parent)],
                             capture_output=True, text=True, check=True, timeout=1800)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"| {r['preset']} | {r['audio_min']:.1f} | {r['chars']} | {r['kv_bytes'] / 2**20:.0f} | {r['planned_kv'] / 2**20:.0f} | "
              f"{r['rss_above_loaded'] / 2**20:.0f} | {r['prefill_s']:.1f} | {r['first_chunk_s']:.1f} | {r['max_iteration_s']:.3f} |", flush=True)
    from vvbench.runtime.config import RuntimeConfig
    from vvbench.runtime.plan import memory_plan

    print("\n| preset (CUDA, planned) | " + " | ".join(f"{m:g} min: KV / total GiB" for m in args.minutes) + " |")
    print("|---|" + "---|" * len(args.minutes))
    for preset in ("realtime-0.5b", "vibevoice-1.5b", "vibevoice-7b"):
        cells = []
        for minutes in args.minutes:
            plan = memory_plan(RuntimeConfig(preset=preset, device="cuda"), streams=1, max_audio_min=minutes,
                               budget_bytes=141 * 2**30, cuda_available=True).to_json()
            dev = next(d for k, d in plan["devices"].items() if k.startswith("cuda"))
            cells.append(f"{plan['kv_bytes_per_stream'] / 2**30:.2f} / {dev['total'] / 2**30:.1f}")
        print(f"| {preset} | " + " | ".join(cells) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("ttfa")
    t.add_argument("--preset", default="tiny")
    t.add_argument("--jobs", type=int, nargs="+", default=[0, 1, 5])
    t.add_argument("--rounds", type=int, default=2)
    t.add_argument("--requests", type=int, default=4, help="short requests per client per condition")
    t.add_argument("--job-chars", type=int, default=DEFAULT_MAX_JOB_CHARS)
    t.add_argument("--memory-budget", default="2GiB")
    t.add_argument("--max-batch", type=int, default=8)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--max-s", type=float, default=900, help="stop starting conditions after this long")
    t.add_argument("--out", default=None, help="write the rows as JSON here")
    m = sub.add_parser("memory")
    m.add_argument("--preset", default="tiny")
    m.add_argument("--minutes", type=float, nargs="+", default=[1, 10, 30, 90])
    m.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    run_ttfa(args) if args.cmd == "ttfa" else run_memory(args)


if __name__ == "__main__":
    main()
