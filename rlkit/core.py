"""The small interfaces every rlkit component is written against: Agent and Policy.

A complete training loop with these pieces (this is what ``rlkit.loops`` does)::

    from rlkit.agents import DQN, DQNConfig
    from rlkit.envs import make_vector_env
    from rlkit.replay import ReplayBuffer
    from rlkit.runner import VectorRunner

    runner = VectorRunner(make_vector_env("CartPole-v1", num_envs=1))
    agent = DQN(runner.observation_space, runner.action_space, DQNConfig(), seed=0)
    buffer = ReplayBuffer(10_000, runner.num_envs, runner.observation_space, runner.action_space)
    obs = runner.reset(seed=0)
    for _ in range(5_000):
        action = agent.act(obs, explore=True)      # [N]
        transition, obs = runner.step(action)      # arrays of [N, ...]
        buffer.add(transition)
        if buffer.size >= 1_000:
            metrics = agent.update(buffer.sample(64))
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Policy(Protocol):
    """A callable from a batch of observations ``[N, *obs_shape]`` to actions ``[N]``."""

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Return one action per observation."""
        ...


class Agent(abc.ABC):
    """A learning agent: acts on batches of observations and learns from batches of data.

    Agents never read environments or buffers themselves: the loops in ``rlkit.loops``
    hand them observations (``act``) and sampled data (``update``), so an agent can be
    tested with hand-made arrays.

    Class attributes:
        name: registry name used by the CLI (``dqn``, ``a2c``, ...).
        on_policy: True if ``update`` takes a ``Rollout``, False if it takes a ``Batch``.
        config_cls: the frozen dataclass holding this agent's hyperparameters.
    """

    name: ClassVar[str]
    on_policy: ClassVar[bool]
    config_cls: ClassVar[type]

    @abc.abstractmethod
    def act(self, obs: np.ndarray, *, explore: bool) -> np.ndarray:
        """Choose actions for a batch of observations.

        Args:
            obs: observations, ``[N, *obs_shape]``.
            explore: True while training (epsilon-greedy, sampling); False for greedy
                evaluation.

        Returns:
            Actions, ``[N]``.
        """

    @abc.abstractmethod
    def update(self, batch: Any) -> dict[str, float]:
        """Run one learning step on a batch (``Batch`` or ``Rollout``) and return metrics."""

    @abc.abstractmethod
    def checkpoint_items(self) -> dict[str, Any]:
        """Trackable objects (models, optimizer, ``tf.Variable`` counters) to checkpoint.

        Save them with ``tf.train.Checkpoint(**agent.checkpoint_items())``; call
        ``before_checkpoint()`` before each save and ``after_restore()`` after a restore,
        so that Python-side state (schedules, the numpy copy of the policy) follows.
        """

    def save(self, path: str | Path) -> Path:
        """Save the whole agent (settings, spaces, variables, RNG) into the folder ``path``.

        ``Agent.load(path)`` rebuilds it, ready to act or to keep learning. No pickle: JSON
        and a TensorFlow checkpoint.
        """
        from rlkit.agent_io import save_agent

        return save_agent(self, path)

    @staticmethod
    def load(path: str | Path) -> Agent:
        """Rebuild an agent saved with ``save`` (its class is read from the folder)."""
        from rlkit.agent_io import load_agent

        return load_agent(path)

    def before_checkpoint(self) -> None:  # noqa: B027 (optional hook, nothing to do by default)
        """Copy Python-side state (e.g. schedule positions) into checkpointed variables."""

    def after_restore(self) -> None:
        """Refresh Python-side state from restored variables (numpy policy copy, schedules)."""
        network = self.policy_network()
        if getattr(network, "supports_numpy", False):
            network.refresh_numpy()
        if hasattr(network, "sync_acting_copy"):
            network.sync_acting_copy()

    def acting_rule(self) -> dict[str, Any]:
        """How ``act(obs, explore=True)`` picks actions, for a copy of the policy elsewhere.

        Ray rollout workers (``rlkit.distributed``) act with their own copy of
        ``policy_network()`` and this rule: ``{"rule": "categorical"}`` (sample from
        softmax(scores)) or ``{"rule": "epsilon_greedy", "schedule": [initial, final,
        duration], "step": int}`` (a linear epsilon schedule and its current position).

        Raises:
            NotImplementedError: for agents that can only act in this process.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot act in another process")

    def advance_exploration(self, steps: int) -> None:  # noqa: B027 (optional hook)
        """Count ``steps`` acting steps taken by copies of the policy elsewhere.

        Keeps an exploration schedule where ``act`` would have left it; no-op by default.
        """

    @abc.abstractmethod
    def policy_network(self) -> Any:
        """The network that decides actions (saved as the run's final policy)."""
