"""Real `vvbench serve` processes on loopback for the service tests, stopped by PID.

`serve_factory` starts a server with the given flags (a `serverkit.Server`: port 0, parsed from
its output, then /readyz) and stops it by PID when the test scope ends. `server` is the shared
default one: `tiny` preset, 4 slots, a 20 ms batch window, its own data directory, and `/admin`
opened without a key (`--open-admin`, loopback).
"""

from __future__ import annotations

import httpx
import pytest
from serverkit import Server


class Servers:
    """Starts servers and remembers them for the finalizer."""

    def __init__(self, tmp_path_factory):
        self.tmp = tmp_path_factory
        self.children: list[Server] = []

    def start(self, *flags: str, data_dir=None, env=None, name="server") -> Server:
        child = Server(self.tmp.mktemp(f"{name}-log"), data_dir or self.tmp.mktemp(f"{name}-data"), *flags, env=env)
        self.children.append(child)
        return child.serve(timeout_s=180)

    def stop_all(self) -> None:
        for child in self.children:
            child.stop(grace_s=30)


@pytest.fixture(scope="module")
def serve_factory(tmp_path_factory):
    servers = Servers(tmp_path_factory)
    yield servers
    servers.stop_all()


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    servers = Servers(tmp_path_factory)
    child = servers.start("--max-batch", "4", "--batch-window-ms", "20", "--open-admin", name="default")
    yield child
    servers.stop_all()


@pytest.fixture
def http(server):
    with httpx.Client(base_url=server.url, timeout=120) as client:
        yield client
