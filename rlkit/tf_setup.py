"""Import TensorFlow for the CLIs without its C++ start-up log lines on the terminal."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def _stderr_fd_silenced() -> Iterator[None]:
    # TF 2.21 logs oneDNN/CUDA probing from C++ before absl reads TF_CPP_MIN_LOG_LEVEL, so
    # the only way to keep a newcomer's terminal clean is to point fd 2 elsewhere meanwhile.
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def import_tensorflow_quietly() -> None:
    """Import TensorFlow and probe its devices with the C++ start-up chatter hidden.

    Python exceptions still surface (they are raised after stderr is restored).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules:
        return
    with _stderr_fd_silenced():
        import tensorflow as tf

        tf.config.list_physical_devices()
