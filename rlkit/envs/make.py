"""Env factories: single envs by id and gymnasium vector envs with NEXT_STEP autoreset."""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym
from gymnasium.vector import AutoresetMode

from rlkit.errors import UnknownNameError

VECTORIZATIONS = ("sync", "async")


def check_env_id(env_id: str) -> None:
    """Raise ``UnknownNameError`` (with gymnasium's hint) if ``env_id`` is not registered."""
    try:
        gym.spec(env_id)
    except gym.error.Error as e:
        raise UnknownNameError(f"unknown env {env_id!r}: {e}") from None


def make_env(env_id: str, render_mode: str | None = None, **kwargs: Any) -> gym.Env:
    """Make one env by id."""
    check_env_id(env_id)
    return gym.make(env_id, render_mode=render_mode, **kwargs)


def _env_fn(env_id: str, kwargs: dict[str, Any]) -> gym.Env:
    # Module-level so that `spawn`ed workers can unpickle it.
    return gym.make(env_id, **kwargs)


def make_vector_env(
    env_id: str,
    num_envs: int = 1,
    vectorization: str = "sync",
    **kwargs: Any,
) -> gym.vector.VectorEnv:
    """Make ``num_envs`` copies of an env as one vector env with NEXT_STEP autoreset.

    Args:
        env_id: a registered gymnasium id.
        num_envs: number of copies.
        vectorization: ``"sync"`` (one process) or ``"async"`` (one ``spawn``ed subprocess
            per env; forking after TensorFlow has started is unsafe).
        **kwargs: passed to ``gym.make`` for every copy.

    Returns:
        A gymnasium ``VectorEnv``.

    """
    if vectorization not in VECTORIZATIONS:
        raise UnknownNameError(
            f"unknown vectorization {vectorization!r}; choose one of {VECTORIZATIONS}"
        )
    check_env_id(env_id)
    fns = [functools.partial(_env_fn, env_id, dict(kwargs)) for _ in range(num_envs)]
    if vectorization == "sync":
        return gym.vector.SyncVectorEnv(fns, autoreset_mode=AutoresetMode.NEXT_STEP)
    return gym.vector.AsyncVectorEnv(
        fns, context="spawn", autoreset_mode=AutoresetMode.NEXT_STEP, daemon=True
    )
