"""The load process: `python -m vvbench.load.worker --role local|master|worker ...`. Imports Locust.

Run only as its own process (Locust monkey-patches everything with gevent): `vvbench run` starts
it as a subprocess, in the tests too. Roles:

- `local`: one process runs every user (headless `LocalRunner`), writes its rows as parquet
  parts under `OUT/rows/`, Locust's CSV under `OUT/locust/`, and `OUT/progress.json` every second.
- `master`: a `MasterRunner` bound to `--master-bind-host` (127.0.0.1 unless told otherwise).
  It waits for `--expect-workers`, sends each the plan and its index (`vv_plan`), fixes a common
  time 0 a little ahead, starts the users, and receives the workers' rows (`vv_rows`, every
  second), which it writes like a local process. Locust's CSV is the master's (all workers).
- `worker`: a `WorkerRunner` connecting to `--master-host`; it needs no files: the plan arrives
  by message and its rows leave by message. When its share is done (or drained) it stops its
  users, sends its final Locust stats and rows and `vv_finished`; the master then quits everyone.

Every loop here is bounded: a process exits at the plan's drain end plus `GRACE_S` at the latest,
and on SIGTERM/SIGINT it stops its users (in-flight requests become `cancelled` rows), flushes
its rows and exits.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import gevent
import gevent.os
from locust import events
from locust.env import Environment
from locust.stats import (
    PERCENTILES_TO_REPORT,
    StatsCSV,
    StatsCSVFileWriter,
    stats_history,
)

from vvbench.artifacts.schemas import LOOP
from vvbench.core.files import write_atomic
from vvbench.core.proc import take_tether, tether_gone
from vvbench.load import users
from vvbench.load.context import LoadContext, LoadPlan, merge_progress, users_needed
from vvbench.load.records import RowRecorder
from vvbench.load.upkeep import Upkeep, request_pool

log = logging.getLogger("vvbench.load")

TICK_S = 0.05  # how soon a local load process notices that its share is done (the selfwatch ticker wakes every 10 ms anyway)
FLUSH_S = 1.0
GRACE_S = 30.0
SPAWN_RATE = 1000.0
CONNECT_TIMEOUT_S = 120.0


class _QuietSpawnWarning(logging.Filter):
    """Locust warns about spawn rates over 100/s; ours is deliberate (the pool must exist before time 0)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "spawn rate is very high" not in record.getMessage()


def _user_class(plan: LoadPlan):
    return users.USER_CLASSES["open" if plan.scenario.arrival.open_loop else "closed"]


class CsvOutput:
    """Locust's own CSV files (`locust_stats.csv`, `_stats_history.csv`, `_failures.csv`, `_exceptions.csv`)."""

    def __init__(self, env: Environment, out_dir: Path):
        out_dir.mkdir(parents=True, exist_ok=True)
        self.env, self.prefix = env, str(out_dir / "locust")
        self.writer = StatsCSVFileWriter(env, PERCENTILES_TO_REPORT, self.prefix, full_history=False)
        self.greenlets = [gevent.spawn(self.writer.stats_writer), gevent.spawn(stats_history, env.runner)]

    def close(self) -> None:
        """Stop the periodic writer and write the final figures (the periodic file can lag a second)."""
        gevent.killall(self.greenlets, block=True, timeout=5)
        self.writer.close_files()
        final = StatsCSV(self.env, PERCENTILES_TO_REPORT)
        for suffix, method in (("_stats.csv", final.requests_csv), ("_failures.csv", final.failures_csv),
                               ("_exceptions.csv", final.exceptions_csv)):
            with open(self.prefix + suffix, "w", newline="") as f:
                method(csv.writer(f))


def _stop_signals(on_stop) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(sig, on_stop)


def _follow_tether() -> None:
    """Stop (SIGTERM, the ordinary stop) when the `vvbench run` that started us is gone, SIGKILLed say: else the
    load would go on for the rest of its window, against a production service too. A greenlet waiting on the
    tether through the hub (`vvbench.core.proc`'s thread would block it)."""
    fd = take_tether()
    if fd is None:
        return
    parent = os.getppid()
    os.set_blocking(fd, False)

    def wait() -> None:
        try:
            while gevent.os.nb_read(fd, 64):
                pass
        except OSError:
            return
        tether_gone(parent)
    gevent.spawn(wait)


