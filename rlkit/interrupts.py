"""Ctrl-C that stops training at a step boundary: the first one asks, the second one forces.

A KeyboardInterrupt raised while the main process waits on subprocess workers can leave
a half-read message in a pipe, and closing the workers then hangs. Inside ``graceful()``,
the first SIGINT only sets a flag; ``check()``, called by the runner after each step, turns
it into a KeyboardInterrupt where nothing is pending. A second Ctrl-C interrupts at once.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

_requested = False


def _handler(signum: int, frame: FrameType | None) -> None:
    global _requested
    if _requested:  # the second Ctrl-C: no more waiting
        signal.signal(signal.SIGINT, signal.default_int_handler)
        raise KeyboardInterrupt
    _requested = True


@contextlib.contextmanager
def graceful() -> Iterator[None]:
    """Within the block, SIGINT requests a stop instead of interrupting (main thread only)."""
    global _requested
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _requested = False
    previous = signal.signal(signal.SIGINT, _handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _requested = False


def check() -> None:
    """Raise KeyboardInterrupt if a stop was requested (call it where nothing is pending)."""
    if _requested:
        raise KeyboardInterrupt
