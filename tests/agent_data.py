"""Hand-made update data and variable snapshots for agent tests that go through the public API.

Agents never read envs: ``update`` takes a ``Batch`` (DQN family, leading dims ``[B]`` or
``[G, B]`` for G fused gradient steps) or a ``Rollout`` (A2C ``[T, N]``, REINFORCE whole
episodes as ``[L, E]`` columns), so every test here builds them with numpy.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from rlkit.agents import AGENTS
from rlkit.types import Batch, Rollout

CARTPOLE_OBS = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)
CARTPOLE_ACTIONS = gym.spaces.Discrete(2)


def make_agent(name: str, seed: int = 0, **overrides):
    """A small agent of the registry for CartPole's spaces."""
    cls = AGENTS[name]
    config = cls.config_cls(**{"hidden_sizes": (16, 16), **overrides})
    return cls(CARTPOLE_OBS, CARTPOLE_ACTIONS, config, seed=seed)


def update_data(agent, rng: np.random.Generator, shape: tuple[int, ...]):
    """Random data for one ``agent.update``: shape ``[B]``/``[G, B]`` or ``[T, N]``/``[L, E]``."""

    def obs(*dims: int) -> np.ndarray:
        return rng.normal(size=(*dims, 4)).astype(np.float32)

    actions = rng.integers(0, 2, shape).astype(np.int64)
    reward = rng.normal(size=shape).astype(np.float32)
    if not agent.on_policy:
        terminated = (rng.random(shape) < 0.3).astype(np.float32)
        truncated = (rng.random(shape) < 0.1).astype(np.float32)
        discount = np.float32(agent.config.gamma) * (1.0 - terminated)
        weights = np.ones(shape, np.float32)
        indices = np.arange(int(np.prod(shape))).reshape(shape)
        batch = (obs(*shape), actions, reward, obs(*shape), terminated, truncated)
        return Batch(*batch, discount, weights, indices)
    steps, envs = shape
    terminated, truncated = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
    valid = np.ones(shape, np.float32)
    if agent.name == "reinforce":  # whole episodes, padded with valid = 0
        for e in range(envs):
            length = steps if e == 0 else int(rng.integers(1, steps + 1))
            terminated[length - 1, e] = 1.0
            valid[length:, e] = 0.0
    else:  # an episode end in some env columns, then the autoreset row
        for e in range(0, envs, 2):
            t = int(rng.integers(0, steps))
            terminated[t, e] = 1.0
            if t + 1 < steps:
                valid[t + 1, e] = 0.0
    return Rollout(obs(*shape), actions, reward, terminated, truncated, valid, obs(envs))


def agent_variables(agent) -> dict[str, list[np.ndarray]]:
    """Every variable in ``agent.checkpoint_items()``: networks, optimizer, counters."""
    import tensorflow as tf

    out = {}
    for key, item in agent.checkpoint_items().items():
        variables = [item] if isinstance(item, tf.Variable) else list(item.variables)
        out[key] = [np.array(v.numpy()) for v in variables]
    return out


def assert_same_variables(expected: dict, got: dict) -> None:
    """Bitwise equality of two ``agent_variables`` snapshots."""
    assert expected.keys() == got.keys()
    for key in expected:
        assert len(expected[key]) == len(got[key]), key
        for i, (a, b) in enumerate(zip(expected[key], got[key], strict=True)):
            np.testing.assert_array_equal(b, a, err_msg=f"{key} variable {i}")
