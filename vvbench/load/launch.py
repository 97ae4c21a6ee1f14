"""Starting and stopping the load processes from `vvbench run` (no Locust import in this process).

One local process (`--workers 1`), a Locust master plus N local workers on loopback
(`--workers N`), or a master alone waiting for workers on other hosts (`--master`). Each is
`python -m vvbench.load.worker`, its output in `log_dir/load-<role>.log`, stopped by PID:
SIGTERM (it stops its users, records the in-flight requests as cancelled and flushes its rows),
then SIGKILL after a grace period. A master is signalled before its workers so that it can
collect their last rows.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from vvbench.core.errors import ConfigError
from vvbench.core.net import free_port
from vvbench.load.context import LoadPlan


class LoadProcesses:
    """The load generator's processes for one run."""

    def __init__(self, plan: LoadPlan, work_dir: Path, log_dir: Path, *, workers: int = 1, master: bool = False,
                 master_bind_host: str = "127.0.0.1", master_port: int | None = None):
        if workers < 1:
            raise ConfigError("--workers must be at least 1")
        self.plan, self.work_dir, self.log_dir = plan, Path(work_dir), Path(log_dir)
        self.workers, self.master = workers, master
        self.bind_host = master_bind_host
        self.port = master_port
        self.procs: dict[str, subprocess.Popen] = {}

    @property
    def mode(self) -> str:
        if self.master:
            return "master (remote workers)"
        return "local" if self.workers == 1 else f"master + {self.workers} local workers"

    def _spawn(self, name: str, args: list[str]) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / f"load-{name}.log", "ab") as log:
            self.procs[name] = subprocess.Popen([sys.executable, "-m", "vvbench.load.worker", *args],
                                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                                start_new_session=True)

    def start(self) -> LoadProcesses:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        plan_path = self.work_dir / "plan.json"
        plan = self.plan.model_copy(update={"workers": self.workers})
        plan_path.write_text(plan.model_dump_json())
        common = ["--plan", str(plan_path), "--out", str(self.work_dir)]
        if self.workers == 1 and not self.master:
            self._spawn("local", ["--role", "local", *common])
            return self
        self.port = self.port or free_port(self.bind_host if self.bind_host != "0.0.0.0" else "127.0.0.1")
        self._spawn("master", ["--role", "master", *common, "--expect-workers", str(self.workers),
                               "--master-bind-host", self.bind_host, "--master-bind-port", str(self.port)])
        if not self.master:
            for i in range(self.workers):
                self._spawn(f"worker{i}", ["--role", "worker", "--master-host", "127.0.0.1", "--master-port", str(self.port)])
        return self

    @property
    def coordinator(self) -> subprocess.Popen:
        return self.procs.get("local") or self.procs["master"]

    def finished(self) -> bool:
        """The process that owns the rows (local or master) has exited."""
        return self.coordinator.poll() is not None

    def returncode(self) -> int | None:
        return self.coordinator.poll()

    def log_tail(self) -> str:
        """The last line the coordinator (local or master) logged, for error messages."""
        name = "local" if "local" in self.procs else "master"
        try:
            lines = (self.log_dir / f"load-{name}.log").read_text(errors="replace").splitlines()
        except OSError:
            return "no log"
        return next((line.strip() for line in reversed(lines) if line.strip()), "no output")[:300]

    def progress(self) -> dict | None:
        try:
            return json.loads((self.work_dir / "progress.json").read_text())
        except (OSError, ValueError):
            return None

    def stop(self, grace_s: float = 20.0) -> None:
        """SIGTERM the coordinator, then the workers; SIGKILL whatever outlives the grace period."""
        order = sorted(self.procs.items(), key=lambda kv: kv[0] not in ("local", "master"))
        for _, proc in order:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(grace_s)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)

    def wait(self, timeout_s: float) -> None:
        """Wait for every process to exit by itself (workers exit when their master quits)."""
        for proc in self.procs.values():
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                pass
