"""The Target contract, run against every kind of target, and the ways a start must fail.

`embedded` starts a real `vvbench serve --preset tiny`; `http` and `command` use the scripted fake
server (`vvbench.load.fakeserver`), the latter started through an argv template with `{port}`.
"""

import json
import sys

import psutil
import pytest
from fakekit import FakeTTS

from vvbench.core.errors import ConfigError, TargetError
from vvbench.harness.targets import CommandTarget, EmbeddedTarget, HttpTarget
from vvbench.load import client
from vvbench.load.mix import RequestSpec
from vvbench.runtime.config import RuntimeConfig

FAKE_ARGV = [sys.executable, "-m", "vvbench.load.fakeserver", "--port", "{port}", "--chars-per-s", "{max_batch}"]
SPEC = RequestSpec(index=0, cls="c", api="speech", text="Contract check.", voice="alloy", seed=1,
                   response_format="wav", stream_format="audio", speed=1.0, timeout_s=60, poll_s=0.5)


@pytest.fixture(scope="module")
def fake():
    with FakeTTS() as f:
        yield f


def build(kind, fake, tmp_path):
    if kind == "embedded":
        return EmbeddedTarget(RuntimeConfig(preset="tiny", max_batch=1, threads=1), tmp_path / "target")
    if kind == "http":
        return HttpTarget(fake.url, api_key="sekrit", pid=fake.pid)
    return CommandTarget(FAKE_ARGV, "http://127.0.0.1:{port}/readyz", "http://127.0.0.1:{port}",
                         RuntimeConfig(max_batch=12), tmp_path / "target")


@pytest.mark.parametrize("kind", ["embedded", "http", "command"])
def test_target_contract(kind, fake, tmp_path):
    target = build(kind, fake, tmp_path)
    target.stop()  # safe before start
    with target:
        url = target.url
        assert url.startswith("http://127.0.0.1:")
        assert target.alive()
        assert target.pid is not None and psutil.pid_exists(target.pid)
        out = client.speech(client.Session(url, target.api_key), SPEC)
        assert out.status == "ok", out.error
        assert out.stream.audio_s > 0 and out.ttfb_s <= out.ttfa_s <= out.e2e_s
        facts = target.describe()
        assert facts["kind"] == kind and facts["url"] == url
        assert "sekrit" not in json.dumps(facts)
        if kind == "embedded":  # a key of its own, drawn per target, never in the facts
            assert target.api_key and target.api_key not in json.dumps(facts)
        pid = target.pid
    target.stop()  # idempotent
    if kind == "http":
        assert fake.running and target.alive()  # not ours: never stopped
    else:
        assert not target.alive() and not psutil.pid_exists(pid)


def test_command_fills_knob_placeholders(tmp_path):
    t = CommandTarget(FAKE_ARGV + ["--rtf", "{faults.noise_db}"], "http://127.0.0.1:{port}/readyz", "http://127.0.0.1:{port}",
                      RuntimeConfig(max_batch=12), tmp_path)
    assert t.argv[-5:] == [str(t.port), "--chars-per-s", "12", "--rtf", "null"]
    with pytest.raises(ConfigError, match=r"unknown placeholder \{max_batches\}.*max_batch"):
        CommandTarget(["x", "{max_batches}"], "http://x", "http://x", RuntimeConfig(), tmp_path)


def test_unreachable_http_target_is_one_line_error():
    with pytest.raises(TargetError, match=r"target http://127.0.0.1:9 is unreachable: .*refused"):
        HttpTarget("http://127.0.0.1:9").start()


def test_command_that_exits_at_once_is_an_error_and_leaves_nothing(tmp_path):
    t = CommandTarget([sys.executable, "-c", "import sys; print('bad flag', file=sys.stderr); sys.exit(3)"],
                      "http://127.0.0.1:{port}/readyz", "http://127.0.0.1:{port}", RuntimeConfig(), tmp_path)
    with pytest.raises(TargetError, match="exited with code 3.*bad flag"), t:
        pass
    assert not t.alive()


def test_command_never_ready_is_stopped_by_pid(tmp_path):
    t = CommandTarget([sys.executable, "-c", "import time; time.sleep(60)"], "http://127.0.0.1:{port}/readyz",
                      "http://127.0.0.1:{port}", RuntimeConfig(), tmp_path, ready_timeout_s=1.0)
    with pytest.raises(TargetError, match="not ready"), t:
        pass
    assert t.exit_code() is not None


def test_command_that_is_not_a_program(tmp_path):
    t = CommandTarget(["/nonexistent/tts-server"], "http://x/readyz", "http://x", RuntimeConfig(), tmp_path)
    with pytest.raises(TargetError, match="cannot start"):
        t.start()


def test_embedded_that_refuses_its_flags_reports_its_stderr(tmp_path):
    t = EmbeddedTarget(RuntimeConfig(preset="tiny"), tmp_path, serve_args=["--memory-guard", "lots"])
    with pytest.raises(TargetError, match="exited with code 2.*memory_guard"), t:
        pass
    assert (tmp_path / "stderr.log").exists()


# a `vvbench tune` or `vvbench run` as a power cut leaves it: its embedded service started, then SIGKILL
OWNS_A_SERVICE = """
import sys, time
from pathlib import Path
from vvbench.harness.targets import EmbeddedTarget
from vvbench.runtime.config import RuntimeConfig
target = EmbeddedTarget(RuntimeConfig(preset="tiny", max_batch=1, threads=1), Path(sys.argv[1]))
target.start()
print(target.pid, flush=True)
time.sleep(120)
"""


def test_an_embedded_service_does_not_outlive_the_vvbench_process_that_was_killed_without_stopping_it(tmp_path):
    import signal
    import subprocess

    owner = subprocess.Popen([sys.executable, "-c", OWNS_A_SERVICE, str(tmp_path / "target")], stdout=subprocess.PIPE,
                             text=True, start_new_session=True)
    try:
        service = psutil.Process(int(owner.stdout.readline()))
        assert service.ppid() == owner.pid and service.is_running()
        owner.send_signal(signal.SIGKILL)  # its process group is its own, the service's is another: only the tether reaches it
        owner.wait(10)
        service.wait(15)  # it drains as on any SIGTERM: idle, it exits at once
    finally:
        if owner.poll() is None:
            owner.kill()
    log = (tmp_path / "target" / "stderr.log").read_text()
    assert f"the vvbench process that started this one (PID {owner.pid}) is gone: stopping" in log, log[-2000:]
