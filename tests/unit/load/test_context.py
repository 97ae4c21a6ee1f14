"""A worker's share of a run, without Locust: the timeline, warm-up marking, when it is finished."""

import time

import pytest

from vvbench.artifacts.scenarios import Scenario
from vvbench.load import client
from vvbench.load.context import LoadContext, LoadPlan, merge_progress, users_needed


def plan(arrival: dict, warmup=1.0, duration=2.0, workers=1) -> LoadPlan:
    s = Scenario.model_validate({"classes": [{"name": "a", "text": {"corpus": "short"}, "timeout": 10}],
                                 "arrival": arrival, "warmup": warmup, "duration": duration, "drain": 5})
    return LoadPlan(scenario=s, base_url="http://127.0.0.1:9", start_at=time.time(), workers=workers)


@pytest.fixture
def instant_ok(monkeypatch):
    def fake(session, spec, rate):
        out = client.Outcome(t_start=time.time(), http_status=200, ttfb_s=0.01, ttfa_s=0.02, e2e_s=0.05)
        out.stream = client.AudioStream("pcm", rate)
        out.stream.feed(b"\x10\x27" * 2400)
        out.arrivals = [(0.02, 2400)]
        return out
    monkeypatch.setattr(client, "speech", fake)


def test_open_loop_is_not_finished_while_arrivals_wait(tmp_path, instant_ok):
    ctx = LoadContext(plan({"constant": {"rate": 2}}), 0, tmp_path)
    assert ctx.offered == 6 and not ctx.finished()
    taken = [ctx.next_arrival() for _ in range(6)]
    assert ctx.next_arrival() is None
    assert not ctx.finished()  # all arrivals taken, none sent yet: users are waiting for their times
    for spec, due in taken:
        row = ctx.execute(client.Session(ctx.plan.base_url), spec, due)
        assert row["warmup"] == (due < ctx.start_at + 1.0)
    assert ctx.finished() and ctx.done == 6 and ctx.failed == 0
    assert [r["warmup"] for r in ctx.recorder.pending] == [True, True, False, False, False, False]


def test_closed_loop_indexes_never_collide_across_workers(tmp_path):
    a = LoadContext(plan({"closed": {"users": 4}}, workers=3), 0, tmp_path / "a")
    b = LoadContext(plan({"closed": {"users": 4}}, workers=3), 2, tmp_path / "b")
    ia = [a.next_closed().index for _ in range(4)]
    ib = [b.next_closed().index for _ in range(4)]
    assert ia == [0, 3, 6, 9] and ib == [2, 5, 8, 11]
    assert users_needed(a.plan, 3) == 4 and a.pool == 4


def test_window_and_drain(tmp_path):
    ctx = LoadContext(plan({"closed": {"users": 1}}, warmup=0, duration=1), 0, tmp_path)
    assert ctx.accepting() and not ctx.finished()
    assert not ctx.accepting(ctx.window_end + 0.01)
    ctx.in_flight = 1
    assert not ctx.finished(ctx.window_end + 1) and ctx.finished(ctx.drain_end)


def test_progress_merges_raw_values_not_percentiles():
    merged = merge_progress([{"done": 3, "errors": 1, "in_flight": 2}, {"done": 4, "errors": 0, "in_flight": 1}],
                            [0.1] * 95 + [9.0] * 5)
    assert merged["done"] == 7 and merged["errors"] == 1 and merged["in_flight"] == 3
    assert merged["ttfa_p95_s"] == pytest.approx(0.1 + 0.05 * (9.0 - 0.1), rel=0.05)
