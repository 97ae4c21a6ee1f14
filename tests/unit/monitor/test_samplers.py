"""The Sampler contract, run against every sampler, and fakes that fail like real sources."""

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pyarrow as pa
import pytest

from vvbench.artifacts.schemas import SAMPLE_COLUMNS, SAMPLES, write_parquet
from vvbench.monitor import nvml
from vvbench.monitor.nvml import NvmlSampler
from vvbench.monitor.sampleloop import SampleLoop
from vvbench.monitor.samplers import (
    ProcessTreeSampler,
    Sampler,
    ServiceStatsSampler,
    SystemCpuSampler,
)


class StatsServer:
    """A /v1/stats endpoint in a thread, which can be shut down mid-run like a crashed service."""

    def __init__(self, body: dict, status: int = 200):
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_GET(self):
                data = json.dumps(outer.body).encode()
                self.send_response(outer.status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.body, self.status = body, status
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def die(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def stats_server():
    s = StatsServer({"queue_depth": 3, "active_streams": 2, "kv_cache_bytes": 1024, "cuda_allocated_bytes": None})
    yield s
    s.die()


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


SAMPLERS = {
    "process-self": lambda srv: ProcessTreeSampler(os.getpid()),
    "process-dead": lambda srv: ProcessTreeSampler(dead_pid()),
    "process-none": lambda srv: ProcessTreeSampler(None),
    "system-cpu": lambda srv: SystemCpuSampler(),
    "stats": lambda srv: ServiceStatsSampler(srv.url),
    "stats-unreachable": lambda srv: ServiceStatsSampler("http://127.0.0.1:9", timeout_s=0.2),
    "nvml": lambda srv: NvmlSampler(os.getpid()),
}


@pytest.mark.parametrize("name", SAMPLERS)
def test_sampler_contract(name, stats_server):
    s: Sampler = SAMPLERS[name](stats_server)
    first, second = s.sample(), s.sample()
    assert list(first) == list(s.columns) == list(second)
    for v in (*first.values(), *second.values()):
        assert v is None or isinstance(v, (int, float))
    assert len(s.notes) == len(set(s.notes)) <= 2
    s.close()
    s.close()


def test_readings_from_live_sources(stats_server):
    own = ProcessTreeSampler(os.getpid()).sample()
    assert own["rss_bytes"] > 10 * 2**20 and own["procs"] >= 1
    cpu = SystemCpuSampler()
    time.sleep(0.05)
    reading = cpu.sample()
    assert 0.0 <= reading["sys_cpu_idle"] <= 1.0
    stats = ServiceStatsSampler(stats_server.url).sample()
    assert stats["queue_depth"] == 3 and stats["active_streams"] == 2 and stats["kv_cache_bytes"] == 1024
    assert stats["cuda_allocated_bytes"] is None


def test_stats_endpoint_that_dies_mid_run_gives_na_said_once():
    srv = StatsServer({"queue_depth": 1})
    s = ServiceStatsSampler(srv.url, timeout_s=0.3)
    assert s.sample()["queue_depth"] == 1
    srv.die()
    for _ in range(3):
        assert s.sample()["queue_depth"] is None
    assert len(s.notes) == 1


def test_service_without_stats_endpoint_is_na():
    srv = StatsServer({"error": "not found"}, status=404)
    s = ServiceStatsSampler(srv.url)
    assert all(v is None for v in s.sample().values())
    assert "404" in s.notes[0]
    srv.die()


def test_process_that_exits_mid_run():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    s = ProcessTreeSampler(child.pid, refresh_s=0.0)
    assert s.sample()["rss_bytes"] > 0
    child.kill()
    child.wait()
    assert s.sample()["rss_bytes"] is None
    assert s.sample()["rss_bytes"] is None


class GpuThatErrorsMidRun:
    """A fake pynvml: one GPU whose reads start failing with NVMLError after `ok_reads` memory reads."""

    class NVMLError(Exception):
        pass

    def __init__(self, ok_reads: int, gpu_pid: int = 42):
        self.left = ok_reads
        self.gpu_pid = gpu_pid

    def nvmlInit(self):
        return None

    def nvmlDeviceGetCount(self):
        return 1

    def nvmlDeviceGetHandleByIndex(self, i):
        return "gpu0"

    def nvmlDeviceGetName(self, h):
        return "Fake GPU"

    def nvmlDeviceGetMemoryInfo(self, h):
        if self.left <= 0:
            raise self.NVMLError("GPU is lost")
        self.left -= 1
        return type("M", (), {"used": 3 * 2**30, "total": 80 * 2**30})()

    def nvmlDeviceGetUtilizationRates(self, h):
        if self.left <= 0:
            raise self.NVMLError("GPU is lost")
        return type("U", (), {"gpu": 55, "memory": 10})()

    def nvmlDeviceGetComputeRunningProcesses(self, h):
        return [type("P", (), {"pid": self.gpu_pid, "usedGpuMemory": 2**30}), type("P", (), {"pid": 1, "usedGpuMemory": 2**31})]


def test_gpu_that_errors_mid_run_degrades_to_na(monkeypatch):
    fake = GpuThatErrorsMidRun(ok_reads=2)
    monkeypatch.setattr(nvml, "_pynvml", fake)
    monkeypatch.setattr(nvml, "_state", {"init": None, "error": None})
    s = NvmlSampler(42)
    first = s.sample()
    assert first["gpu_mem_used_bytes"] == 3 * 2**30 and first["gpu_util_pct"] == pytest.approx(55) and first["gpu_proc_mem_bytes"] == 2**30
    s.sample()
    lost = s.sample()
    assert lost["gpu_mem_used_bytes"] is None and lost["gpu_util_pct"] is None and lost["gpu_count"] == 1
    assert "GPU is lost" in nvml.last_error()


def test_gpu_memory_of_a_child_process_counts_for_its_root(monkeypatch):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        monkeypatch.setattr(nvml, "_pynvml", GpuThatErrorsMidRun(ok_reads=10, gpu_pid=child.pid))
        monkeypatch.setattr(nvml, "_state", {"init": None, "error": None})
        assert NvmlSampler(os.getpid()).sample()["gpu_proc_mem_bytes"] == 2**30  # the child's, not PID 1's
        assert NvmlSampler(child.pid + 10**6).sample()["gpu_proc_mem_bytes"] is None  # another tree holds no GPU memory
    finally:
        child.kill()
        child.wait()


def test_no_gpu_here_is_said_once(monkeypatch):
    monkeypatch.setattr(nvml, "_state", {"init": False, "error": "NVML Shared Library Not Found"})
    s = NvmlSampler()
    for _ in range(3):
        assert all(v is None for v in s.sample().values())
    assert len(s.notes) == 1 and "no GPU" in s.notes[0]


def test_loop_rate_clock_and_parquet(tmp_path):
    t0 = time.time()
    loop = SampleLoop([SystemCpuSampler(), ProcessTreeSampler(os.getpid())], hz=20).start()
    time.sleep(0.6)
    loop.stop()
    frame = loop.frame()
    assert 8 <= len(frame) <= 14
    assert frame["t"].between(t0, time.time()).all() and frame["t"].is_monotonic_increasing
    assert (frame["sample_cpu_s"] >= 0).all()
    write_parquet(pa.Table.from_pylist(loop.rows), tmp_path / "samples.parquet", SAMPLES)  # as a run writes it
    back = pd.read_parquet(tmp_path / "samples.parquet")
    assert list(back.columns) == list(SAMPLE_COLUMNS)
    assert back["rss_bytes"].notna().all() and back["gpu_mem_used_bytes"].isna().all()  # no NVML sampler here: null


def test_a_sampler_that_raises_is_contained():
    class Broken(Sampler):
        columns = ("x",)

        def read(self):
            raise RuntimeError("boom")

    b = Broken()
    assert b.sample() == {"x": None} and b.sample() == {"x": None}
    assert b.notes == ["Broken: RuntimeError: boom"]
