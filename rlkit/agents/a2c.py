"""A2C: synchronous advantage actor-critic (Mnih et al., 2016) with GAE(lambda)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import gymnasium as gym
import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from rlkit import losses
from rlkit.agents.common import (
    CompiledStep,
    FiniteGuard,
    network_spec,
    require_box_observations,
    require_discrete_actions,
)
from rlkit.config import hp
from rlkit.core import Agent
from rlkit.networks import Network, build_network
from rlkit.policies import sample_categorical
from rlkit.precision import MIXED_PRECISION_CHOICES
from rlkit.rollout import RolloutBuffer
from rlkit.types import Rollout

tfd = tfp.distributions


@dataclasses.dataclass(frozen=True)
class A2CConfig:
    """Hyperparameters of A2C."""

    learning_rate: float = hp(7e-4, gt=0, help="optimizer step size")
    gamma: float = hp(0.99, gt=0, le=1, help="discount factor")
    gae_lambda: float = hp(1.0, ge=0, le=1, help="GAE lambda (1: Monte-Carlo advantages)")
    n_steps: int = hp(5, ge=1, help="steps per env in each rollout")
    ent_coef: float = hp(0.0, ge=0, help="entropy bonus weight")
    vf_coef: float = hp(0.5, ge=0, help="value loss weight")
    max_grad_norm: float = hp(0.5, gt=0, help="clip gradients to this global norm")
    optimizer: str = hp("rmsprop", choices=("rmsprop", "adam"), help="optimizer")
    optimizer_eps: float = hp(1e-10, gt=0, help="RMSprop/Adam epsilon (Keras: inside the sqrt)")
    normalize_advantage: bool = hp(False, help="standardise advantages per rollout")
    hidden_sizes: tuple[int, ...] = hp((64, 64), ge=1, help="MLP widths (CNN: dense width)")
    activation: str = hp("tanh", choices=("relu", "tanh", "elu"), help="hidden activation")
    share_torso: bool = hp(True, help="policy and value heads share one torso")
    jit_compile: bool = hp(False, help="compile the update step with XLA")
    mixed_precision: bool | str = hp(
        False,
        choices=MIXED_PRECISION_CHOICES,
        help="bfloat16 torso, float32 heads and losses (auto: where the hardware is fast)",
    )


def make_optimizer(name: str, learning_rate: float, eps: float) -> keras.optimizers.Optimizer:
    """RMSprop as in the A3C paper (decay 0.99) or Adam."""
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate, rho=0.99, epsilon=eps)
    return keras.optimizers.Adam(learning_rate, epsilon=eps)


class A2C(Agent):
    """Advantage actor-critic with a shared torso, on ``[n_steps, num_envs]`` rollouts.

    For each valid row t of a rollout:
        A_t = GAE(lambda) of delta_t = r_t + gamma (1 - terminated_t) V(s_{t+1}) - V(s_t)
        L = -log pi(a_t|s_t) A_t + vf_coef (A_t + V(s_t) - V_theta(s_t))^2 - ent_coef H[pi(.|s_t)]
    Truncated rows bootstrap from the true final observation's value; autoreset rows are
    masked out of every term.

    Args:
        observation_space: single-env observation space (``Box``).
        action_space: single-env action space (``Discrete``).
        config: hyperparameters.
        seed: seeds the action-sampling generator.
    """

    name: ClassVar[str] = "a2c"
    on_policy: ClassVar[bool] = True
    config_cls: ClassVar[type] = A2CConfig

    def __init__(
        self,
        observation_space: gym.spaces.Space,
        action_space: gym.spaces.Space,
        config: A2CConfig | None = None,
        seed: int | None = None,
    ) -> None:
        self.config = config = config or self.config_cls()
        self.num_actions = require_discrete_actions(type(self).__name__, action_space)
        obs_shape = require_box_observations(type(self).__name__, observation_space)
        self.observation_space, self.action_space = observation_space, action_space
        spec = network_spec(
            "actor_critic",
            observation_space,
            self.num_actions,
            config.hidden_sizes,
            config.activation,
            share_torso=config.share_torso,
            mixed_precision=config.mixed_precision,
        )
        self.network: Network = build_network(spec)
        # Acting reads a bfloat16 twin under mixed precision (before the update traces: the
        # update refreshes it).
        self.acting_network = self.network.acting_copy()
        self.optimizer = make_optimizer(
            config.optimizer, config.learning_rate, config.optimizer_eps
        )
        self.optimizer.build(self.network.trainable_variables)
        self.updates = tf.Variable(0, dtype=tf.int64, trainable=False, name="updates")
        self.guard = FiniteGuard()
        self.rng = np.random.default_rng(seed)
        obs_dtype = tf.as_dtype(observation_space.dtype)
        scalars = tf.TensorSpec([None, None], tf.float32)
        self._update_fn = CompiledStep(
            self._update_step,
            jit_compile=config.jit_compile,
            input_signature=[
                tf.TensorSpec([None, None, *obs_shape], obs_dtype),
                tf.TensorSpec([None, None], tf.int64),
                scalars,
                scalars,
                scalars,
                scalars,
                tf.TensorSpec([None, *obs_shape], obs_dtype),
            ],
        )
        self._forward_fn = CompiledStep(
            self.acting_network.call,
            input_signature=[tf.TensorSpec([None, *obs_shape], obs_dtype)],
            lazy=True,
        )

    def make_rollout(self, runner: Any) -> RolloutBuffer:
        """Rollout storage for the on-policy loop: ``n_steps`` steps of every env."""
        return RolloutBuffer(
            self.config.n_steps, runner.num_envs, runner.observation_space, runner.action_space
        )

    # -- acting ----------------------------------------------------------------------------
    def logits_and_values(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(logits [N, A], values [N])`` (numpy path for small MLPs)."""
        if self.network.supports_numpy:
            return self.network.numpy_forward(obs)
        logits, values = self._forward_fn(obs)
        return logits.numpy(), values.numpy()

    def act(self, obs: np.ndarray, *, explore: bool) -> np.ndarray:
        """Sample from pi(.|s) when exploring; the most likely action otherwise."""
        if self.network.supports_numpy:
            logits, _ = self.network.numpy_forward(obs, value=False)
        else:
            logits, _ = self.logits_and_values(obs)
        if explore:
            return sample_categorical(logits, self.rng)
        return np.argmax(logits, axis=-1)

    def acting_rule(self) -> dict[str, Any]:
        """Sample from softmax(logits) (see ``Agent``)."""
        return {"rule": "categorical"}

    # -- learning --------------------------------------------------------------------------
    def _update_step(
        self,
        obs: tf.Tensor,
        action: tf.Tensor,
        reward: tf.Tensor,
        terminated: tf.Tensor,
        truncated: tf.Tensor,
        valid: tf.Tensor,
        last_obs: tf.Tensor,
    ) -> tuple[dict[str, tf.Tensor], list[tf.Tensor]]:
        """One gradient step on a ``[T, N]`` rollout (compiled once in ``__init__``)."""
        steps, envs = tf.shape(obs)[0], tf.shape(obs)[1]
        flat_obs = tf.reshape(obs, tf.concat([[steps * envs], tf.shape(obs)[2:]], 0))
        all_obs = tf.concat([flat_obs, last_obs], axis=0)  # [(T + 1) N, ...]
        variables = self.network.trainable_variables
        with tf.GradientTape() as tape:
            logits, values = self.network(all_obs)
            dist = tfd.Categorical(logits=tf.reshape(logits[: steps * envs], [steps, envs, -1]))
            values = tf.reshape(values, [steps + 1, envs])  # [T + 1, N]; row T is last_obs
            loss, metrics = self.rollout_loss(
                dist, values, action, reward, terminated, truncated, valid
            )
        grads = tape.gradient(loss, variables)
        norm, applied = self.guard.apply(
            self.optimizer, grads, variables, loss, self.config.max_grad_norm
        )
        self.updates.assign_add(tf.cast(applied, tf.int64))
        metrics = {"train/loss": loss, **metrics, "train/grad_norm": norm, **self.guard.metrics()}
        self.network.sync_acting_copy()
        return metrics, self.network.numpy_weight_outputs()

    def rollout_loss(
        self,
        dist: tfd.Categorical,
        values: tf.Tensor,
        action: tf.Tensor,
        reward: tf.Tensor,
        terminated: tf.Tensor,
        truncated: tf.Tensor,
        valid: tf.Tensor,
    ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """The A2C loss of a rollout.

        Args:
            dist: the policy at each row, batch shape ``[T, N]``.
            values: V of each row's observation and, in row T, of ``last_obs``: ``[T + 1, N]``.
            action: ``[T, N]``.
            reward: ``[T, N]``.
            terminated: ``[T, N]``.
            truncated: ``[T, N]``.
            valid: ``[T, N]``, 0 on autoreset rows.

        Returns:
            ``(loss, metrics)``.
        """
        cfg = self.config
        v_tm1, v_t = values[:-1], tf.stop_gradient(values[1:])  # [T, N] each
        discount_t = cfg.gamma * (1.0 - terminated)
        continue_t = discount_t * (1.0 - truncated)
        advantages = losses.generalized_advantage_estimation(
            reward, tf.stop_gradient(v_tm1), v_t, discount_t, continue_t, cfg.gae_lambda
        )  # [T, N]
        returns = advantages + tf.stop_gradient(v_tm1)
        if cfg.normalize_advantage:
            advantages = losses.masked_standardize(advantages, valid)
        policy_loss = losses.policy_gradient_loss(dist.log_prob(action), advantages, valid)
        value_loss = losses.masked_mean(tf.square(returns - v_tm1), valid)
        entropy = losses.masked_mean(dist.entropy(), valid)
        loss = policy_loss + cfg.vf_coef * value_loss - cfg.ent_coef * entropy
        metrics = {
            "train/policy_loss": policy_loss,
            "train/value_loss": value_loss,
            "train/entropy": entropy,
        }
        return loss, metrics

    def update(self, batch: Rollout) -> dict[str, float]:
        """One gradient step on a ``[T, N]`` rollout."""
        metrics, weights = self._update_fn(
            batch.obs,
            batch.action,
            batch.reward,
            batch.terminated,
            batch.truncated,
            batch.valid,
            batch.last_obs,
        )
        if self.network.supports_numpy:
            self.network.refresh_numpy(weights)
        return {k: float(v) for k, v in metrics.items()}

    # -- state -----------------------------------------------------------------------------
    def checkpoint_items(self) -> dict[str, Any]:
        """Network, optimizer and update counter."""
        return {"network": self.network, "optimizer": self.optimizer, "updates": self.updates}

    def policy_network(self) -> Network:
        """The actor-critic network (its logits decide actions)."""
        return self.network
