"""The tuner's Server: hot changes on the warm service by default, a fresh service per trial with restart_each."""

from __future__ import annotations

from vvbench.harness.targets import Reconfigured
from vvbench.runtime.config import RuntimeConfig
from vvbench.tuner.trials import Server


class _Target:
    """A started service that records what was asked of it (reconfigure answers `hot`)."""

    def __init__(self, log: list):
        self.log, self.up = log, False

    def start(self):
        self.up = True
        self.log.append("start")

    def stop(self):
        self.up = False
        self.log.append("stop")

    def alive(self):
        return self.up

    def reconfigure(self, knobs):
        self.log.append("reconfigure")
        return Reconfigured("hot", ("batch_window_ms",), dict(knobs), 0.0)


class _Spec:
    def __init__(self):
        self.log, self.built = [], 0

    def build(self, config, folder):
        self.built += 1
        return _Target(self.log)


def _configs():
    return [RuntimeConfig(preset="tiny", batch_window_ms=w) for w in (0, 5, 10)]


def test_hot_knobs_change_on_the_warm_service(tmp_path):
    spec = _Spec()
    server = Server(spec, tmp_path)
    hows = [server.apply(c)[0] for c in _configs()]
    assert hows == ["start", "hot", "hot"]
    assert spec.built == 1 and server.starts == 1


def test_restart_each_starts_a_fresh_service_for_every_config(tmp_path):
    spec = _Spec()
    server = Server(spec, tmp_path, restart_each=True)
    hows = [server.apply(c)[0] for c in _configs()]
    assert hows == ["start", "restart", "restart"]
    assert spec.built == 3 and server.starts == 3
    assert "reconfigure" not in spec.log
    assert spec.log == ["start", "stop", "start", "stop", "start"]
    server.close()
    assert spec.log[-1] == "stop"
