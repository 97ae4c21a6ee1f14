"""What a load worker does besides its requests, kept from delaying them. Imports gevent.

Measured (docs/benchmarking.md, "The clock"): everything the worker ran on its event loop —
building parquet parts, writing them and the progress file, Locust's stats and CSV writer,
garbage collection — delayed the reads of every stream at once, because the reads ran on the
same loop. Requests now read on threads of their own (`vvbench.load.users`); what is left on
the loop is made short: `Upkeep` writes row parts, loop-watch parts and the progress file on a
writer thread of its own (in order), and runs the worker's self-watch
(`vvbench.load.selfwatch.LoopWatch`) on the loop it watches.

Also here: the request pool (`request_pool`), sized to the users so that every in-flight
request has its thread, and the two environment hooks of `vvbench.load.selfwatch`
(`VVBENCH_TRACE_BLOCKING`, `VVBENCH_INJECT_STALL`).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import gevent
import greenlet
from gevent.threadpool import ThreadPool

from vvbench.artifacts.schemas import LOOP
from vvbench.core.files import write_atomic
from vvbench.load import selfwatch
from vvbench.load.context import LoadContext
from vvbench.load.records import RowRecorder

WRITE_WAIT_S = 30.0


def request_pool(users: int) -> ThreadPool:
    """Real threads for the requests: one per user that can be in flight at once, plus a spare."""
    return ThreadPool(maxsize=max(1, users) + 1)


def _stall_at(due: float, duration_s: float) -> None:
    # Polls the wall clock rather than arming one timer: libev times a timer from the loop's
    # cached "now", stale by however long the loop last went without running (imports at start).
    while (left := due - time.time()) > 0:
        gevent.sleep(min(left, 0.05))
    selfwatch.block_loop(duration_s)


class Upkeep:
    """One worker's writes and self-watch (see the module docstring)."""

    def __init__(self, ctx: LoadContext, out: Path | None):
        self.ctx = ctx
        self.out = out  # None: a remote worker, whose rows leave by message
        self.watch = selfwatch.LoopWatch(ctx.name)
        self.loop = RowRecorder(out / "loop", ctx.name, LOOP) if out is not None else None
        self.writer = ThreadPool(maxsize=1)
        self.pending: list = []
        self.greenlets: list = []

    def start(self) -> Upkeep:
        trace_ms = os.environ.get(selfwatch.TRACE_ENV)
        if trace_ms:
            selfwatch.trace_blocking(float(trace_ms) / 1000, gevent.get_hub(), greenlet.settrace)
        self.greenlets.append(gevent.spawn(self.watch.run, gevent.sleep))
        stall = selfwatch.injected_stall()
        if stall is not None:
            self.greenlets.append(gevent.spawn(_stall_at, self.ctx.start_at + stall[0], stall[1]))
        return self

    def _submit(self, fn, *args) -> None:
        for done in [r for r in self.pending if r.ready()]:
            done.get()  # a write that failed fails the worker, as it did when it ran here
        self.pending = [r for r in self.pending if not r.ready()]
        self.pending.append(self.writer.spawn(fn, *args))

    def flush(self, progress: dict | None = None) -> None:
        """Hand the rows, the loop rows and the progress file (when given) to the writer thread."""
        taken = self.ctx.recorder.take()
        if taken:
            self._submit(self.ctx.recorder.write, *taken)
        if self.loop is not None:
            self.loop.extend(self.watch.take())
            taken = self.loop.take()
            if taken:
                self._submit(self.loop.write, *taken)
        if progress is not None and self.out is not None:
            self._submit(write_atomic, self.out / "progress.json", json.dumps(progress))

    def close(self, progress: dict | None = None) -> None:
        """Stop watching, write what is left and wait for every write."""
        self.watch.stop()
        gevent.killall(self.greenlets, block=True, timeout=2)
        self.flush(progress)
        gevent.wait(self.pending, timeout=WRITE_WAIT_S)
        self.writer.kill()
        for done in self.pending:
            if done.ready():
                done.get()
