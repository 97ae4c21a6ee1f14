"""Targets: how a benchmark run reaches a service — `embedded`, `http` or `command`.

The `Target` contract (every kind passes `tests/integration/test_target_contract.py`):

- `start()` returns the base URL of a service that answers `/v1/audio/speech`, or raises
  `TargetError` with one line; a failed start leaves nothing running.
- `stop()` stops exactly what `start()` started, by PID (a SIGTERM, a grace period, then
  SIGKILL), never by name; it is idempotent and safe after a failed start. An `http` target
  started nothing and stops nothing.
- `alive()` says whether the service can still be used: for a child, whether its process runs;
  for `http`, whether it answers on the network at all (any HTTP status counts).
- `pid` is the service's process id when known (for sampling), else None.
- `describe()` gives JSON-able facts for run.json (never the API key).
- `with target:` starts and always stops, also on Ctrl-C (KeyboardInterrupt) and exceptions.
- `reconfigure(knobs)` changes runtime knobs of a started target and says how (`Reconfigured`):
  knobs equal to the running config change nothing; hot knobs go through `POST /admin/config`
  on the warm service; any restart-only knob (offload, max_batch, batch_invariant, ...) stops the
  service and starts it again with the merged config (embedded, command). An `http` target
  cannot restart what it did not start: restart-only knobs are a `TargetError` there. A value
  the config model refuses is a `ConfigError` before anything is sent.

The kinds are pydantic specs with a `kind` tag (`TargetSpec`, the registry); each spec's
`build()` makes its Target. Choices: `embedded` writes the RuntimeConfig to a temp YAML and
runs `vvbench serve --port 0 --config FILE --data-dir TMP` (jobs go to a temp directory removed
afterwards), its stdout/stderr kept in the run directory, with an API key drawn for the target
when none is given (`/admin/config` needs one; `api_key` is what the load, the samplers and
`reconfigure` send) and `--allow-faults` only when the spec says so; `command` fills `{knob}` placeholders
(every RuntimeConfig knob, faults as `{faults.noise_db}`, plus `{port}` — a free loopback port —
and `{host}`) and polls a readiness URL for 200. Both run as a `vvbench.core.proc.Child`: no
shell, their own session, SIGTERM to the PID and SIGKILL to its process group (so what the
service started dies with it), and a start that fails stops what it started before raising.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from vvbench.core.errors import ConfigError, TargetError
from vvbench.core.net import free_port, probe
from vvbench.core.proc import Child

READY_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class Reconfigured:
    """What `Target.reconfigure` did: `how` is unchanged, hot or restart; `config` is the running config after."""

    how: Literal["unchanged", "hot", "restart"]
    changed: tuple[str, ...]
    config: dict
    seconds: float


class Target(ABC):
    """How a run reaches a service (see the module docstring for the contract)."""

    kind: str = "?"
    api_key: str | None = None

    def __init__(self) -> None:
        self.url: str | None = None

    @abstractmethod
    def start(self) -> str: ...

    @abstractmethod
    def stop(self) -> None: ...

    @abstractmethod
    def alive(self) -> bool: ...

    @property
    def pid(self) -> int | None:
        return None

    def describe(self) -> dict:
        return {"kind": self.kind, "url": self.url, "pid": self.pid}

    def runtime_config(self) -> dict | None:
        """The service's resolved RuntimeConfig when known (from the spec, else `/v1/stats`)."""
        if self.url is None:
            return None
        req = urllib.request.Request(f"{self.url}/v1/stats", headers=self._auth())
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                config = json.load(r).get("config")
            return config if isinstance(config, dict) else None
        except (OSError, ValueError, AttributeError):
            return None

    def reconfigure(self, knobs: Mapping[str, Any]) -> Reconfigured:
        """Apply runtime knobs to the started service (see the module docstring)."""
        from vvbench.runtime.config import HOT_KNOBS, merge, validate_config

        t0 = time.monotonic()
        current = self.runtime_config()
        if self.url is None or current is None:
            raise TargetError(f"{self.kind} target: reconfigure needs a started service whose config is known")
        new = validate_config(merge(current, dict(knobs)), "reconfigure").model_dump(mode="json")
        changed = tuple(sorted(k for k in new if new[k] != current.get(k)))
        if not changed:
            return Reconfigured("unchanged", (), current, time.monotonic() - t0)
        cold = [k for k in changed if k not in HOT_KNOBS]
        if cold:
            self.restart_with(new, cold)
            return Reconfigured("restart", changed, new, time.monotonic() - t0)
        self._post_config({k: new[k] for k in changed})
        self.config_changed(new)
        return Reconfigured("hot", changed, new, time.monotonic() - t0)

    def restart_with(self, config: dict, cold: list[str]) -> None:
        """Restart the service with `config` (targets that start their service override this)."""
        raise TargetError(f"{self.kind} target cannot restart the service; {', '.join(cold)} need a restart")

    def config_changed(self, config: dict) -> None:  # noqa: B027 - a default no-op: http targets keep no config
        """Hot knobs were applied: targets that keep a config keep it in step."""

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def check_reconfigurable(self) -> None:
        """TargetError (one line) unless the started service takes hot knobs: an empty `POST /admin/config`."""
        try:
            self._post_config({})
        except TargetError as exc:
            raise TargetError(f"{self.url} takes no knobs through /admin/config: {str(exc).split(': ', 1)[-1]}") from None

    def _post_config(self, patch: dict) -> None:
        headers = {"Content-Type": "application/json", **self._auth()}
        req = urllib.request.Request(f"{self.url}/admin/config", data=json.dumps(patch).encode(), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                resp.read()
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read()).get("error", {}).get("message")
            except (ValueError, AttributeError):
                message = None
            raise TargetError(f"{self.kind} target refused the new config (HTTP {exc.code}): {message or exc.reason}") from None
        except OSError as exc:
            raise TargetError(f"{self.kind} target: POST /admin/config failed: {exc}") from None

    def __enter__(self) -> Target:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class ChildTarget(Target):
    """A service process we started (a `Child`), its stdout and stderr in `log_dir`."""

    def __init__(self, log_dir: Path):
        super().__init__()
        self.log_dir = Path(log_dir)
        self.child: Child | None = None

    @property
    def pid(self) -> int | None:
        return self.child.pid if self.child is not None else None

    def alive(self) -> bool:
        return self.child is not None and self.child.running

    def exit_code(self) -> int | None:
        return self.child.poll() if self.child is not None else None

    def start(self) -> str:
        try:
            self.url = self.launch()
        except BaseException:
            self.stop()  # a failed start leaves nothing running
            raise
        return self.url

    @abstractmethod
    def launch(self) -> str:
        """Start the child and wait until it is ready; returns the base URL."""

    def spawn(self, argv: list[str], env: dict | None = None) -> Child:
        self.child = Child(argv, env=env, stdout=self.log_dir / "stdout.log", stderr=self.log_dir / "stderr.log",
                           name=f"{self.kind} target")
        return self.child.start()

    def stop(self, grace_s: float = 30.0) -> None:
        if self.child is not None:
            self.child.stop(grace_s)


    def config_changed(self, config: dict) -> None:
        """Keep the config this target starts its service with in step (hot knobs, or before a restart)."""
        from vvbench.runtime.config import validate_config

        self.config = validate_config(config)

    def restart_with(self, config: dict, cold: list[str]) -> None:
        """Stop the service and start it again on the new config (embedded: a new port and data directory)."""
        self.config_changed(config)
        self.stop()
        self.url = None
        self.start()


