"""Real `vvbench serve` processes on loopback for the service tests, stopped by PID.

`serve_factory` starts a server with the given flags (port 0, parsed from its output, then
/readyz) and stops it by PID when the test scope ends. `server` is the shared default one:
`tiny` preset, 4 slots, a 20 ms batch window, its own data directory.
"""

from __future__ import annotations

import httpx
import pytest

from vvbench.server.child import ServerChild

TINY = ["--preset", "tiny", "--threads", "1"]


class Servers:
    """Starts servers and remembers them for the finalizer."""

    def __init__(self, tmp_path_factory):
        self.tmp = tmp_path_factory
        self.children: list[ServerChild] = []

    def start(self, *flags: str, data_dir=None, env=None, name="server") -> ServerChild:
        data_dir = data_dir or self.tmp.mktemp(f"{name}-data")
        child = ServerChild([*TINY, "--data-dir", str(data_dir), *flags], env=env, log_dir=self.tmp.mktemp(f"{name}-log"))
        self.children.append(child)
        child.start(timeout_s=180)
        child.data_dir = data_dir
        return child

    def stop_all(self) -> None:
        for child in self.children:
            child.stop(timeout_s=30)


@pytest.fixture(scope="module")
def serve_factory(tmp_path_factory):
    servers = Servers(tmp_path_factory)
    yield servers
    servers.stop_all()


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    servers = Servers(tmp_path_factory)
    child = servers.start("--max-batch", "4", "--batch-window-ms", "20", name="default")
    yield child
    servers.stop_all()


@pytest.fixture
def http(server):
    with httpx.Client(base_url=server.url, timeout=120) as client:
        yield client
