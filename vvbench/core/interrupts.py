"""SIGTERM stops a measuring command the way Ctrl-C does.

`vvbench run`, `vvbench capacity` and `vvbench tune` keep what they measured when Ctrl-C stops
them: the run directory written with its rows, the study saved with the trial in flight failed
as interrupted, a service the tuner did not start given its own config back. A CI job that is
cancelled or times out, `timeout`, Kubernetes and systemd stop a process with SIGTERM, and
Python's default for SIGTERM is to die at once, with none of that. So these commands call
`sigterm_interrupts()`: the first SIGTERM raises `Terminated`, a KeyboardInterrupt, in the main
thread, and every Ctrl-C path runs; later ones are swallowed so that the clean-up (a service's
drain, the config restore) is not cut short: SIGKILL still ends it. The exit code is Ctrl-C's,
130. A handler, not SIG_IGN, because an ignored signal stays ignored in the children started
during the clean-up.
"""

from __future__ import annotations

import signal


class Terminated(KeyboardInterrupt):
    """SIGTERM, delivered as Ctrl-C is."""


_terminated = False  # a SIGTERM was taken: an interrupt re-raised as a plain KeyboardInterrupt was still that


def sigterm_interrupts() -> None:
    """From now on, the first SIGTERM raises `Terminated` in the main thread (call it from the main thread)."""
    def first(signum, frame) -> None:
        global _terminated
        _terminated = True
        signal.signal(signal.SIGTERM, lambda *_: None)
        raise Terminated("SIGTERM")
    signal.signal(signal.SIGTERM, first)


def interrupted_by() -> str:
    """What interrupted this process: 'SIGTERM' (once one was taken) or 'Ctrl-C'."""
    return "SIGTERM" if _terminated else "Ctrl-C"