def _stop_users(runner) -> None:
    """Kill the users still running (their requests become cancelled rows) and let them record."""
    for greenlet in list(runner.user_greenlets):
        greenlet.kill(block=False)
    runner.user_greenlets.join(timeout=10)


def run_local(plan: LoadPlan, out: Path) -> int:
    env = Environment(user_classes=[_user_class(plan)], events=events)
    runner = env.create_local_runner()
    ctx = LoadContext(plan, 0, out / "rows", worker_name="w0")
    n = ctx.pool
    users.CONTEXT, users.POOL = ctx, request_pool(n)
    _stop_signals(lambda: setattr(ctx, "stopping", True))
    output = CsvOutput(env, out / "locust")
    ctx.start_at = plan.start_at or time.time() + 0.2 + n / SPAWN_RATE
    upkeep = Upkeep(ctx, out).start()
    runner.start(n, spawn_rate=SPAWN_RATE)
    last = 0.0
    while not ctx.finished() and not ctx.stopping:
        gevent.sleep(TICK_S)
        if time.monotonic() - last >= FLUSH_S:
            last = time.monotonic()
            upkeep.flush({**ctx.progress(), "start_at": ctx.start_at, "window_end": ctx.window_end})
    _stop_users(runner)
    runner.stop()
    upkeep.close({**ctx.progress(), "start_at": ctx.start_at, "window_end": ctx.window_end, "final": True})
    output.close()
    runner.quit()
    users.POOL.kill()
    return 0


class MasterState:
    """What the master learns from its workers."""

    def __init__(self, recorder: RowRecorder, loop: RowRecorder):
        self.recorder = recorder
        self.loop = loop
        self.progress: dict[str, dict] = {}
        self.finished: set[str] = set()
        self.ttfa: list[float] = []

    def on_rows(self, environment, msg) -> None:
        for row in msg.data["rows"]:
            self.recorder.add(row)
            if row["status"] == "ok" and not row["warmup"]:
                self.ttfa.append(row["ttfa_s"])
        self.loop.extend(msg.data.get("loop", []))
        self.progress[msg.node_id] = msg.data["progress"]

    def on_finished(self, environment, msg) -> None:
        self.finished.add(msg.node_id)


def run_master(plan: LoadPlan, out: Path, expect: int, bind_host: str, bind_port: int) -> int:
    env = Environment(user_classes=list(users.USER_CLASSES.values()), events=events)
    runner = env.create_master_runner(master_bind_host=bind_host, master_bind_port=bind_port)
    state = MasterState(RowRecorder(out / "rows", "m"), RowRecorder(out / "loop", "m", LOOP))
    runner.register_message("vv_rows", state.on_rows)
    runner.register_message("vv_finished", state.on_finished)
    stopping = []
    _stop_signals(lambda: stopping.append(True))
    deadline = time.time() + CONNECT_TIMEOUT_S
    while runner.worker_count < expect:
        if time.time() > deadline or stopping:
            log.error("only %d of %d load workers connected", runner.worker_count, expect)
            runner.quit()
            return 3
        gevent.sleep(0.1)
    user_class = _user_class(plan)
    total_users = users_needed(plan, expect)
    start_at = time.time() + 1.0 + total_users / SPAWN_RATE
    shared = plan.model_copy(update={"start_at": start_at, "workers": expect})
    clients = list(runner.clients.keys())
    for i, client_id in enumerate(clients):
        runner.send_message("vv_plan", {"plan": shared.model_dump(mode="json"), "index": i}, client_id=client_id)
    output = CsvOutput(env, out / "locust")
    runner.start(total_users, spawn_rate=SPAWN_RATE, user_classes=[user_class])
    end = start_at + plan.scenario.window_s + (plan.scenario.drain or 0.0) + GRACE_S
    while len(state.finished) < len(clients) and time.time() < end and not stopping:
        gevent.sleep(FLUSH_S)
        state.recorder.flush()
        state.loop.flush()
        prog = merge_progress(list(state.progress.values()), state.ttfa)
        write_atomic(out / "progress.json", json.dumps({**prog, "start_at": start_at, "window_end": start_at + plan.scenario.window_s,
                                                        "workers": runner.worker_count}))
    if stopping:
        runner.send_message("vv_stop")
        wait_until = time.time() + 15
        while len(state.finished) < len(clients) and time.time() < wait_until:
            gevent.sleep(0.2)
    gevent.sleep(0.5)  # the last rows and stats ride behind vv_finished on the same socket
    state.recorder.flush()
    state.loop.flush()
    prog = merge_progress(list(state.progress.values()), state.ttfa)
    write_atomic(out / "progress.json", json.dumps({**prog, "start_at": start_at, "window_end": start_at + plan.scenario.window_s, "final": True}))
    output.close()
    runner.quit()
    return 0 if len(state.finished) == len(clients) else 4


