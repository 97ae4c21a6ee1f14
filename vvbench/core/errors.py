"""The error hierarchy. The CLI turns any VVBenchError into one line and exit code 2."""

from __future__ import annotations


class VVBenchError(Exception):
    """Base of every error vvbench raises on purpose (bad input, unreachable target, ...)."""

    exit_code = 2


class ConfigError(VVBenchError):
    """A configuration value is invalid; the message names the field and what is allowed."""


class InputError(VVBenchError):
    """A request or command-line argument is invalid (empty text, unknown voice, ...)."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


class CapacityError(VVBenchError):
    """The engine cannot take more work right now (queue full, memory guard)."""

    def __init__(self, message: str, retry_after_s: float = 1.0):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RequestCancelled(VVBenchError):
    """A request was cancelled by its client or timed out before finishing."""


class EngineError(VVBenchError):
    """The engine failed while running a request (the request ends with this error)."""


class SynthesisFailed(EngineError):
    """One request failed inside the engine (its admission, a step or its finish raised); the engine goes on."""


class TargetError(VVBenchError):
    """A benchmark target could not be reached, started or kept alive."""


class ArtifactError(VVBenchError):
    """A run directory or one of its files is missing, corrupt, or of a schema this version cannot read."""
