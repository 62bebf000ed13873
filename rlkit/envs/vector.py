"""Turn env factories into one gymnasium vector env (sync or spawned workers), NEXT_STEP."""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Callable, Sequence

import gymnasium as gym
from gymnasium.vector import AutoresetMode


class _InWorker:
    """A picklable env factory that makes the spawned worker it runs in ignore SIGINT.

    Ctrl-C reaches the whole process group: the workers leave it to the main process,
    which closes them, instead of each dying mid-step with a traceback.
    """

    def __init__(self, make: Callable[[], gym.Env]) -> None:
        self.make = make

    def __call__(self) -> gym.Env:
        # gymnasium also calls the first factory in the main process (to read the spaces);
        # only a spawned worker, which has a parent process, stops listening to Ctrl-C.
        if multiprocessing.parent_process() is not None:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        return self.make()


def vectorize(fns: Sequence[Callable[[], gym.Env]], vectorization: str) -> gym.vector.VectorEnv:
    """``sync``: all envs in this process; ``async``: one ``spawn``ed worker per env.

    Workers are spawned, never forked: forking after TensorFlow has started is unsafe.
    """
    if vectorization == "sync":
        return gym.vector.SyncVectorEnv(list(fns), autoreset_mode=AutoresetMode.NEXT_STEP)
    return gym.vector.AsyncVectorEnv(
        [_InWorker(fn) for fn in fns],
        context="spawn",
        autoreset_mode=AutoresetMode.NEXT_STEP,
        daemon=True,
    )
