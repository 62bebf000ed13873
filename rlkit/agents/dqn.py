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
from rlkit.prioritized import PrioritizedReplayBuffer
from rlkit.replay import ReplayBuffer
from rlkit.types import Batch

DISTRIBUTIONAL = ("none", "c51", "qr")
EPSILON_KEYS = ("exploration_initial_eps", "exploration_final_eps", "exploration_steps")


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
    n_step: int = hp(1, ge=1, help="steps summed in each TD target (n-step returns)")
    prioritized_replay: bool = hp(False, help="sample transitions by their TD error (PER)")
    per_alpha: float = hp(0.6, ge=0, le=1, help="PER: how much priorities count (0: uniform)")
    per_beta0: float = hp(
        0.4, ge=0, le=1, help="PER: importance-weight exponent at the start, annealed to 1"
    )
    per_eps: float = hp(1e-6, gt=0, help="PER: added to every priority")
    distributional: str = hp(
        "none", choices=DISTRIBUTIONAL, help="return distribution: none, c51 or qr (QR-DQN)"
    )
    num_atoms: int = hp(51, ge=2, help="c51: atoms of the support; qr: quantiles")
    v_min: float = hp(-10.0, help="c51: smallest return of the support")
    v_max: float = hp(10.0, help="c51: largest return of the support")
    noisy: bool = hp(False, help="noisy-net layers explore instead of epsilon-greedy")
    noisy_sigma0: float = hp(0.5, gt=0, help="noisy nets: initial noise scale")
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
        if self.v_min >= self.v_max:
            out.append(f"v_min ({self.v_min}) must be < v_max ({self.v_max})")
        return out

    def explicit_problems(self, explicit: set[str]) -> list[str]:
        """Problems with the settings the user gave (config file or ``--set``)."""
        chosen = sorted(explicit & set(EPSILON_KEYS))
        if self.noisy and chosen:
            return [
                f"noisy: noisy nets replace epsilon-greedy exploration, but you set {chosen}; "
                "drop them or set noisy=false"
            ]
        return []

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
        if self.noisy and run.runner == "ray":
            out.append(
                "noisy: Ray workers act with epsilon-greedy copies of the policy, not noisy "
                "nets; use runner=local or noisy=false"
            )
        return out


def head_spec(config: DQNConfig) -> dict[str, Any]:
    """Network spec keys of the Q head: distributional and noisy settings, if any."""
    spec: dict[str, Any] = {}
    if config.distributional != "none":
        spec.update(distributional=config.distributional, num_atoms=config.num_atoms)
        if config.distributional == "c51":
            spec.update(v_min=config.v_min, v_max=config.v_max)
    if config.noisy:
        spec.update(noisy=True, noisy_sigma0=config.noisy_sigma0)
    return spec


