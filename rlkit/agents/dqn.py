"""DQN (Mnih et al., 2015) with its Double (van Hasselt, 2016) and Dueling (Wang, 2016) variants."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import gymnasium as gym
import keras
import numpy as np
import tensorflow as tf

from rlkit import losses
from rlkit.agent_io import SaveLoad
from rlkit.agents.common import (
    CompiledStep,
    CompiledUpdate,
    FiniteGuard,
    network_spec,
    polyak_update,
    require_box_observations,
    require_discrete_actions,
)
from rlkit.config import RunConfig, hp
from rlkit.core import Agent
from rlkit.networks import Network, build_network
from rlkit.policies import EpsilonGreedyPolicy, LinearSchedule
from rlkit.precision import MIXED_PRECISION_CHOICES
from rlkit.replay import ReplayBuffer
from rlkit.types import Batch


@dataclasses.dataclass(frozen=True)
class DQNConfig:
    """Hyperparameters of the DQN family (names follow the common RL vocabulary)."""

    learning_rate: float = hp(1e-3, gt=0, help="Adam step size")
    gamma: float = hp(0.99, gt=0, le=1, help="discount factor")
    batch_size: int = hp(64, ge=1, help="transitions per gradient step")
    buffer_size: int = hp(100_000, ge=1, help="replay capacity in transitions")
    learning_starts: int = hp(1_000, ge=0, help="env steps before the first update")
    train_frequency: int = hp(4, ge=1, help="env steps (over all envs) between updates")
    gradient_steps: int = hp(1, ge=1, help="gradient steps per update, fused in one call")
    target_update_period: int = hp(1_000, ge=1, help="gradient steps between target updates")
    tau: float = hp(1.0, gt=0, le=1, help="target update weight: 1 copies, <1 is Polyak")
    exploration_initial_eps: float = hp(1.0, ge=0, le=1, help="epsilon at step 0")
    exploration_final_eps: float = hp(0.05, ge=0, le=1, help="epsilon after the decay")
    exploration_steps: int = hp(10_000, ge=0, help="acting steps (over all envs) of epsilon decay")
    loss: str = hp("huber", choices=("huber", "mse"), help="TD loss")
    max_grad_norm: float = hp(10.0, gt=0, help="clip gradients to this global norm")
    adam_epsilon: float = hp(1e-7, gt=0, help="Adam's epsilon")
    hidden_sizes: tuple[int, ...] = hp((64, 64), ge=1, help="MLP widths (CNN: dense width)")
    activation: str = hp("relu", choices=("relu", "tanh", "elu"), help="hidden activation")
    jit_compile: bool = hp(False, help="compile the update step with XLA")
    mixed_precision: bool | str = hp(
        False,
        choices=MIXED_PRECISION_CHOICES,
        help="bfloat16 torso, float32 heads and losses (auto: where the hardware is fast)",
    )

    def problems(self) -> list[str]:
        """Problems that involve several fields."""
        out = []
        if self.buffer_size < self.batch_size:
            out.append(
                f"buffer_size ({self.buffer_size}) must be >= batch_size ({self.batch_size})"
            )
        if self.exploration_final_eps > self.exploration_initial_eps:
            out.append("exploration_final_eps must be <= exploration_initial_eps")
        return out

    def run_problems(self, run: RunConfig) -> list[str]:
        """Problems that involve the run settings."""
        out = []
        if self.learning_starts >= run.total_steps:
            out.append(
                f"learning_starts ({self.learning_starts}) must be < total_steps "
                f"({run.total_steps}), or the agent never learns"
            )
        if self.buffer_size < 2 * run.num_envs:
            out.append(f"buffer_size ({self.buffer_size}) must be >= 2 * num_envs")
        return out


class DQN(SaveLoad, Agent):
    """Deep Q-Network with a target network, epsilon-greedy exploration and replay.

    Loss, for a sampled transition (s, a, r, s', discount = gamma * (1 - terminated)) with
    importance weight w (1 for uniform replay):
        y = r + discount * max_a' Q_target(s', a')
        L = w * huber(y - Q(s, a))
    Truncated transitions bootstrap (the replay returns the true final observation as s').
    Variants override ``next_state_target`` (Double DQN) or ``network_kind`` (Dueling).

    Args:
        observation_space: single-env observation space (``Box``).
        action_space: single-env action space (``Discrete``).
        config: hyperparameters.
        seed: seeds the exploration generator (seed TF/Keras globally for the weights).
    """

    name: ClassVar[str] = "dqn"
    on_policy: ClassVar[bool] = False
    config_cls: ClassVar[type] = DQNConfig
    network_kind: ClassVar[str] = "q"

    def __init__(
        self,
        observation_space: gym.spaces.Space,
        action_space: gym.spaces.Space,
        config: DQNConfig | None = None,
        seed: int | None = None,
    ) -> None:
        self.config = config = config or self.config_cls()
        self.observation_space, self.action_space = observation_space, action_space
        self.num_actions = require_discrete_actions(type(self).__name__, action_space)
        obs_shape = require_box_observations(type(self).__name__, observation_space)
        spec = network_spec(
            self.network_kind,
            observation_space,
            self.num_actions,
            config.hidden_sizes,
            config.activation,
            mixed_precision=config.mixed_precision,
        )
        self.q_network: Network = build_network(spec)
        # Acting reads a bfloat16 twin under mixed precision (see ``Network.acting_copy``).
        self.acting_network = self.q_network.acting_copy()
        self.target_network: Network = build_network(spec)
        self.target_network.set_weights(self.q_network.get_weights())
        self.optimizer = keras.optimizers.Adam(config.learning_rate, epsilon=config.adam_epsilon)
        self.optimizer.build(self.q_network.trainable_variables)
        self.updates = tf.Variable(0, dtype=tf.int64, trainable=False, name="updates")
        self.guard = FiniteGuard()
        # The schedule runs in Python; this variable carries its position into checkpoints.
        self.explore_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="explore_steps")
        self.rng = np.random.default_rng(seed)
        self.explore_policy = EpsilonGreedyPolicy(
            self.q_values,
            self.num_actions,
            LinearSchedule(
                config.exploration_initial_eps,
                config.exploration_final_eps,
                config.exploration_steps,
            ),
            self.rng,
        )
        obs_dtype = tf.as_dtype(observation_space.dtype)
        stacked = tf.TensorSpec([None, None, *obs_shape], obs_dtype)  # [G, B, ...]
        scalars = tf.TensorSpec([None, None], tf.float32)  # [G, B]
        self._update_fn = CompiledUpdate(
            self._update_steps,
            Batch(
                obs=stacked,
                action=tf.TensorSpec([None, None], tf.int64),
                reward=scalars,
                next_obs=stacked,
                terminated=None,  # in discount
                truncated=None,  # bootstrapped: next_obs is the true final observation
                discount=scalars,
                weights=scalars,
                indices=None,
            ),
            self.q_network,
            self.guard,
            jit_compile=config.jit_compile,
        )
        self._q_fn = CompiledStep(
            self.acting_network.call,
            input_signature=[tf.TensorSpec([None, *obs_shape], obs_dtype)],
            lazy=True,
        )

    # -- storage and schedule --------------------------------------------------------------
    def make_storage(
        self,
        num_envs: int,
        observation_space: gym.spaces.Space,
        action_space: gym.spaces.Space,
        *,
        frame_stack: int = 1,
        padding: str = "reset",
        seed: int | None = None,
    ) -> ReplayBuffer:
        """A uniform replay of ``buffer_size`` transitions whose batches carry ``gamma``."""
        return ReplayBuffer(
            self.config.buffer_size,
            num_envs,
            observation_space,
            action_space,
            frame_stack=frame_stack,
            padding=padding,
            seed=seed,
            gamma=self.config.gamma,
        )

    def next_batch(
        self, storage: Any, env_steps: int, last_obs: np.ndarray, schedule: dict[str, Any]
    ) -> Batch | None:
        """``[G, B]`` batches every ``train_frequency`` env steps after ``learning_starts``.

        G is ``gradient_steps`` times the number of periods that passed since the last
        update (more than one when a step of many envs crosses several), fused into one
        compiled call. ``schedule["next_update"]`` is the env step of the next update.
        """
        cfg = self.config
        due_at = schedule.setdefault("next_update", max(cfg.learning_starts, cfg.train_frequency))
        if env_steps < due_at or not storage.can_sample():
            return None
        periods = 1 + (env_steps - due_at) // cfg.train_frequency
        schedule["next_update"] = due_at + periods * cfg.train_frequency
        return storage.sample(cfg.batch_size, num_batches=periods * cfg.gradient_steps)

    # -- acting ----------------------------------------------------------------------------
    def q_values(self, obs: np.ndarray) -> np.ndarray:
        """Q-values ``[N, A]`` of the online network (numpy path for small MLPs)."""
        if self.q_network.supports_numpy:
            return self.q_network.numpy_forward(obs)
        return self._q_fn(obs).numpy()

    def act(self, obs: np.ndarray, *, explore: bool) -> np.ndarray:
        """Epsilon-greedy actions ``[N]`` when exploring, greedy ones otherwise."""
        if explore:
            return self.explore_policy(obs)
        return np.argmax(self.q_values(obs), axis=-1)

    def acting_rule(self) -> dict[str, Any]:
        """Epsilon-greedy with this agent's schedule and its position (see ``Agent``)."""
        schedule = self.explore_policy.epsilon
        return {
            "rule": "epsilon_greedy",
            "schedule": [schedule.initial, schedule.final, schedule.duration],
            "step": self.explore_policy.step,
        }

    def advance_exploration(self, steps: int) -> None:
        """Move the epsilon schedule on by ``steps`` acting steps taken elsewhere."""
        self.explore_policy.step += steps

    @property
    def epsilon(self) -> float:
        """The current exploration rate."""
        return self.explore_policy.epsilon(self.explore_policy.step)

    # -- learning --------------------------------------------------------------------------
    def next_state_target(
        self, r_t: tf.Tensor, discount_t: tf.Tensor, obs_t: tf.Tensor
    ) -> tf.Tensor:
        """TD target ``[B]``: r_t + discount_t * max_a Q_target(obs_t, a)."""
        return losses.q_learning_target(r_t, discount_t, self.target_network(obs_t))

    def _update_steps(self, batch: Batch) -> dict[str, tf.Tensor]:
        """G gradient steps on ``[G, B, ...]`` batches, fused into one compiled call."""
        cfg = self.config
        variables = self.q_network.trainable_variables
        num_steps = tf.shape(batch.obs)[0]
        totals = tf.zeros(3)  # loss, mean Q, gradient norm
        for g in tf.range(num_steps):
            target = self.next_state_target(
                batch.reward[g], batch.discount[g], batch.next_obs[g]
            )  # [B]
            with tf.GradientTape() as tape:
                q_tm1 = self.q_network(batch.obs[g])  # [B, A]
                loss, _ = losses.td_loss(
                    q_tm1, batch.action[g], target, cfg.loss, weights=batch.weights[g]
                )
            grads = tape.gradient(loss, variables)
            norm, applied = self.guard.apply(
                self.optimizer, grads, variables, loss, cfg.max_grad_norm
            )
            if applied:  # a non-finite step changes nothing, the target schedule included
                self.updates.assign_add(1)
                if self.updates % cfg.target_update_period == 0:
                    polyak_update(self.q_network.variables, self.target_network.variables, cfg.tau)
            totals += tf.stack([loss, tf.reduce_mean(q_tm1), norm])
        means = totals / tf.cast(num_steps, tf.float32)
        return {"train/loss": means[0], "train/q_mean": means[1], "train/grad_norm": means[2]}

    def update(self, batch: Batch) -> dict[str, float]:
        """Learn from a ``Batch`` of ``[B, ...]`` or ``[G, B, ...]`` (G fused steps)."""
        if np.ndim(batch.reward) == 1:
            batch = Batch(*(None if x is None else np.asarray(x)[None] for x in batch))
        out = self._update_fn(batch)
        out["train/epsilon"] = self.epsilon
        out["train/updates"] = float(self.updates.numpy())
        return out

    # -- state -----------------------------------------------------------------------------
    def checkpoint_items(self) -> dict[str, Any]:
        """Online and target networks, optimizer, update and exploration counters."""
        return {
            "q_network": self.q_network,
            "target_network": self.target_network,
            "optimizer": self.optimizer,
            "updates": self.updates,
            "explore_steps": self.explore_steps,
        }

    def before_checkpoint(self) -> None:
        """Store the exploration schedule's position."""
        self.explore_steps.assign(self.explore_policy.step)

    def after_restore(self) -> None:
        """Resume the exploration schedule and act with the restored weights."""
        self.explore_policy.step = int(self.explore_steps.numpy())
        super().after_restore()

    def policy_network(self) -> Network:
        """The online Q-network: greedy in its Q-values."""
        return self.q_network


class DoubleDQN(DQN):
    """Double DQN: the online network picks the next action, the target network values it.

    y = r + gamma * (1 - terminated) * Q_target(s', argmax_a' Q(s', a'))
    """

    name: ClassVar[str] = "double_dqn"

    def next_state_target(
        self, r_t: tf.Tensor, discount_t: tf.Tensor, obs_t: tf.Tensor
    ) -> tf.Tensor:
        """Double-Q target ``[B]``."""
        return losses.double_q_learning_target(
            r_t, discount_t, self.target_network(obs_t), self.q_network(obs_t)
        )


class DuelingDQN(DQN):
    """Dueling DQN: DQN with Q(s, a) = V(s) + A(s, a) - mean_a' A(s, a') as its network."""

    name: ClassVar[str] = "dueling_dqn"
    network_kind: ClassVar[str] = "dueling_q"
