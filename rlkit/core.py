"""The small interfaces every rlkit component is written against: Agent, Storage and Policy.

A complete training loop with these pieces (this is what ``rlkit.loops.train`` does)::

    from rlkit.agents import DQN, DQNConfig
    from rlkit.envs import make_vector_env
    from rlkit.runner import VectorRunner

    runner = VectorRunner(make_vector_env("CartPole-v1", num_envs=1))
    agent = DQN(runner.observation_space, runner.action_space, DQNConfig(), seed=0)
    storage = agent.make_storage(runner.num_envs, runner.observation_space, runner.action_space)
    schedule = {}  # the agent's update schedule (saved with a run's checkpoints)
    obs = runner.reset(seed=0)
    while runner.env_steps < 5_000:
        action = agent.act(obs, explore=True)      # [N]
        transition, obs = runner.step(action)      # arrays of [N, ...]
        storage.add(transition)
        while (batch := agent.next_batch(storage, runner.env_steps, obs, schedule)) is not None:
            metrics = agent.update(batch)          # an update is due, on this data
            agent.after_update(storage, batch)

The same loop trains A2C or REINFORCE: their ``make_storage`` builds a rollout store and
their ``next_batch`` hands out a full rollout.

This module imports nothing from rlkit but ``rlkit.types``, so that every other module can
import it. Saving and loading live in ``rlkit.agent_io``, mixed into the agents' bases.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from pathlib import Path

    import gymnasium as gym

    from rlkit.types import Transition


@runtime_checkable
class Policy(Protocol):
    """A callable from a batch of observations ``[N, *obs_shape]`` to actions ``[N]``."""

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Return one action per observation."""
        ...


class Storage(Protocol):
    """Where an agent keeps experience between acting and learning (built by the agent).

    ``rlkit.replay.ReplayBuffer`` (the DQN family) and the stores of ``rlkit.rollout``
    (policy gradients) implement it.

    Attributes:
        transient: False when a run's checkpoint saves the contents (replay). True for
            on-policy rollouts: their partial data is dropped (``clear``) whenever the
            envs are reset, so the loop takes checkpoints, and ends the run, only right
            after an update, when they hold nothing worth saving.
    """

    transient: bool

    def add(self, transition: Transition) -> Any:
        """Store one vector step ``[N, ...]``."""
        ...

    def clear(self) -> None:
        """Drop partial data (only called when ``transient``)."""
        ...