class DQN(SaveLoad, Agent):
    """Deep Q-Network with a target network, epsilon-greedy exploration and replay.

    Loss, for a sampled transition (s, a, r, s', discount = gamma * (1 - terminated)) with
    importance weight w (1 for uniform replay):
        y = r + discount * max_a' Q_target(s', a')
        L = w * huber(y - Q(s, a))
    Truncated transitions bootstrap (the replay returns the true final observation as s').
    Variants override ``next_state_target`` and ``next_action_values`` (Double DQN) or
    ``network_kind`` (Dueling).

    Rainbow's components are settings that combine with every variant: ``n_step`` (the
    replay sums n rewards and sets discount = gamma^k (1 - terminated)), prioritized
    replay (w are importance weights and each gradient step's |TD error| or per-sample
    loss becomes its transitions' priority before the next step is sampled), a
    distributional head (``c51``: cross-entropy to the projected target distribution;
    ``qr``: quantile Huber loss; the bootstrap action is the argmax of the expected
    values) and noisy nets (fresh noise in every learning and exploring forward pass;
    greedy acting and evaluation use the mean weights; with a numpy path, exploring noise
    is drawn from the agent's ``rng``, see ``noisy_q_values``).

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

    @classmethod
    def check_action_space(cls, action_space: gym.spaces.Space) -> None:
        """Discrete actions numbered from 0 only."""
        require_discrete_actions(cls.__name__, action_space)

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
            **head_spec(config),
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
        # Noisy nets draw fresh noise in every forward pass that learns or explores.
        self.noise: dict[str, bool] = {"noise": True} if config.noisy else {}
        self.horizon = 0  # the run's budget (set_horizon): PER's beta anneals over it
        self._priorities: np.ndarray | None = None  # of the last update, for after_update
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
        obs_spec = [tf.TensorSpec([None, *obs_shape], obs_dtype)]
        self._q_fn = CompiledStep(self.acting_network.call, input_signature=obs_spec, lazy=True)
        # Without a numpy path (the Nature CNN, mixed precision), noisy acting goes through
        # the online network itself: its noise stream is in the checkpoints (a
        # mixed-precision acting twin's would not be).
        self._noisy_q_fn = CompiledStep(
            lambda obs: self.q_network(obs, noise=True), input_signature=obs_spec, lazy=True
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
        """A replay of ``buffer_size`` transitions (prioritized if asked), n-step returns."""
        cfg = self.config
        common = {
            "frame_stack": frame_stack,
            "padding": padding,
            "seed": seed,
            "gamma": cfg.gamma,
            "n_step": cfg.n_step,
        }
        if cfg.prioritized_replay:
            return PrioritizedReplayBuffer(
                cfg.buffer_size,
                num_envs,
                observation_space,
                action_space,
                alpha=cfg.per_alpha,
                eps=cfg.per_eps,
                **common,
            )
        return ReplayBuffer(cfg.buffer_size, num_envs, observation_space, action_space, **common)

    def set_horizon(self, total_steps: int) -> None:
        """The run's budget: prioritized replay's beta reaches 1 at its end."""
        self.horizon = int(total_steps)

    def per_beta(self, env_steps: int) -> float:
        """PER's importance-weight exponent: ``per_beta0`` at step 0, 1 at the budget's end."""
        b0 = self.config.per_beta0
        progress = min(1.0, env_steps / self.horizon) if self.horizon else 0.0
        return b0 + (1.0 - b0) * progress

    def next_batch(
        self, storage: Any, env_steps: int, last_obs: np.ndarray, schedule: dict[str, Any]
    ) -> Batch | None:
        """``[G, B]`` batches every ``train_frequency`` env steps after ``learning_starts``.

        G is ``gradient_steps`` times the number of periods that passed since the last
        update (more than one when a step of many envs crosses several), fused into one
        compiled call. ``schedule["next_update"]`` is the env step of the next update.
        """
        cfg = self.config
        if cfg.prioritized_replay and schedule.get("pending", 0):
            # Each gradient step is sampled after the priorities of the one before it.
            schedule["pending"] -= 1
            beta = self.per_beta(env_steps)
            return storage.sample(cfg.batch_size, num_batches=1, beta=beta)
        due_at = schedule.setdefault("next_update", max(cfg.learning_starts, cfg.train_frequency))
        if env_steps < due_at or not storage.can_sample():
            return None
        periods = 1 + (env_steps - due_at) // cfg.train_frequency
        schedule["next_update"] = due_at + periods * cfg.train_frequency
        steps = periods * cfg.gradient_steps
        if cfg.prioritized_replay:
            schedule["pending"] = steps - 1
            return storage.sample(cfg.batch_size, num_batches=1, beta=self.per_beta(env_steps))
        return storage.sample(cfg.batch_size, num_batches=steps)

    # -- acting ----------------------------------------------------------------------------
    def q_values(self, obs: np.ndarray) -> np.ndarray:
        """Q-values ``[N, A]`` of the online network (numpy path for small networks).

        A noisy network's mean weights.
        """
        if self.q_network.supports_numpy:
            return self.q_network.numpy_forward(obs)
        return self._q_fn(obs).numpy()

    def noisy_q_values(self, obs: np.ndarray) -> np.ndarray:
        """Q-values ``[N, A]`` of freshly drawn noisy weights (one draw for the batch).

        With a numpy path the noise comes from the agent's generator ``rng`` (in checkpoints,
        so a resumed run draws the same noise); otherwise from the noisy layers' TF stream.
        """
        if self.q_network.supports_numpy:
            return self.q_network.numpy_forward(obs, noise_rng=self.rng)
        return self._noisy_q_fn(obs).numpy()

    def act(self, obs: np.ndarray, *, explore: bool) -> np.ndarray:
        """Actions ``[N]``: greedy, or epsilon-greedy when exploring.

        With noisy nets, exploring is greedy in the Q-values of freshly drawn noisy weights.
        """
        if explore and self.config.noisy:
            self.explore_policy.step += len(obs)
            return np.argmax(self.noisy_q_values(obs), axis=-1)
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
        """The current exploration rate (0 with noisy nets)."""
        if self.config.noisy:
            return 0.0
        return self.explore_policy.epsilon(self.explore_policy.step)

    # -- learning --------------------------------------------------------------------------
    def next_state_target(
        self, r_t: tf.Tensor, discount_t: tf.Tensor, obs_t: tf.Tensor
    ) -> tf.Tensor:
        """TD target ``[B]``: r_t + discount_t * max_a Q_target(obs_t, a)."""
        return losses.q_learning_target(r_t, discount_t, self.target_network(obs_t, **self.noise))

    def next_action_values(self, obs_t: tf.Tensor, q_t_target: tf.Tensor) -> tf.Tensor:
        """Q-values ``[B, A]`` whose argmax picks a distributional target's bootstrap action.

        The target network's own (``q_t_target``); Double DQN asks the online network.
        """
        return q_t_target

    def bootstrap_target(
        self, r_t: tf.Tensor, discount_t: tf.Tensor, obs_t: tf.Tensor
    ) -> tf.Tensor:
        """What the online network learns towards.

        Values ``[B]``, or for a distributional head the target distribution (C51:
        probabilities ``[B, K]``; QR: quantiles ``[B, N]``).
        """
        kind = self.config.distributional
        if kind == "none":
            return self.next_state_target(r_t, discount_t, obs_t)
        params = self.target_network.distribution(obs_t, **self.noise)  # [B, A, K]
        selector = self.next_action_values(obs_t, self.target_network.q_from_distribution(params))
        if kind == "c51":
            return losses.c51_target(self.q_network.support, r_t, discount_t, params, selector)
        return losses.qr_target(r_t, discount_t, params, selector)

    def online_loss(
        self, obs: tf.Tensor, action: tf.Tensor, target: tf.Tensor, weights: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """``(loss [], per-sample loss or |TD error| [B] (new priorities), mean Q [])``."""
        cfg = self.config
        if cfg.distributional == "none":
            q_tm1 = self.q_network(obs, **self.noise)  # [B, A]
            loss, td_error = losses.td_loss(q_tm1, action, target, cfg.loss, weights=weights)
            return loss, tf.abs(td_error), tf.reduce_mean(q_tm1)
        params = self.q_network.distribution(obs, **self.noise)  # [B, A, K]
        q_mean = tf.reduce_mean(self.q_network.q_from_distribution(params))
        if cfg.distributional == "c51":
            loss, per_item = losses.categorical_td_loss(params, action, target, weights=weights)
        else:
            taken = tf.gather(params, tf.cast(action, tf.int32), axis=1, batch_dims=1)  # [B, N]
            loss, per_item = losses.quantile_huber_loss(taken, target, weights=weights)
        return loss, per_item, q_mean

    def _update_steps(self, batch: Batch) -> dict[str, tf.Tensor]:
        """G gradient steps on ``[G, B, ...]`` batches, fused into one compiled call."""
        cfg = self.config
        variables = self.q_network.trainable_variables
        num_steps = tf.shape(batch.obs)[0]
        totals = tf.zeros(3)  # loss, mean Q, gradient norm
        per_item = tf.TensorArray(tf.float32, size=num_steps)
        for g in tf.range(num_steps):
            target = self.bootstrap_target(batch.reward[g], batch.discount[g], batch.next_obs[g])
            with tf.GradientTape() as tape:
                loss, errors, q_mean = self.online_loss(
                    batch.obs[g], batch.action[g], target, batch.weights[g]
                )
            grads = tape.gradient(loss, variables)
            norm, applied = self.guard.apply(
                self.optimizer, grads, variables, loss, cfg.max_grad_norm
            )
            if applied:  # a non-finite step changes nothing, the target schedule included
                self.updates.assign_add(1)
                if self.updates % cfg.target_update_period == 0:
                    polyak_update(self.q_network.variables, self.target_network.variables, cfg.tau)
            totals += tf.stack([loss, q_mean, norm])
            if cfg.prioritized_replay:
                per_item = per_item.write(g, errors)
        means = totals / tf.cast(num_steps, tf.float32)
        out = {"train/loss": means[0], "train/q_mean": means[1], "train/grad_norm": means[2]}
        if cfg.prioritized_replay:
            out["priorities"] = per_item.stack()  # [G, B]
        return out

    def update(self, batch: Batch) -> dict[str, float]:
        """Learn from a ``Batch`` of ``[B, ...]`` or ``[G, B, ...]`` (G fused steps)."""
        if np.ndim(batch.reward) == 1:
            batch = Batch(*(None if x is None else np.asarray(x)[None] for x in batch))
        out = self._update_fn(batch)
        self._priorities = out.pop("priorities", None)
        out["train/epsilon"] = self.epsilon
        out["train/updates"] = float(self.updates.numpy())
        return out

    def after_update(self, storage: Any, batch: Batch) -> None:
        """Prioritized replay: the sampled transitions' new priorities (their TD errors)."""
        if self.config.prioritized_replay and self._priorities is not None:
            storage.update_priorities(
                np.reshape(batch.indices, -1), np.reshape(self._priorities, -1)
            )
            self._priorities = None

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
            r_t,
            discount_t,
            self.target_network(obs_t, **self.noise),
            self.q_network(obs_t, **self.noise),
        )

    def next_action_values(self, obs_t: tf.Tensor, q_t_target: tf.Tensor) -> tf.Tensor:
        """The online network picks the bootstrap action of a distributional target."""
        return self.q_network(obs_t, **self.noise)


