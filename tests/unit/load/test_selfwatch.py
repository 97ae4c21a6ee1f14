"""The worker's self-watch, without gevent: a ticker on a thread whose loop the test blocks."""

from __future__ import annotations

import math
import threading
import time

import pytest

from vvbench.load import selfwatch


def test_a_blocked_loop_shows_as_one_late_tick():
    watch = selfwatch.LoopWatch("w0", tick_s=0.01)
    block = threading.Event()

    def sleep(s):  # the "loop": its sleep is where a slow task would hold it
        time.sleep(s)
        if block.is_set():
            block.clear()
            selfwatch.block_loop(0.3)

    thread = threading.Thread(target=watch.run, args=(sleep,))
    thread.start()
    time.sleep(0.15)
    block.set()
    time.sleep(0.5)
    watch.stop()
    thread.join(2)
    rows = watch.take()
    lags = [r["lag_s"] for r in rows]
    assert max(lags) > 0.25 and sum(lag > 0.1 for lag in lags) == 1
    late = rows[lags.index(max(lags))]
    # the blocked tick either ran (CPU time) or waited for a CPU (run delay; the machine is shared)
    assert late["cpu_s"] > 0.02
    if not math.isnan(late["run_delay_s"]):
        assert late["cpu_s"] + late["run_delay_s"] > 0.25
    assert all(r["worker"] == "w0" and r["tick_s"] == 0.01 for r in rows) and watch.take() == []


def test_run_delay_is_read_where_the_kernel_gives_it():
    value = selfwatch.run_delay_s()
    assert math.isnan(value) or value >= 0


def test_the_stall_hook_is_parsed_or_named():
    assert selfwatch.injected_stall({}) is None
    assert selfwatch.injected_stall({selfwatch.STALL_ENV: "2:0.5"}) == (2.0, 0.5)
    with pytest.raises(ValueError, match=selfwatch.STALL_ENV):
        selfwatch.injected_stall({selfwatch.STALL_ENV: "soon"})