class WorkerState:
    """A remote worker: receives its plan, reports rows, finishes when its share is done."""

    def __init__(self, runner, name: str, scratch: Path):
        self.runner, self.name, self.scratch = runner, name, scratch
        self.ctx: LoadContext | None = None
        self.upkeep: Upkeep | None = None
        self.done = False

    def on_plan(self, environment, msg) -> None:
        plan = LoadPlan.model_validate(msg.data["plan"])
        index = int(msg.data["index"])
        self.ctx = LoadContext(plan, index, self.scratch, worker_name=f"w{index}")
        users.CONTEXT, users.POOL = self.ctx, request_pool(self.ctx.pool)
        self.upkeep = Upkeep(self.ctx, None).start()
        gevent.spawn(self.report_loop)

    def on_stop(self, environment=None, msg=None) -> None:
        if self.ctx is not None:
            self.ctx.stopping = True

    def _send_rows(self) -> None:
        rows, self.ctx.recorder.pending = self.ctx.recorder.pending, []
        self.runner.send_message("vv_rows", {"rows": rows, "loop": self.upkeep.watch.take(), "progress": self.ctx.progress()})

    def report_loop(self) -> None:
        ctx = self.ctx
        while not ctx.finished() and not ctx.stopping:
            gevent.sleep(FLUSH_S)
            self._send_rows()
        _stop_users(self.runner)
        self.upkeep.close()
        self.runner._send_stats()
        self._send_rows()
        self.runner.send_message("vv_finished", {"rows": ctx.recorder.total})
        self.done = True


def run_worker(master_host: str, master_port: int, scratch: Path) -> int:
    env = Environment(user_classes=list(users.USER_CLASSES.values()), events=events)
    runner = env.create_worker_runner(master_host=master_host, master_port=master_port)
    state = WorkerState(runner, os.uname().nodename, scratch)
    runner.register_message("vv_plan", state.on_plan)
    runner.register_message("vv_stop", state.on_stop)
    _stop_signals(state.on_stop)
    deadline = time.time() + 24 * 3600
    while len(runner.greenlet) and time.time() < deadline:
        if state.ctx is not None:
            deadline = min(deadline, state.ctx.drain_end + 2 * GRACE_S)
        gevent.sleep(0.2)
    shutil.rmtree(scratch, ignore_errors=True)
    return 0 if state.done else 4


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vvbench.load.worker", description="vvbench load process (Locust)")
    p.add_argument("--role", choices=("local", "master", "worker"), default="local")
    p.add_argument("--plan", type=Path, help="plan JSON (local, master)")
    p.add_argument("--out", type=Path, help="output directory (local, master)")
    p.add_argument("--expect-workers", type=int, default=1)
    p.add_argument("--master-bind-host", default="127.0.0.1")
    p.add_argument("--master-bind-port", type=int, default=5557)
    p.add_argument("--master-host", default="127.0.0.1")
    p.add_argument("--master-port", type=int, default=5557)
    p.add_argument("--log-level", default="WARNING")
    args = p.parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("locust.runners").addFilter(_QuietSpawnWarning())
    _follow_tether()
    if args.role == "worker":
        return run_worker(args.master_host, args.master_port, Path(tempfile.mkdtemp(prefix="vvbench-worker-")))
    plan = LoadPlan.model_validate_json(args.plan.read_text())
    args.out.mkdir(parents=True, exist_ok=True)
    if args.role == "master":
        return run_master(plan, args.out, args.expect_workers, args.master_bind_host, args.master_bind_port)
    return run_local(plan, args.out)


if __name__ == "__main__":
    sys.exit(main())
