"""The child-process handle on real children: announce, ready, drain, SIGKILL after the grace, the group, early exits."""

from __future__ import annotations

import json
import sys
import time

import psutil
import pytest

from vvbench.core.errors import TargetError
from vvbench.core.proc import STDOUT, Child, announced_url

PY = sys.executable
SERVES_READYZ = """
import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/readyz" else 404)
        self.end_headers()
    def log_message(self, *args):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print("starting up", flush=True)
print(f"test-tts: listening on http://127.0.0.1:{s.server_port}/", flush=True)
s.serve_forever()
"""
IGNORES_SIGTERM = """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ignoring SIGTERM", flush=True)
time.sleep(60)
"""
# the leader drains at once on SIGTERM; its helper would note a SIGTERM (it must get SIGKILL only),
# and prints its PID (to the leader's stdout, which it shares) once its handler is in place
LEAVES_A_HELPER = """
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import os, signal, sys, time\\n"
    "signal.signal(signal.SIGTERM, lambda *a: (open(sys.argv[1], 'w').write('got SIGTERM'), sys.exit(0)))\\n"
    "print(os.getpid(), flush=True)\\n"
    "time.sleep(60)", sys.argv[1]])
time.sleep(60)
"""


def child(tmp_path, code: str, *args: str, **kw) -> Child:
    return Child([PY, "-c", code, *args], stdout=tmp_path / "out.log", stderr=tmp_path / "err.log", name="test child", **kw)


def dead(pid: int) -> bool:
    try:  # killed and reparented: gone, or a zombie waiting for a reaper that is not us
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_for(predicate, timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_announced_url_reads_every_announcer():
    assert announced_url("vvbench serve: listening on http://127.0.0.1:4100\n") == "http://127.0.0.1:4100"
    assert announced_url("INFO uvicorn listening on https://[::1]:8443/ (pid 7)") == "https://[::1]:8443"
    assert announced_url("fake-tts: listening on http://127.0.0.1:9/") == "http://127.0.0.1:9"
    assert announced_url("listening on port 8000") is None


def test_announces_its_url_is_ready_and_stops_on_sigterm(tmp_path):
    (tmp_path / "out.log").write_text("old: listening on http://127.0.0.1:1\n")  # a previous start's line, not this one's
    c = child(tmp_path, SERVES_READYZ).start()
    try:
        url = c.wait_url(30)
        assert url.startswith("http://127.0.0.1:") and url != "http://127.0.0.1:1"
        c.wait_ready(f"{url}/readyz", 30)
        assert c.running and c.poll() is None
    finally:
        code = c.stop(grace_s=10)
    assert code == -15 and c.returncode == -15 and not c.running
    assert not psutil.pid_exists(c.pid)  # reaped


def test_a_line_sink_gets_every_line_and_the_url(tmp_path):
    lines: list[str] = []
    c = Child([PY, "-c", SERVES_READYZ], stdout=lines.append, stderr=STDOUT).start()
    try:
        url = c.wait_url(30)
        c.wait_ready(f"{url}/readyz", 30)
    finally:
        c.stop(grace_s=10)
    assert lines[:2] == ["starting up\n", f"test-tts: listening on {url}/\n"]


def test_one_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path):
    c = child(tmp_path, IGNORES_SIGTERM).start()
    assert wait_for(lambda: "ignoring" in (tmp_path / "out.log").read_text())
    t0 = time.monotonic()
    code = c.stop(grace_s=1.0)
    waited = time.monotonic() - t0
    assert code == -9
    assert waited >= 1.0


def test_what_the_leader_leaves_in_its_group_dies_with_it_by_sigkill(tmp_path):
    c = child(tmp_path, LEAVES_A_HELPER, str(tmp_path / "helper-saw")).start()
    assert wait_for(lambda: (tmp_path / "out.log").read_text().strip())
    helper = int((tmp_path / "out.log").read_text())
    assert c.stop(grace_s=10) == -15  # the leader drained (here: died) on its SIGTERM
    assert wait_for(lambda: dead(helper), 10)
    assert not (tmp_path / "helper-saw").exists()  # SIGTERM went to the leader only


