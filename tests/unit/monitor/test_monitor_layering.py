"""The monitor (exporter, watchdog, audio checks) stays clear of the runtime, torch and locust (DESIGN.md section 1)."""

import subprocess
import sys

MODULES = ("monitor.exporter", "monitor.watch.supervisor", "monitor.watch.config", "monitor.audio.checks",
           "monitor.audio.loading", "vvbench.cli_monitor")


def test_monitor_imports_neither_runtime_nor_torch_nor_locust():
    code = "import sys\n" + "".join(f"import {m}\n" for m in MODULES) + "print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert not [m for m in out if m.startswith(("vvbench.runtime", "vvbench.server", "torch", "locust", "gevent"))]
