"""Starting and stopping the load processes from `vvbench run` (no Locust import in this process).

One local process (`--workers 1`), a Locust master plus N local workers on loopback
(`--workers N`), or a master alone waiting for workers on other hosts (`--master`). Each is
`python -m vvbench.load.worker` started as a `vvbench.core.proc.Child` (its own session, so a
Ctrl-C reaches only `vvbench run`, which then stops them in order), its output in
`log_dir/load-<role>.log`, stopped by PID: SIGTERM (it stops its users, records the in-flight
requests as cancelled and flushes its rows), then SIGKILL after a grace period. Each is tethered
(`vvbench.core.proc`): a `vvbench run` killed outright takes its load with it. A master is
stopped before its workers so that it can collect their last rows.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from vvbench.core.errors import ConfigError
from vvbench.core.net import free_port
from vvbench.core.proc import STDOUT, Child
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
        self.procs: dict[str, Child] = {}

    @property
    def mode(self) -> str:
        if self.master:
            return "master (remote workers)"
        return "local" if self.workers == 1 else f"master + {self.workers} local workers"

    def _spawn(self, name: str, args: list[str]) -> None:
        self.procs[name] = Child([sys.executable, "-m", "vvbench.load.worker", *args], stdout=self.log_dir / f"load-{name}.log",
                                 stderr=STDOUT, name=f"load {name}").start()

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
    def coordinator(self) -> Child:
        return self.procs.get("local") or self.procs["master"]

    def finished(self) -> bool:
        """The process that owns the rows (local or master) has exited."""
        return self.coordinator.poll() is not None

    def returncode(self) -> int | None:
        return self.coordinator.poll()

    def log_tail(self) -> str:
        """The last line the coordinator (local or master) logged, for error messages."""
        return self.coordinator.stderr_tail(1)[:300] or "no output"

    def progress(self) -> dict | None:
        try:
            return json.loads((self.work_dir / "progress.json").read_text())
        except (OSError, ValueError):
            return None

    def stop(self, grace_s: float = 20.0) -> None:
        """Stop the coordinator, then the workers, each by PID (SIGTERM, `grace_s`, SIGKILL); reaps them all."""
        for name in sorted(self.procs, key=lambda name: name not in ("local", "master")):
            self.procs[name].stop(grace_s)

    def wait(self, timeout_s: float) -> None:
        """Wait for every process to exit by itself (workers exit when their master quits), each up to `timeout_s`."""
        for child in self.procs.values():
            child.reap(timeout_s)