def test_an_early_exit_is_one_line_with_the_stderr_tail(tmp_path):
    c = child(tmp_path, "import sys; print('loading', file=sys.stderr); print('bad flag: --nope', file=sys.stderr); sys.exit(3)")
    c.start()
    with pytest.raises(TargetError) as err:
        c.wait_url(30)
    msg = str(err.value)
    assert msg == "test child exited with code 3 before announcing its URL: loading | bad flag: --nope"
    c = child(tmp_path, "raise SystemExit('config: no such preset')").start()
    with pytest.raises(TargetError, match=r"exited with code 1 before it was ready: .*no such preset") as err:
        c.wait_ready("http://127.0.0.1:9/readyz", 30)
    assert "\n" not in str(err.value) and "loading" not in str(err.value)  # this start's stderr only


def test_not_ready_in_time_says_where_and_what_it_last_answered(tmp_path):
    c = child(tmp_path, SERVES_READYZ).start()
    try:
        url = c.wait_url(30)
        with pytest.raises(TargetError, match=rf"test child not ready at {url}/nope within 0.5 s \(last answer: 404\)"):
            c.wait_ready(f"{url}/nope", 0.5)
    finally:
        c.stop(grace_s=10)


def test_poll_never_reaps_so_the_group_can_still_be_signalled(tmp_path):
    c = child(tmp_path, "import sys; sys.exit(4)").start()
    assert wait_for(lambda: c.poll() == 4)
    assert psutil.Process(c.pid).status() == psutil.STATUS_ZOMBIE  # still holds its PID, hence its group id
    c.kill()  # allowed: nothing else can have that PID yet
    assert c.reap(5) == 4 and not psutil.pid_exists(c.pid)
    c.kill()  # reaped: the PID may be someone else's now, so nothing is sent
    c.terminate()
    assert c.poll() == 4 and c.stop() == 4


def test_reap_is_bounded_and_a_program_that_is_not_there_is_an_error(tmp_path):
    c = child(tmp_path, "import time; time.sleep(60)").start()
    t0 = time.monotonic()
    assert c.reap(0.2) is None and c.running
    assert time.monotonic() - t0 < 5
    c.terminate()
    assert c.reap(10) == -15
    with pytest.raises(TargetError, match=r"cannot start '/nonexistent/tts': No such file"):
        Child(["/nonexistent/tts"], stdout=tmp_path / "o.log").start()


def test_env_adds_to_ours_and_none_removes_a_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("VV_KEEP", "kept")
    monkeypatch.setenv("VV_DROP", "dropped")
    code = "import os; print(os.environ.get('VV_KEEP'), os.environ.get('VV_DROP'), os.environ.get('VV_ADD'))"
    c = child(tmp_path, code, env={"VV_DROP": None, "VV_ADD": "added"}).start()
    assert c.reap(30) == 0
    assert (tmp_path / "out.log").read_text().split() == ["kept", "None", "added"]


# -- the tether: a child does not outlive a parent that dies without stopping it ------------------------------------
# the child: follows its tether (after `delay` s, as a program still importing would), notes the SIGTERM it gets
FOLLOWS_THE_TETHER = """
import os, signal, sys, time
time.sleep(float(sys.argv[2]))
signal.signal(signal.SIGTERM, lambda *a: (open(sys.argv[1], 'w').write('drained'), sys.exit(0)))
from vvbench.core.proc import TETHER_ENV, follow_tether
print("tethered" if follow_tether() else "untethered", os.environ.get(TETHER_ENV), flush=True)
time.sleep(60)
"""
# the parent: starts that child through Child, says its PID, then waits to be killed (or exits at once: `now`)
STARTS_A_CHILD = """
import os, sys, time
from vvbench.core.proc import Child
c = Child([sys.executable, "-c", sys.argv[1], sys.argv[2], sys.argv[3]], stdout=sys.argv[4], name="tethered").start()
print(c.pid, flush=True)
if sys.argv[5] == "now":
    os._exit(0)  # no stop, no cleanup: as SIGKILL would
time.sleep(60)
"""


