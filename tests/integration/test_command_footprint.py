"""What each command loads, checked on real processes (the import contracts check the code; these check a run).

A `vvbench watch` daemon must not carry a model runtime: no torch or Locust (gevent) library
mapped into it, no `MKL_CBWR` set by vvbench (the runtime package's process-wide pin, which the
supervised service would inherit). `check-audio` and the other light commands import neither.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
from runkit import write_run

from tests.integration.watchkit import Watch

HEAVY = ("torch", "locust", "gevent", "greenlet", "vvbench.runtime")
HEAVY_LIBS = ("libtorch", "torch/_C", "gevent", "greenlet")


def _clean_env() -> dict[str, str]:
    # the test process imported vvbench.runtime (tests/conftest.py), which set MKL_CBWR here
    return {k: v for k, v in os.environ.items() if k != "MKL_CBWR"}


def test_a_spawned_watchdog_maps_no_torch_or_locust_and_sets_no_mkl_pin(tmp_path):
    env_file = tmp_path / "child-env"
    child = ["sh", "-c", f'env > "{env_file}"; exec sleep 60']
    # without the test process's MKL_CBWR (see _clean_env): the service must not find one unless the watchdog set it
    w = Watch(tmp_path / "watch", ["--canary-every", "0", "--run-for", "30s"], child, env={"MKL_CBWR": None}).start()
    try:
        deadline = time.monotonic() + 30
        while not (env_file.exists() and env_file.read_text().strip()) and time.monotonic() < deadline:
            assert w.child.poll() is None, w.tail()
            time.sleep(0.05)
        assert env_file.exists(), "the watchdog never started its command"
        time.sleep(1.0)  # the watchdog's loop has run: sampling, probes, event log
        maps = Path(f"/proc/{w.child.pid}/maps").read_text()
        rss = psutil.Process(w.child.pid).memory_info().rss
    finally:
        w.stop(30)
    mapped = sorted({line.split()[-1] for line in maps.splitlines() if any(lib in line for lib in HEAVY_LIBS)})
    assert not mapped, mapped
    assert "MKL_CBWR=" not in env_file.read_text()
    assert rss < 150 * 2**20, f"watchdog RSS {rss / 2**20:.0f} MiB"


def _modules_after(args: list[str]) -> set[str]:
    code = ("import sys\nfrom vvbench.cli.main import cli\n"
            f"try:\n    cli({args!r}, obj={{}})\nexcept SystemExit:\n    pass\n"
            "print('MODULES', ' '.join(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=_clean_env()).stdout
    line = next(line for line in out.splitlines() if line.startswith("MODULES "))
    return set(line.split()[1:])


def test_light_commands_import_neither_torch_nor_locust(tmp_path):
    wav = tmp_path / "x.wav"
    wav.write_bytes(b"not a wav")
    run = str(write_run(tmp_path / "runs", n=50))  # a real run directory: the rendering and statistics paths run
    for args in (["watch", "--help"], ["check-audio", str(wav)], ["monitor", "export", "--help"], ["report", str(tmp_path)],
                 ["report", run, "--format", "html"], ["compare", run, run, "--format", "html"]):
        mods = _modules_after(args)
        assert not {m for m in mods if m.split(".")[0] in HEAVY or m.startswith(HEAVY)}, (args, sorted(mods)[:20])


def test_run_imports_no_locust_in_its_own_process():
    mods = _modules_after(["run", "--help"])
    assert not {m for m in mods if m.split(".")[0] in ("locust", "gevent", "greenlet")}
