"""The base of the policy-gradient agents: actor-critic network, acting, optimizer, update.

A2C and REINFORCE are siblings below ``PolicyGradient``: each adds its config, its storage
(``make_storage``) and its loss (``loss``, a call into ``rlkit.losses``).
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from rlkit import losses
from rlkit.agent_io import SaveLoad
from rlkit.agents.common import (
    CompiledStep,
    CompiledUpdate,
    FiniteGuard,
    make_optimizer,
    network_spec,
    require_box_observations,
    require_discrete_actions,
)
from rlkit.core import Agent
from rlkit.networks import Network, build_network
from rlkit.policies import sample_categorical
from rlkit.types import Rollout

tfd = tfp.distributions


class PolicyGradient(SaveLoad, Agent):
    """An actor-critic network trained by one gradient step per rollout.

    The config must have ``learning_rate``, ``max_grad_norm``, ``optimizer``,
    ``optimizer_eps``, ``hidden_sizes``, ``activation``, ``share_torso``, ``jit_compile``
    and ``mixed_precision``; the rest is the subclass's.

    Args:
        observation_space: single-env observation space (``Box``).
        action_space: single-env action space (``Discrete``).
        config: hyperparameters (``config_cls()`` if None).
        seed: seeds the action-sampling generator.
    """

    on_policy: ClassVar[bool] = True

    def __init__(
        self,
        observation_space: gym.spaces.Space,
        action_space: gym.spaces.Space,
        config: Any = None,
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
        scalars = tf.TensorSpec([None, None], tf.float32)  # [T, N]
        self._update_fn = CompiledUpdate(
            self._update_step,
            Rollout(
                obs=tf.TensorSpec([None, None, *obs_shape], obs_dtype),
                action=tf.TensorSpec([None, None], tf.int64),
                reward=scalars,
                terminated=scalars,
                truncated=scalars,
                valid=scalars,
                last_obs=tf.TensorSpec([None, *obs_shape], obs_dtype),
            ),
            self.network,
            self.guard,
            jit_compile=config.jit_compile,
        )
        self._forward_fn = CompiledStep(
            self.acting_network.call,
            input_signature=[tf.TensorSpec([None, *obs_shape], obs_dtype)],
            lazy=True,
        )

    # -- schedule --------------------------------------------------------------------------
    def next_batch(
        self, storage: Any, env_steps: int, last_obs: np.ndarray, schedule: dict[str, Any]
    ) -> Rollout | None:
        """The rollout, once the storage holds a full one (``last_obs`` bootstraps it)."""
        return storage.pop(last_obs=last_obs) if storage.ready else None

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
    @abc.abstractmethod
    def loss(
        self, log_pi: tf.Tensor, entropy: tf.Tensor, values: tf.Tensor, rollout: Rollout
    ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """This algorithm's loss of a rollout (traced inside the compiled update).

        Args:
            log_pi: log pi(a_t|s_t) of the actions taken, ``[T, N]``.
            entropy: H[pi(.|s_t)], ``[T, N]``.
            values: V of each row's observation and, in row T, of ``last_obs``:
                ``[T + 1, N]``.
            rollout: the rollout's tensors.

        Returns:
            ``(loss, metrics)``, metrics named ``train/...``.
        """

    def _update_step(self, rollout: Rollout) -> dict[str, tf.Tensor]:
        """One gradient step on a ``[T, N]`` rollout (compiled once in ``__init__``)."""
        obs = rollout.obs
        steps, envs = tf.shape(obs)[0], tf.shape(obs)[1]
        flat_obs = tf.reshape(obs, tf.concat([[steps * envs], tf.shape(obs)[2:]], 0))
        all_obs = tf.concat([flat_obs, rollout.last_obs], axis=0)  # [(T + 1) N, ...]
        variables = self.network.trainable_variables
        with tf.GradientTape() as tape:
            logits, values = self.network(all_obs)
            logits_tm1 = logits[: steps * envs]  # [T N, A]
            dist = tfd.Categorical(logits=tf.reshape(logits_tm1, [steps, envs, -1]))
            log_pi = losses.categorical_log_prob(logits_tm1, tf.reshape(rollout.action, [-1]))
            values = tf.reshape(values, [steps + 1, envs])  # [T + 1, N]; row T is last_obs
            loss, metrics = self.loss(
                tf.reshape(log_pi, [steps, envs]), dist.entropy(), values, rollout
            )
        grads = tape.gradient(loss, variables)
        norm, applied = self.guard.apply(
            self.optimizer, grads, variables, loss, self.config.max_grad_norm
        )
        self.updates.assign_add(tf.cast(applied, tf.int64))
        return {"train/loss": loss, **metrics, "train/grad_norm": norm}

    def update(self, batch: Rollout) -> dict[str, float]:
        """One gradient step on a ``[T, N]`` rollout."""
        return self._update_fn(batch)

    # -- state -----------------------------------------------------------------------------
    def checkpoint_items(self) -> dict[str, Any]:
        """Network, optimizer and update counter."""
        return {"network": self.network, "optimizer": self.optimizer, "updates": self.updates}

    def policy_network(self) -> Network:
        """The actor-critic network (its logits decide actions)."""
        return self.network