class Agent(abc.ABC):
    """A learning agent: what it learns from, when, and how it acts and updates.

    Agents never read environments themselves: the loop in ``rlkit.loops`` hands them
    observations (``act``), the storage they built (``next_batch``) and the batches they
    asked for (``update``), so an agent can be tested with hand-made arrays.

    Class attributes:
        name: registry name used by the CLI (``dqn``, ``a2c``, ...); a concrete class in a
            module of ``rlkit.agents`` with its own ``name`` is found automatically.
        on_policy: True if ``update`` takes a ``Rollout``, False if it takes a ``Batch``.
        config_cls: the frozen dataclass holding this agent's hyperparameters.

    Attributes:
        config: this agent's hyperparameters (a ``config_cls``).
        observation_space: the single-env observation space it was built for.
        action_space: the single-env action space it was built for.
        rng: the generator its exploration draws from (saved with checkpoints).
    """

    name: ClassVar[str]
    on_policy: ClassVar[bool]
    config_cls: ClassVar[type]

    config: Any
    observation_space: gym.spaces.Space
    action_space: gym.spaces.Space
    rng: np.random.Generator

    @classmethod  # noqa: B027 (optional hook: any space by default)
    def check_action_space(cls, action_space: gym.spaces.Space) -> None:
        """Raise ``IncompatibleEnvError`` if this agent cannot act in ``action_space``.

        The constructor checks it as well; front ends call this first, so that an agent on
        the wrong kind of env hears about the env before any setting's range. Default: any
        space.
        """

    # -- what it learns from and when -------------------------------------------------------
    @abc.abstractmethod
    def make_storage(
        self,
        num_envs: int,
        observation_space: gym.spaces.Space,
        action_space: gym.spaces.Space,
        *,
        frame_stack: int = 1,
        padding: str = "reset",
        seed: int | None = None,
    ) -> Storage:
        """Build the storage this agent learns from, from its own settings and the env's.

        Args:
            num_envs: env streams adding a row each per step.
            observation_space: single-env observation space (a frame stack for Atari).
            action_space: single-env action space.
            frame_stack: ``k`` if observations are ``[k, ...]`` stacks (replay stores each
                frame once); 1 otherwise.
            padding: how the env pads stacks at episode starts (``"reset"`` or ``"zero"``).
            seed: seed of the storage's own sampling generator.
        """

    @abc.abstractmethod
    def next_batch(
        self, storage: Any, env_steps: int, last_obs: np.ndarray, schedule: dict[str, Any]
    ) -> Any | None:
        """The data for an update if one is due now, else None (the update schedule).

        Called by the loop after every ``storage.add``, and again after each update it
        returned, until it returns None: an agent that wants several updates at one step
        (prioritized replay, one gradient step per sample) hands them out one by one.

        Args:
            storage: what ``make_storage`` built.
            env_steps: valid env steps taken so far, over all envs.
            last_obs: the observations after the last step ``[N, ...]`` (bootstrapping).
            schedule: plain ints this agent keeps between calls (e.g. the step of its next
                update); the loop saves it with each checkpoint and hands it back on resume.
        """

    def set_horizon(self, total_steps: int) -> None:  # noqa: B027 (optional hook)
        """The run's budget in env steps, told before training starts (and on resume).

        For schedules that anneal over the run (PPO's learning rate and clip range);
        nothing to do by default.
        """

    def after_update(self, storage: Any, batch: Any) -> None:  # noqa: B027 (optional hook)
        """Hand per-sample results of the last ``update(batch)`` back to the storage.

        Prioritized replay does it here: ``storage.update_priorities(batch.indices, ...)``
        with the TD errors its ``update`` kept. Nothing to do by default.
        """

    # -- acting and learning ---------------------------------------------------------------
    @abc.abstractmethod
    def act(self, obs: np.ndarray, *, explore: bool) -> np.ndarray:
        """Choose actions for a batch of observations.

        Args:
            obs: observations, ``[N, *obs_shape]``.
            explore: True while training (epsilon-greedy, sampling); False for greedy
                evaluation.

        Returns:
            Actions, ``[N, *action_shape]``.
        """

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, None]:
        """Actions for one observation or a batch, as Stable-Baselines3's ``predict``.

        Args:
            observation: one observation (the observation space's shape) or a batch
                ``[N, *obs_shape]``.
            state: unused (recurrent state in SB3); accepted so SB3 code runs unchanged.
            episode_start: unused, as ``state``.
            deterministic: the greedy action (argmax, the mode) if True; the agent's
                exploration if False (epsilon-greedy with its current epsilon, or a sample
                from the policy), as in SB3.

        Returns:
            ``(action, None)``: one action for one observation, ``[N, ...]`` for a batch.

        Raises:
            ValueError: if the observation's shape fits neither.
        """
        del state, episode_start
        space = self.observation_space
        batch, single = as_batch(observation, space.shape or (), space.dtype)
        actions = self.act(batch, explore=not deterministic)
        return (actions[0] if single else actions), None

    @abc.abstractmethod
    def update(self, batch: Any) -> dict[str, float]:
        """Run one learning step on a batch (``Batch`` or ``Rollout``) and return metrics."""

    # -- state -----------------------------------------------------------------------------
    @abc.abstractmethod
    def checkpoint_items(self) -> dict[str, Any]:
        """Trackable objects (models, optimizer, ``tf.Variable`` counters) to checkpoint.

        Save them with ``tf.train.Checkpoint(**agent.checkpoint_items())``; call
        ``before_checkpoint()`` before each save and ``after_restore()`` after a restore,
        so that Python-side state (schedules, the numpy copy of the policy) follows.
        """

    def before_checkpoint(self) -> None:  # noqa: B027 (optional hook, nothing to do by default)
        """Copy Python-side state (e.g. schedule positions) into checkpointed variables."""

    def after_restore(self) -> None:
        """Refresh Python-side state from restored variables (numpy policy copy, schedules)."""
        network = self.policy_network()
        if getattr(network, "supports_numpy", False):
            network.refresh_numpy()
        if hasattr(network, "sync_acting_copy"):
            network.sync_acting_copy()

    @abc.abstractmethod
    def policy_network(self) -> Any:
        """The network that decides actions (saved as the run's final policy)."""

    @abc.abstractmethod
    def save(self, path: str | Path) -> Path:
        """Save the whole agent (settings, spaces, variables, RNG) into the folder ``path``.

        ``rlkit.agent_io.SaveLoad``, mixed into the agents' bases, implements this and
        ``load`` (JSON and a TF checkpoint, no pickle).
        """

    @classmethod
    @abc.abstractmethod
    def load(cls, path: str | Path) -> Agent:
        """Rebuild an agent of this class saved with ``save``.

        ``rlkit.agents.load_agent(path)`` loads one of any registered class.

        Raises:
            NotImplementedError: on ``Agent`` itself, which cannot tell what to build.
        """
        raise NotImplementedError(
            f"{cls.__name__}.load cannot tell which agent class to build; use "
            "rlkit.agents.load_agent(path), or the agent's own class (e.g. DQN.load(path))"
        )

    # -- acting elsewhere (Ray rollout workers) --------------------------------------------
    def acting_rule(self) -> dict[str, Any]:
        """How ``act(obs, explore=True)`` picks actions, for a copy of the policy elsewhere.

        Ray rollout workers (``rlkit.distributed``) act with their own copy of
        ``policy_network()`` and this rule: ``{"rule": "categorical"}`` (sample from
        softmax(scores)), ``{"rule": "sample", "dist": ActionDist.to_json()}`` (sample
        from an ``rlkit.distributions`` distribution of the scores) or
        ``{"rule": "epsilon_greedy", "schedule": [initial, final, duration], "step": int}``
        (a linear epsilon schedule and its current position).

        Raises:
            NotImplementedError: for agents that can only act in this process.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot act in another process")

    def advance_exploration(self, steps: int) -> None:  # noqa: B027 (optional hook)
        """Count ``steps`` acting steps taken by copies of the policy elsewhere.

        Keeps an exploration schedule where ``act`` would have left it; no-op by default.
        """


def as_batch(
    observation: Any, shape: tuple[int, ...], dtype: Any = None
) -> tuple[np.ndarray, bool]:
    """``observation`` as a batch ``[N, *shape]``, and whether it was a single observation.

    Raises:
        ValueError: if its shape is neither ``shape`` nor a batch of it.
    """
    array = np.asarray(observation, dtype=dtype)
    shape = tuple(shape)
    if array.shape == shape:
        return array[None], True
    if array.ndim == len(shape) + 1 and array.shape[1:] == shape:
        return array, False
    raise ValueError(
        f"an observation of shape {array.shape} fits neither the observation space's shape "
        f"{shape} nor a batch of it [N, *{shape}]"
    )
