"""Ctrl-C and SIGTERM stop training at a step boundary: the first asks, a second forces.

A KeyboardInterrupt raised while the main process waits on subprocess workers can leave
a half-read message in a pipe, and closing the workers then hangs. Inside ``graceful()``,
the first SIGINT or SIGTERM only sets a flag; ``check()``, called by the runner after each
step, turns it into a KeyboardInterrupt where nothing is pending, so the run can still
write a final checkpoint (``stopped_at_boundary()`` says it may). A second signal
interrupts at once, wherever the program is.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)

_requested: int | None = None  # the signal that asked for a stop
_at_boundary = False  # the KeyboardInterrupt in flight was raised by check()
_active = False  # inside graceful()


def _handler(signum: int, frame: FrameType | None) -> None:
    global _requested, _at_boundary
    if _requested is not None:  # the second signal: no more waiting
        for sig in SIGNALS:
            signal.signal(sig, signal.default_int_handler)
        _at_boundary = False
        raise KeyboardInterrupt
    _requested = signum


@contextlib.contextmanager
def graceful() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM request a stop instead of interrupting.

    Only in the main thread (elsewhere Python cannot install signal handlers).
    """
    global _requested, _at_boundary, _active
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _requested, _at_boundary = None, False
    previous = {sig: signal.signal(sig, _handler) for sig in SIGNALS}
    _active = True
    try:
        yield
    finally:
        _active = False
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def check() -> None:
    """Raise KeyboardInterrupt if a stop was requested (call it where nothing is pending)."""
    global _at_boundary
    if _active and _requested is not None:
        _at_boundary = True
        raise KeyboardInterrupt


def stopped_at_boundary() -> bool:
    """Whether the KeyboardInterrupt being handled came from ``check()``.

    Then the run's state is consistent and a final checkpoint can be written; after a
    second, forcing signal it may not be. Still true just after the ``graceful()`` block
    the interrupt left, so the caller can report it.
    """
    return _at_boundary and _requested is not None


def requested_signal() -> int | None:
    """The signal that requested the stop (``signal.SIGINT`` or ``SIGTERM``), if any."""
    return _requested
