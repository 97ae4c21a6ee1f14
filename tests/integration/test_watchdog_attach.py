"""Attach mode: the watchdog watches a service it did not start, alerts, and never signals it."""

from __future__ import annotations

import sys
import time

import psutil

from tests.integration.serverkit import Server, serve_cmd
from tests.integration.watchkit import Watch, free_port
from vvbench.monitor.watch.process import listener_pid


def test_attached_service_is_alerted_on_never_signalled_and_its_exit_ends_the_watch(tmp_path):
    child = Server(tmp_path / "serve-log", tmp_path / "data").serve(timeout_s=150)
    w = Watch(tmp_path / "watch", ["--pid", str(child.pid), "--url", child.url, "--rss-max", "1MB", "--consecutive", "2",
                                   "--canary-every", "0", "--probe-every", "0.5s", "--run-for", "90s"])
    try:
        w.start()
        attach = w.wait_event("attach", 30)
        assert attach["pid"] == child.pid
        w.wait_event("ready", 30)
        needed = w.wait_event("restart_needed", 30)
        assert needed["reason"] == "memory" and "did not start" in needed["message"]
        time.sleep(2.0)
        assert len(w.of("restart_needed")) == 1  # once per reason while the condition holds
        assert child.poll() is None  # alerted, never signalled
        child.kill()
        child.reap(10)
        rc = w.wait(30)
    finally:
        w.stop()
        child.stop()
    assert rc == 1
    gave_up = w.of("gave_up")
    assert len(gave_up) == 1 and "--restart-cmd" in gave_up[0]["message"]
    assert w.of("restart") == [] and w.of("drain") == []


def test_attach_mode_restart_command_brings_the_service_back_and_is_followed(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    data = tmp_path / "data"
    starter = tmp_path / "restart_tts.py"  # what `systemctl restart tts` does here: start a new server, return
    starter.write_text(
        "import subprocess, sys\n"
        f"subprocess.Popen({[*serve_cmd(data, port=port)]!r}, start_new_session=True, stdin=subprocess.DEVNULL,\n"
        f"                 stdout=subprocess.DEVNULL, stderr=open({str(tmp_path / 'restarted.log')!r}, 'ab'))\n")
    child = Server(tmp_path / "serve-log", data, port=port).serve(timeout_s=150)
    w = Watch(tmp_path / "watch", ["--pid", str(child.pid), "--url", url, "--restart-cmd", f"{sys.executable} {starter}",
                                   "--canary-every", "0", "--probe-every", "0.5s", "--backoff", "0.2s", "--run-for", "120s"])
    new_pid = None
    try:
        w.start()
        w.wait_event("ready", 30)
        child.kill()
        child.reap(10)
        restart = w.wait_event("restart", 30)
        assert restart["reason"] == "exit"
        w.wait_event("restart_command", 30)
        again = w.wait_event("ready", 150, count=2)
        new_pid = again["pid"]
        assert new_pid not in (None, child.pid)
        assert psutil.Process(new_pid).cmdline()[-1] == str(data)  # the server the command started, found on its port
        assert w.of("pid_unknown") == []
    finally:
        rc = w.stop()
        child.stop()
        survivor = listener_pid(port)  # the restarted server, whether or not the test got as far as its PID
        if survivor is not None and str(data) in psutil.Process(survivor).cmdline():
            psutil.Process(survivor).terminate()
            psutil.Process(survivor).wait(60)
    assert rc == 0
    assert survivor == new_pid  # stopping the watchdog never touches a service it did not start
