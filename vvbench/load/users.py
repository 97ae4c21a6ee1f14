"""Locust users for vvbench. Imports locust (gevent monkey-patching): only `vvbench.load.worker` imports this.

Two user classes, named for the loop they make:

- `ClosedLoopUser`: sends its next request only after the previous one finished (plus the
  scenario's think time). A slow server lowers the load it is offered — closed-loop concurrency,
  named as such, never used for open-loop scenarios.
- `OpenLoopUser`: one slot of the open-loop pool. It takes the next arrival of the schedule
  fixed in advance (`vvbench.load.arrivals`), sleeps until its time and sends it. The pool is
  sized so that slots are free when an arrival is due; if they are not, the request leaves late
  and its row says by how much (`lag_s`), so the offered rate never silently drops.

Both delegate to `LoadContext.execute`. A speech request over plain HTTP runs on a thread of
the worker's request pool (`POOL`, a gevent `ThreadPool` of real threads sized to the users),
its socket a plain blocking one (`vvbench.load.wire`): the event loop only hands it over and
waits, so nothing the loop does — Locust's stats, our flushes, a slow greenlet — can delay a
read. Jobs, and HTTPS, stay on the loop (http.client on gevent's sockets, timed as read). Then
the user fires one Locust request event per request (type `SPEECH` or `JOB`, name = class, response
time = E2E, `exception=` set for every failed row) and, for successful ones, a `TTFA` event: so
Locust's own CSV counts exactly the rows of `requests.parquet` under SPEECH and JOB.
A request still running when the run is stopped is recorded as `cancelled`.
"""

from __future__ import annotations

import math
import time

import gevent
from gevent import GreenletExit
from locust import User, constant, task
from locust.exception import StopUser

from vvbench.load.context import LoadContext

CONTEXT: LoadContext | None = None  # set by the worker before users are spawned
POOL = None  # the worker's request threads (a gevent ThreadPool), set with CONTEXT


class RequestFailed(Exception):
    """What Locust records for a failed row (its message is the status and the error)."""


def fire_events(environment, row: dict) -> None:
    """Locust events for one row (see the module docstring)."""
    ok = row["status"] == "ok"
    e2e = row["e2e_s"]
    exc = None if ok else RequestFailed(f"{row['status']}: {row['error'] or ''}".strip())
    environment.events.request.fire(
        request_type=row["api"].upper(), name=row["cls"],
        response_time=0.0 if e2e is None or math.isnan(e2e) else e2e * 1000.0,
        response_length=row["bytes"] or 0, exception=exc, context={})
    if ok:
        environment.events.request.fire(request_type="TTFA", name=row["cls"], response_time=row["ttfa_s"] * 1000.0,
                                        response_length=0, exception=None, context={})


class _VVUser(User):
    abstract = True
    wait_time = constant(0)

    def on_start(self) -> None:
        self.ctx = CONTEXT
        if self.ctx is None:
            raise StopUser()
        self.session = self.ctx.session()

    def on_stop(self) -> None:
        session = getattr(self, "session", None)
        if session is not None:
            session.close()

    def _send(self, spec, t_scheduled: float | None) -> None:
        t_start = time.time()
        call = POOL.apply if POOL is not None and self.ctx.off_loop(self.session, spec) else None
        try:
            row = self.ctx.execute(self.session, spec, t_scheduled, call)
        except GreenletExit:
            self.session.abort()  # the request's thread returns at once instead of reading on
            fire_events(self.environment, self.ctx.cancelled(spec, t_start, t_scheduled))
            raise
        fire_events(self.environment, row)


class ClosedLoopUser(_VVUser):
    """Closed loop: the next request leaves when the previous one has finished."""

    @task
    def next_request(self) -> None:
        ctx = self.ctx
        wait = ctx.start_at - time.time()
        if wait > 0:
            gevent.sleep(wait)
        if not ctx.accepting():
            raise StopUser()
        self._send(ctx.next_closed(), None)
        think = ctx.scenario.arrival.closed.think_time
        if think and ctx.accepting():
            gevent.sleep(think)


class OpenLoopUser(_VVUser):
    """A slot of the open-loop pool: takes the next scheduled arrival, waits for its time, sends it."""

    @task
    def next_arrival(self) -> None:
        item = self.ctx.next_arrival()
        if item is None:
            raise StopUser()
        spec, t_due = item
        wait = t_due - time.time()
        if wait > 0:
            gevent.sleep(wait)
        self._send(spec, t_due)


USER_CLASSES = {"closed": ClosedLoopUser, "open": OpenLoopUser}
