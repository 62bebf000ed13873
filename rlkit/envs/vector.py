"""Turn env factories into one gymnasium vector env (sync or spawned workers), NEXT_STEP."""

from __future__ import annotations

import multiprocessing
import signal
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
from gymnasium.vector import AutoresetMode

from rlkit.envs.checks import CheckObservations
from rlkit.errors import RlkitError

# How a vector env steps its copies: "sync" in this process, "async" in spawned workers,
# "ale" in ale-py's C++ vector env (Atari only), "vector" in the env's own vectorized
# implementation (its gymnasium spec's vector_entry_point, e.g. CartPole's numpy one). Here,
# below both the env factories and the settings that validate the choice, so that neither
# imports the other for it.
VECTORIZATIONS = ("sync", "async", "ale", "vector")


class WorkerException(RuntimeError):
    """An env raised inside a worker process; the message carries the worker's traceback."""


class _WorkerTracebacks(gym.Wrapper):
    """Put the worker's traceback into the exception the main process receives.

    gymnasium sends the main process only the exception's type and message; a user's
    ``RlkitError`` (an env breaking its space) goes through unchanged.
    """

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        return _reporting(self.env.reset, **kwargs)

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        return _reporting(self.env.step, action)


def _reporting(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``call(...)``, with any non-``RlkitError`` exception turned into ``WorkerException``."""
    try:
        return call(*args, **kwargs)
    except RlkitError:
        raise
    except Exception as e:
        detail = f"{type(e).__name__}: {e}\n[worker traceback]\n{traceback.format_exc()}"
        raise WorkerException(detail) from None


class _Checked:
    """A picklable env factory that adds ``CheckObservations``."""

    def __init__(self, make: Callable[[], gym.Env]) -> None:
        self.make = make

    def __call__(self) -> gym.Env:
        return CheckObservations(self.make())


class _InWorker:
    """A picklable env factory that makes the spawned worker it runs in ignore SIGINT/SIGTERM.

    Ctrl-C (and a service manager's SIGTERM) reaches the whole process group: the workers
    leave it to the main process, which stops at a step boundary and closes them, instead
    of each dying mid-step (which would look like a worker fault).
    """

    def __init__(self, make: Callable[[], gym.Env]) -> None:
        self.make = make

    def __call__(self) -> gym.Env:
        # gymnasium also calls the first factory in the main process (to read the spaces);
        # only a spawned worker, which has a parent process, stops listening to Ctrl-C.
        if multiprocessing.parent_process() is not None:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            return _WorkerTracebacks(self.make())
        return self.make()


def vectorize(fns: Sequence[Callable[[], gym.Env]], vectorization: str) -> gym.vector.VectorEnv:
    """``sync``: all envs in this process; ``async``: one ``spawn``ed worker per env.

    Workers are spawned, never forked: forking after TensorFlow has started is unsafe.
    Every env checks its first observations against its space (``CheckObservations``).
    """
    if vectorization not in ("sync", "async"):
        raise ValueError(
            f"vectorize builds 'sync' or 'async' vector envs from factories, not "
            f"{vectorization!r} (rlkit.envs.make_vector_env builds the others)"
        )
    fns = [_Checked(fn) for fn in fns]
    if vectorization == "sync":
        return gym.vector.SyncVectorEnv(fns, autoreset_mode=AutoresetMode.NEXT_STEP)
    return gym.vector.AsyncVectorEnv(
        [_InWorker(fn) for fn in fns],
        context="spawn",
        autoreset_mode=AutoresetMode.NEXT_STEP,
        daemon=True,
    )
