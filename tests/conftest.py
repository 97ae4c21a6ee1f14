"""Shared test set-up: the MKL pin, and the service in process around a real `tiny` engine.

`vvbench.runtime` is imported first: it sets MKL_CBWR before the first matmul of the test
process (see that package). `tiny_engine` is one real engine for the session; `app_http` is a
FastAPI TestClient on an app built around it (`create_app(..., engine=...)`): service-level tests
that need no real process (request validation, response shapes, jobs' HTTP surface) use it
instead of spawning a server. Tests of signals, crashes, restarts and real sockets keep starting
`vvbench serve` processes (tests/integration).
"""

from __future__ import annotations

import contextlib
import time

import pytest

import vvbench.runtime  # noqa: F401  (sets MKL_CBWR before the first matmul of the test process)

TINY = {"preset": "tiny", "max_batch": 4, "batch_window_ms": 20.0}


@pytest.fixture(scope="session")
def tiny_engine():
    from vvbench.runtime.config import RuntimeConfig
    from vvbench.runtime.engine import Engine

    engine = Engine(RuntimeConfig(**TINY))
    yield engine
    engine.close()


@contextlib.contextmanager
def in_process_service(engine, data_dir, **settings):
    """A ready TestClient on `create_app(engine=engine)` with these `ServiceSettings` fields."""
    from fastapi.testclient import TestClient

    from vvbench.server.app import create_app
    from vvbench.server.settings import ServiceSettings

    app = create_app(engine.config, settings=ServiceSettings(data_dir=data_dir, **settings), engine=engine)
    with TestClient(app, raise_server_exceptions=False) as client:
        deadline = time.monotonic() + 120
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "the in-process service never became ready"
            time.sleep(0.05)
        yield client


@pytest.fixture(scope="module")
def service_factory(tiny_engine, tmp_path_factory):
    """`service_factory(**settings)` -> a ready in-process TestClient, closed when the module ends."""
    with contextlib.ExitStack() as stack:
        yield lambda **settings: stack.enter_context(
            in_process_service(tiny_engine, tmp_path_factory.mktemp("app-data"), **settings))


@pytest.fixture(scope="module")
def app_http(service_factory):
    """A TestClient on the service app around the session's engine, default settings (module scope)."""
    return service_factory()
