"""Env factories: single envs by id and gymnasium vector envs with NEXT_STEP autoreset."""

from __future__ import annotations

import functools
import importlib
import importlib.util
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym

from rlkit.envs.atari import (
    AtariProtocol,
    is_atari,
    make_atari_env,
    make_atari_vector_env,
    register_ale,
)
from rlkit.envs.vector import VECTORIZATIONS, vectorize
from rlkit.errors import ConfigError, MissingExtraError, UnknownNameError

# Env families that need an optional package: (id prefix or gymnasium entry-point prefix,
# the module that must import, rlkit's extra that installs it).
ID_EXTRAS = (("MinAtar/", "minatar", "minatar"),)
ENTRY_POINT_EXTRAS = (
    ("gymnasium.envs.box2d", "Box2D", "box2d"),
    ("gymnasium.envs.mujoco", "mujoco", "mujoco"),
)


def require_module(module: str, extra: str, env_id: str) -> None:
    """Raise ``MissingExtraError`` naming ``extra`` if ``module`` is not installed."""
    if importlib.util.find_spec(module) is None:
        raise MissingExtraError(f"{env_id} needs {module}: pip install 'rlkit[{extra}]'")


def check_env_id(env_id: str) -> None:
    """Check that ``env_id`` is registered and that its packages are installed.

    Raises:
        UnknownNameError: if gymnasium does not know the id (with gymnasium's hint).
        MissingExtraError: if the env needs an extra that is not installed (Box2D, MuJoCo,
            ale-py, MinAtar), naming the ``pip install 'rlkit[...]'`` that fixes it.
    """
    if is_atari(env_id):
        register_ale(env_id)  # raises MissingExtraError without ale-py
    for prefix, module, extra in ID_EXTRAS:
        if env_id.startswith(prefix):
            require_module(module, extra, env_id)
            importlib.import_module(module)  # registers its ids
    try:
        spec = gym.spec(env_id)
    except gym.error.Error as e:
        raise UnknownNameError(f"unknown env {env_id!r}: {e}") from None
    entry_point = spec.entry_point if isinstance(spec.entry_point, str) else ""
    for prefix, module, extra in ENTRY_POINT_EXTRAS:
        if entry_point.startswith(prefix):
            require_module(module, extra, env_id)


def make_env(
    env_id: str,
    render_mode: str | None = None,
    protocol: AtariProtocol | None = None,
    **kwargs: Any,
) -> gym.Env:
    """Make one env by id (Atari ids get ``protocol``'s preprocessing)."""
    check_env_id(env_id)
    if is_atari(env_id):
        return make_atari_env(env_id, protocol or AtariProtocol(), render_mode=render_mode)
    return gym.make(env_id, render_mode=render_mode, **kwargs)


def _env_fn(
    env_id: str,
    kwargs: dict[str, Any],
    wrappers: Sequence[Callable[[gym.Env], gym.Env]] = (),
) -> gym.Env:
    # Module-level so that `spawn`ed workers can unpickle it.
    env = gym.make(env_id, **kwargs)
    if wrappers:
        # Statistics of the env's own rewards, before a wrapper changes them; the runner
        # reports these as the episode returns.
        env = gym.wrappers.RecordEpisodeStatistics(env)
    for wrap in wrappers:
        env = wrap(env)
    return env


def make_vector_env(
    env_id: str,
    num_envs: int = 1,
    vectorization: str = "sync",
    protocol: AtariProtocol | None = None,
    wrappers: Sequence[Callable[[gym.Env], gym.Env]] = (),
    **kwargs: Any,
) -> gym.vector.VectorEnv:
    """Make ``num_envs`` copies of an env as one vector env with NEXT_STEP autoreset.

    Args:
        env_id: a registered gymnasium id.
        num_envs: number of copies.
        vectorization: ``"sync"`` (one process), ``"async"`` (one ``spawn``ed subprocess
            per env; forking after TensorFlow has started is unsafe) or, for Atari,
            ``"ale"`` (ale-py's C++ vector env, preprocessing in threads).
        protocol: the Atari preprocessing protocol (Atari ids only; default ``dqn``).
        wrappers: applied to every copy in order, e.g.
            ``[functools.partial(RewardNoise, mean=1.0, std=1.0)]``; with ``async`` they
            must pickle (classes, module-level functions, partials of them). Each copy then
            is ``gym.make`` -> ``RecordEpisodeStatistics`` -> wrappers, so the episode
            returns in training statistics are the env's own, before any wrapper changes
            the rewards (the learner gets the wrapped rewards). Not for Atari ids.
        **kwargs: passed to ``gym.make`` for every copy.

    Returns:
        A gymnasium ``VectorEnv``.

    Example:
        >>> envs = make_vector_env("CartPole-v1", 4, wrappers=[RewardNoise])
    """
    if vectorization not in VECTORIZATIONS:
        raise UnknownNameError(
            f"unknown vectorization {vectorization!r}; choose one of {VECTORIZATIONS}"
        )
    check_env_id(env_id)
    if is_atari(env_id):
        if wrappers:
            raise ConfigError(
                f"wrappers= is not supported for Atari ids ({env_id!r}): the protocol's "
                "preprocessing builds those envs"
            )
        return make_atari_vector_env(env_id, num_envs, vectorization, protocol or AtariProtocol())
    if vectorization == "ale":
        raise ConfigError(f"vectorization 'ale' is for Atari envs only, not {env_id!r}")
    fns = [
        functools.partial(_env_fn, env_id, dict(kwargs), tuple(wrappers)) for _ in range(num_envs)
    ]
    return vectorize(fns, vectorization)
