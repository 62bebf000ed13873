"""Catch an env that breaks its own observation space on its first steps, naming the value."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from rlkit.errors import EnvSpaceError


def observation_problem(space: gym.spaces.Space, obs: Any) -> str | None:
    """What is wrong with ``obs`` as a member of ``space``, or None if nothing is.

    For ``Box`` spaces the message names the dtype or shape mismatch, or the first element
    outside the bounds (or not finite) with its index and value.
    """
    if not isinstance(space, gym.spaces.Box):
        return None if space.contains(obs) else f"{obs!r} is not in {space}"
    if not isinstance(obs, np.ndarray):
        return f"expected a numpy array, got {type(obs).__name__}"
    if obs.dtype != space.dtype:
        return f"its dtype is {obs.dtype} but the observation_space declares {space.dtype}"
    if obs.shape != space.shape:
        return f"its shape is {obs.shape} but the observation_space declares {space.shape}"
    inside = (obs >= space.low) & (obs <= space.high)
    if np.issubdtype(obs.dtype, np.floating):
        inside &= np.isfinite(obs) | (np.isinf(obs) & np.isinf(space.low) & np.isinf(space.high))
    if inside.all():
        return None
    index = tuple(int(i) for i in np.argwhere(~inside)[0])
    where = f"[{', '.join(map(str, index))}]" if index else ""
    return (
        f"element{where} is {obs[index].item()!r}, outside the declared bounds "
        f"[{space.low[index].item()!r}, {space.high[index].item()!r}]"
    )


class _FirstStepsChecked:
    """Checks ``reset()`` and the next ``steps`` observations, then steps straight through.

    After those steps ``step`` is replaced by the inner env's, so a long run pays nothing
    for the check. Subclasses say what a problem is called (``_check``).
    """

    env: Any

    def __init__(self, env: Any, steps: int = 2) -> None:
        super().__init__(env)  # type: ignore[call-arg]
        self._left = steps

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        """Reset and check the first observation(s)."""
        obs, info = self.env.reset(**kwargs)
        self._check(obs, "reset()")
        return obs, info

    def step(self, action: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        """Step and check the observation(s) (the first ``steps`` times only)."""
        out = self.env.step(action)
        self._check(out[0], "step()")
        self._left -= 1
        if self._left <= 0:
            self.step = self.env.step  # type: ignore[method-assign]
        return out

    def _check(self, obs: Any, call: str) -> None:
        raise NotImplementedError


class CheckObservations(_FirstStepsChecked, gym.Wrapper):
    """Check the reset observation and the next ``steps`` ones against the observation space.

    After that the wrapper steps straight through (its ``step`` is replaced by the inner
    env's), so a long run pays nothing for it.

    Raises:
        EnvSpaceError: on the first observation outside the space, naming the value.
    """

    def _check(self, obs: Any, call: str) -> None:
        problem = observation_problem(self.observation_space, obs)
        if problem is not None:
            name = self.spec.id if self.spec is not None else type(self.unwrapped).__name__
            raise EnvSpaceError(
                f"env {name} returned an observation outside its observation_space from "
                f"{call}: {problem}; fix the env, or declare the space it really produces"
            )


class CheckVectorObservations(_FirstStepsChecked, gym.vector.VectorWrapper):
    """``CheckObservations`` for a vector env that has no per-env copies to wrap.

    An env's own vectorized implementation (``gym.make_vec(..., "vector_entry_point")``)
    steps all its envs at once, so the per-env wrapper cannot go inside it. This checks the
    batch instead: the reset observations and those of the next ``steps`` steps against the
    batched observation space, naming the env (the first index) and the value. After that
    ``step`` is the inner env's own, so a long run pays nothing for it.

    Raises:
        EnvSpaceError: on the first batch with an observation outside the space.

    Example:
        >>> envs = CheckVectorObservations(gym.make_vec("CartPole-v1", 8, "vector_entry_point"))
    """

    def _check(self, obs: Any, call: str) -> None:
        problem = observation_problem(self.observation_space, obs)
        if problem is not None:
            spec = self.env.unwrapped.spec
            name = spec.id if spec is not None else type(self.env.unwrapped).__name__
            raise EnvSpaceError(
                f"vector env {name} returned observations outside its observation_space "
                f"from {call} (the first index is the env's): {problem}; fix the env, or "
                "declare the space it really produces"
            )
