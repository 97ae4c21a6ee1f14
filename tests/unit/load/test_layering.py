"""Locust stays in the load processes; monitor and reports stay clear of the runtime (DESIGN.md section 1)."""

import subprocess
import sys


def imported(*modules: str) -> set[str]:
    code = "import sys\n" + "".join(f"import {m}\n" for m in modules) + "print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_cli_and_run_never_import_locust_or_gevent():
    mods = imported("vvbench.cli", "vvbench.run", "vvbench.cli_run", "vvbench.targets", "vvbench.load.launch")
    assert not {m for m in mods if m.split(".")[0] in ("locust", "gevent")}


def test_monitor_and_reports_do_not_import_the_runtime_or_locust():
    mods = imported("monitor.samplers", "monitor.nvml", "monitor.sampleloop", "reports.metrics", "reports.slo", "reports.render")
    assert not {m for m in mods if m.startswith(("vvbench.runtime", "torch", "locust", "gevent"))}
