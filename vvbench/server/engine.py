"""What the service needs of an engine: a small protocol that `vvbench.runtime.engine.Engine` satisfies.

`create_app(config, engine=...)` takes any object of this shape, so service tests can run the
real `tiny` engine in the test process behind FastAPI's TestClient, and keep process-level tests
for what only a real process shows (signals, crashes, restarts). The contract:

- `submit(request)` returns a handle at once (the engine's own thread does the work) or raises
  `CapacityError` when its queue is full; `reconfigure(patch)` applies hot knobs and returns the
  new config (`ConfigError` for a bad value); `stats()` is cheap and JSON-able (the shape of
  `vvbench.artifacts.stats.ServiceStats`); `count_tokens(text)` is the `usage` of a response;
  `check_fits(text, n_frames, background=...)` raises `InputError` for work its memory budget
  could never hold (the jobs route asks before it stores a job).
- `alive` is False once the engine thread stopped, with `failure` saying why when it failed.
- `warmup()` blocks until one short request is done; `close()` stops the engine. An engine
  given to `create_app` is owned by the caller: the app warms it up but never closes it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from vvbench.runtime.config import RuntimeConfig
    from vvbench.runtime.request import RequestHandle, SynthesisRequest


@runtime_checkable
class SpeechEngine(Protocol):
    """The engine seen from the service (see the module docstring)."""

    config: RuntimeConfig

    @property
    def device(self) -> object: ...

    @property
    def alive(self) -> bool: ...

    @property
    def failure(self) -> str | None: ...

    def submit(self, request: SynthesisRequest) -> RequestHandle: ...

    def reconfigure(self, patch: dict) -> RuntimeConfig: ...

    def stats(self) -> dict: ...

    def count_tokens(self, text: str) -> int: ...

    def check_fits(self, text: str, n_frames: int, *, background: bool) -> int: ...

    def warmup(self) -> None: ...

    def close(self) -> None: ...
