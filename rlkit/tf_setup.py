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


def limit_threads(threads: int) -> None:
    """Run TensorFlow's ops on ``threads`` threads (intra- and inter-op pools alike).

    For processes that share a machine's cores with others (``rlkit.tune --jobs K``), so that
    K processes do not each start a pool as large as the machine. Call it before TensorFlow
    runs an op: it imports TensorFlow (quietly) if needed. BLAS/OpenMP thread variables are
    set too, for libraries loaded after this call.
    """
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(threads))
    import_tensorflow_quietly()
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