class EmbeddedTarget(ChildTarget):
    """`vvbench serve` with a given RuntimeConfig, as a child on a free loopback port."""

    kind = "embedded"

    def __init__(self, config, log_dir: Path, serve_args: list[str] | None = None, api_key: str | None = None,
                 ready_timeout_s: float = READY_TIMEOUT_S, allow_faults: bool = False):
        super().__init__(log_dir)
        self.config = config
        self.serve_args = list(serve_args or []) + (["--allow-faults"] if allow_faults else [])
        self.api_key = api_key or secrets.token_urlsafe(24)  # per target: admin is never open
        self.ready_timeout_s = ready_timeout_s
        self._tmp: str | None = None

    def launch(self) -> str:
        import sys

        from vvbench.runtime.config import dump_config

        self._tmp = tempfile.mkdtemp(prefix="vvbench-embedded-")
        cfg = Path(self._tmp) / "runtime.yaml"
        cfg.write_text(dump_config(self.config))
        child = self.spawn([sys.executable, "-m", "vvbench.cli", "serve", "--port", "0", "--config", str(cfg),
                            "--data-dir", str(Path(self._tmp) / "data"), *self.serve_args],
                           env={"VVBENCH_API_KEY": self.api_key})
        deadline = time.monotonic() + self.ready_timeout_s
        url = child.wait_url(self.ready_timeout_s)
        child.wait_ready(f"{url}/readyz", max(1.0, deadline - time.monotonic()))
        return url

    def stop(self, grace_s: float = 30.0) -> None:
        super().stop(grace_s)
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def describe(self) -> dict:
        return {**super().describe(), "preset": self.config.preset, "serve_args": self.serve_args}

    def runtime_config(self) -> dict:
        return self.config.model_dump(mode="json")


