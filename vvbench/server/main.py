"""Run the service with uvicorn on a socket we bind ourselves.

Binding first means `--port 0` gets a free port whose number is known before the app starts,
so the caller can announce it (`vvbench serve: listening on http://127.0.0.1:PORT`, one line on
stdout, flushed) for tests, the load targets and supervisors to parse.

Signals: SIGTERM and SIGINT start a graceful shutdown — the service stops admitting (new
requests 503, `/readyz` 503), uvicorn stops accepting connections and gives in-flight requests
`drain_timeout_s` to finish, then the job runner leaves unfinished jobs queued (their chunks are
already on disk) and the engine stops. The process then exits 0: uvicorn's own handler would
re-raise the signal after shutting down, turning a clean drain into exit status 143.

HTTP limits (see `protocol.py` for which are uvicorn's and h11's own): the h11 protocol with
`h11_max_incomplete_event_size = max_header_bytes` and a deadline for each request head
(`header_timeout_s`); the body deadline, the head-size check of complete heads and the refusal
of requests with both Transfer-Encoding and Content-Length are in the service middleware.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Callable

import uvicorn

from vvbench.core.errors import ConfigError
from vvbench.runtime.config import RuntimeConfig
from vvbench.server.app import create_app
from vvbench.server.protocol import head_deadline_protocol
from vvbench.server.settings import ServiceSettings, check_exposure

log = logging.getLogger("vvbench.server")


class _Server(uvicorn.Server):
    """uvicorn.Server that drains on SIGTERM/SIGINT and exits normally afterwards."""

    def __init__(self, config: uvicorn.Config, on_signal: Callable[[], None]):
        super().__init__(config)
        self._on_signal = on_signal

    @contextlib.contextmanager
    def capture_signals(self):
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig, frame) -> None:
        log.info("received %s: draining", signal.Signals(sig).name)
        self._on_signal()
        super().handle_exit(sig, frame)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: a free port), IPv4 or IPv6."""
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    """`http://host:port` of a bound socket (IPv6 hosts in brackets)."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(config: RuntimeConfig, settings: ServiceSettings, *, host: str = "127.0.0.1", port: int = 0,
          on_listening: Callable[[str], None] | None = None, access_log: bool = False) -> None:
    """Bind, announce the URL through `on_listening`, serve until SIGTERM/SIGINT (see module docstring)."""
    check_exposure(settings, config.faults.any_set(), host)
    app = create_app(config, settings=settings)
    sock = bind(host, port)
    url = url_of(sock)
    uv_config = uvicorn.Config(app, log_config=None, access_log=access_log, lifespan="on",
                               timeout_graceful_shutdown=settings.drain_timeout_s,
                               http=head_deadline_protocol(settings.header_timeout_s),
                               h11_max_incomplete_event_size=settings.max_header_bytes)
    server = _Server(uv_config, on_signal=app.state.service.begin_drain)
    log.info("listening on %s (preset %s, data dir %s)", url, config.preset, settings.data_dir)
    if on_listening is not None:
        on_listening(url)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