class DuelingDQN(DQN):
    """Dueling DQN: DQN with Q(s, a) = V(s) + A(s, a) - mean_a' A(s, a') as its network."""

    name: ClassVar[str] = "dueling_dqn"
    network_kind: ClassVar[str] = "dueling_q"


@dataclasses.dataclass(frozen=True)
class RainbowConfig(DQNConfig):
    """DQN settings with every Rainbow component on (Hessel et al., 2018).

    Multi-step returns (n = 3), prioritized replay (alpha 0.5, beta 0.4 -> 1), C51 (51
    atoms on [-10, 10]) and noisy nets (sigma0 0.5), with Double DQN's target and the
    dueling head (the agent class). The epsilon settings stay DQN's: they act only when
    ``noisy`` is turned off.
    """

    n_step: int = hp(3, ge=1, help="steps summed in each TD target (n-step returns)")
    prioritized_replay: bool = hp(True, help="sample transitions by their TD error (PER)")
    per_alpha: float = hp(0.5, ge=0, le=1, help="PER: how much priorities count (0: uniform)")
    distributional: str = hp(
        "c51", choices=DISTRIBUTIONAL, help="return distribution: none, c51 or qr (QR-DQN)"
    )
    noisy: bool = hp(True, help="noisy-net layers explore instead of epsilon-greedy")


class Rainbow(DoubleDQN):
    """Rainbow (Hessel et al., 2018): all of DQN's improvements in one agent.

    Double DQN's target on a dueling head, plus n-step returns, prioritized replay, a C51
    head and noisy nets (``RainbowConfig``); each can be switched off by its setting, for
    ablations.
    """

    name: ClassVar[str] = "rainbow"
    config_cls: ClassVar[type] = RainbowConfig
    network_kind: ClassVar[str] = "dueling_q"