def _parent(tmp_path, delay: float, when: str) -> tuple[Child, int]:
    parent = Child([PY, "-c", STARTS_A_CHILD, FOLLOWS_THE_TETHER, str(tmp_path / "drained"), str(delay),
                    str(tmp_path / "child.log"), when], stdout=tmp_path / "parent.log", stderr=STDOUT, name="parent").start()
    assert wait_for(lambda: (tmp_path / "parent.log").read_text().strip().isdigit())
    return parent, int((tmp_path / "parent.log").read_text())


def test_a_child_whose_parent_is_sigkilled_drains_by_sigterm(tmp_path):
    parent, pid = _parent(tmp_path, 0.0, "wait")
    assert wait_for(lambda: (tmp_path / "child.log").exists() and "tethered" in (tmp_path / "child.log").read_text())
    assert (tmp_path / "child.log").read_text().split() == ["tethered", "None"]  # not passed on to its own children
    time.sleep(0.3)
    assert not dead(pid)  # the parent lives: the child runs on
    parent.kill()
    assert parent.reap(10) == -9
    assert wait_for(lambda: dead(pid), 10)
    assert (tmp_path / "drained").read_text() == "drained"  # SIGTERM: its own drain, not a kill


def test_a_parent_that_died_before_the_child_followed_its_tether_is_still_noticed(tmp_path):
    parent, pid = _parent(tmp_path, 1.0, "now")
    assert parent.reap(10) == 0 and not dead(pid)  # the parent is gone while the child is still "importing"
    assert wait_for(lambda: dead(pid), 10)
    assert (tmp_path / "drained").read_text() == "drained"


def test_a_stopped_child_leaves_no_descriptor_behind_and_untethered_programs_are_told_so(tmp_path, monkeypatch):
    import os

    from vvbench.core.proc import TETHER_ENV, follow_tether

    before = len(os.listdir("/proc/self/fd"))
    for _ in range(3):
        c = child(tmp_path, "import time; time.sleep(60)").start()
        c.stop(5)
        child(tmp_path, "import sys; sys.exit(3)").start().reap(10)
    assert len(os.listdir("/proc/self/fd")) == before
    monkeypatch.delenv(TETHER_ENV, raising=False)
    assert follow_tether() is False
    monkeypatch.setenv(TETHER_ENV, "987")  # inherited without its descriptor (a grandchild of a program that closes fds)
    assert follow_tether() is False and TETHER_ENV not in os.environ
    with open(tmp_path / "plain", "w") as f:  # a descriptor, but not a pipe
        monkeypatch.setenv(TETHER_ENV, str(f.fileno()))
        assert follow_tether() is False


def test_an_untethered_child_gets_neither_the_descriptor_nor_a_variable_of_ours(tmp_path, monkeypatch):
    from vvbench.core.proc import TETHER_ENV

    monkeypatch.setenv(TETHER_ENV, "5")  # ours, from our own parent: never handed on
    code = "import os, sys; print(os.environ.get(sys.argv[1]), sorted(int(f) for f in os.listdir('/proc/self/fd')))"
    for tether, expect_fd in ((False, False), (True, True)):
        log = tmp_path / f"{tether}.log"
        c = Child([PY, "-c", code, TETHER_ENV], stdout=log, tether=tether).start()
        assert c.reap(30) == 0
        value, fds = log.read_text().split(" ", 1)
        assert (value != "None") is expect_fd and (value != "5")
        if expect_fd:
            assert int(value) in json.loads(fds)
