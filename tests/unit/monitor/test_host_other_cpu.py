"""HostOtherCpuSampler: CPU the host spends on processes that are not the run's.

A busy process outside our process tree (double-forked, so init adopts it) must show up as other
work, at least as much CPU as it used; a busy child of ours must not be counted as other work.
The machine may be busy with anything else as well, so each check is against CPU times read
from psutil over the same interval, not against zero.
"""

from __future__ import annotations

import subprocess
import sys
import time

import psutil

from vvbench.monitor.samplers import HostOtherCpuSampler

BUSY = "import time\nt = time.time()\nwhile time.time() - t < {s}: pass\n"


def _cpu(proc: psutil.Process) -> float:
    c = proc.cpu_times()
    return c.user + c.system


def test_a_foreign_busy_process_is_other_work(tmp_path):
    pidfile = tmp_path / "pid"
    # the shell exits at once; its background child is re-parented and is no descendant of ours
    subprocess.run(["sh", "-c", f'{sys.executable} -c "{BUSY.format(s=3)}" & echo $! > {pidfile}'], check=True)
    foreign = psutil.Process(int(pidfile.read_text()))
    assert foreign.pid not in {p.pid for p in psutil.Process().children(recursive=True)}
    sampler = HostOtherCpuSampler([])
    before, t0 = _cpu(foreign), time.monotonic()
    sampler.sample()
    time.sleep(1.5)
    other = sampler.sample()["host_other_cpu"]
    used, dt = _cpu(foreign) - before, time.monotonic() - t0
    foreign.kill()
    assert used > 0.3  # it did run
    assert other * dt >= 0.8 * used, (other, dt, used)


def test_our_own_busy_child_is_not_other_work():
    child = subprocess.Popen([sys.executable, "-c", BUSY.format(s=3)])
    try:
        time.sleep(0.3)
        sampler = HostOtherCpuSampler([])
        proc = psutil.Process(child.pid)
        before, busy0 = _cpu(proc), sum(psutil.cpu_times()) - psutil.cpu_times().idle
        sampler.sample()
        time.sleep(1.5)
        other = sampler.sample()["host_other_cpu"]
        used = _cpu(proc) - before
        assert used > 0.3
        assert child.pid in sampler._ours()
        # everything the host did minus the child: an upper bound on what may be called other work
        busy = sum(psutil.cpu_times()) - psutil.cpu_times().idle - busy0
        assert other * 1.5 <= busy - 0.8 * used + 0.2, (other, busy, used)
    finally:
        child.kill()
        child.wait()


def test_the_first_reading_is_a_number_and_never_negative():
    sampler = HostOtherCpuSampler([None])
    time.sleep(0.05)
    value = sampler.sample()["host_other_cpu"]
    assert value is not None and value >= 0