class HttpTarget(Target):
    """Any base URL speaking `/v1/audio/speech`; started elsewhere, never stopped by us."""

    kind = "http"

    def __init__(self, url: str, api_key: str | None = None, pid: int | None = None, ready_timeout_s: float = 60.0):
        super().__init__()
        self.base = url.rstrip("/")
        self.api_key = api_key
        self._pid = pid
        self.ready_timeout_s = ready_timeout_s

    @property
    def pid(self) -> int | None:
        return self._pid

    def start(self) -> str:
        """Reachable and ready: /readyz 200 (a 404 means the server has no readiness probe: accepted)."""
        deadline = time.monotonic() + self.ready_timeout_s
        unreachable = 0
        while True:
            status, why = probe(f"{self.base}/readyz")
            if status is not None and status != 503:
                self.url = self.base
                return self.url
            unreachable = unreachable + 1 if status is None else 0
            if unreachable >= 3:
                raise TargetError(f"target {self.base} is unreachable: {why}")
            if time.monotonic() > deadline:
                raise TargetError(f"target {self.base} not ready within {self.ready_timeout_s:g} s (/readyz answers {status})")
            time.sleep(0.5)

    def stop(self) -> None:
        pass

    def alive(self) -> bool:
        status, _ = probe(f"{self.base}/healthz", 2.0)
        return status is not None


_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)\}")


def _flat_knobs(config) -> dict[str, str]:
    values = config.model_dump(mode="json") if hasattr(config, "model_dump") else dict(config)
    out = {}
    for key, value in values.items():
        if isinstance(value, dict) and key == "faults":
            out.update({f"faults.{k}": _arg(v) for k, v in value.items()})
        out[key] = _arg(value)
    return out


def _arg(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def fill(template: str, values: dict[str, str]) -> str:
    """Replace `{name}` placeholders; ConfigError naming an unknown one and the known ones."""
    def sub(m: re.Match) -> str:
        if m.group(1) not in values:
            raise ConfigError(f"command target: unknown placeholder {{{m.group(1)}}}; known: {', '.join(sorted(values))}")
        return values[m.group(1)]
    return _PLACEHOLDER.sub(sub, template)


class CommandTarget(ChildTarget):
    """An argv template with `{knob}` placeholders, run without a shell, ready when its URL says 200."""

    kind = "command"

    def __init__(self, argv: list[str], ready_url: str, url: str, config, log_dir: Path,
                 ready_timeout_s: float = READY_TIMEOUT_S):
        super().__init__(log_dir)
        self.config = config
        self.port = free_port()
        self.templates = (list(argv), ready_url, url)
        self.ready_timeout_s = ready_timeout_s
        self._fill()
        if not self.argv:
            raise ConfigError("command target: the command is empty")

    def _fill(self) -> None:
        """The argv, readiness URL and base URL from the templates and the current config."""
        argv, ready_url, url = self.templates
        values = {**_flat_knobs(self.config), "port": str(self.port), "host": "127.0.0.1"}
        self.argv = [fill(a, values) for a in argv]
        self.ready_url = fill(ready_url, values)
        self.base = fill(url, values).rstrip("/")

    def launch(self) -> str:
        self.spawn(self.argv).wait_ready(self.ready_url, self.ready_timeout_s)
        return self.base

    def describe(self) -> dict:
        return {**super().describe(), "argv": self.argv, "ready_url": self.ready_url}

    def runtime_config(self) -> dict:
        return self.config.model_dump(mode="json") if hasattr(self.config, "model_dump") else dict(self.config)

    def config_changed(self, config: dict) -> None:
        super().config_changed(config)
        self._fill()  # the argv and URLs follow the config's {knob} values


class EmbeddedSpec(BaseModel):
    """Start the reference service (`vvbench serve`) with this runtime config."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["embedded"] = "embedded"
    serve_args: list[str] = Field(default_factory=list, description="extra `vvbench serve` flags (service settings)")
    api_key: str | None = Field(None, description="the service requires this Bearer key (passed by environment, never argv; "
                                "None: a key drawn for the run)")
    allow_faults: bool = Field(False, description="start the service with --allow-faults (the runtime config sets fault knobs)")

    def build(self, config, log_dir: Path) -> Target:
        return EmbeddedTarget(config, log_dir, self.serve_args, self.api_key, allow_faults=self.allow_faults)


class HttpSpec(BaseModel):
    """A service already running at `url`."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["http"] = "http"
    url: str = Field(description="base URL, e.g. http://127.0.0.1:8000")
    api_key: str | None = Field(None, description="Bearer key")
    pid: int | None = Field(None, description="the service's PID on this host, to sample its memory and CPU")

    def build(self, config, log_dir: Path) -> Target:
        return HttpTarget(self.url, self.api_key, self.pid)


class CommandSpec(BaseModel):
    """A server started from an argv template; `{knob}` placeholders come from the runtime config."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["command"] = "command"
    argv: list[str] = Field(min_length=1, description="argv template, e.g. ['my-tts', '--port', '{port}', '--steps', '{diffusion_steps}']")
    ready_url: str = Field("http://127.0.0.1:{port}/readyz", description="polled until it answers 200")
    url: str = Field("http://127.0.0.1:{port}", description="base URL of the started service")

    def build(self, config, log_dir: Path) -> Target:
        return CommandTarget(self.argv, self.ready_url, self.url, config, log_dir)


TargetSpec = Annotated[EmbeddedSpec | HttpSpec | CommandSpec, Field(discriminator="kind")]
