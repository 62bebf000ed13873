"""The base of the policy-gradient agents: actor-critic network, acting, optimizer, update.

A2C, REINFORCE and PPO are siblings below ``PolicyGradient``: each adds its config, its
storage (``make_storage``) and its loss (``loss``, a call into ``rlkit.losses``); PPO also
its own update (epochs of minibatches). Actions come from an ``rlkit.distributions
.ActionDist`` chosen by the action space: categorical, independent categoricals, Bernoulli
or a diagonal Gaussian with a learned state-independent log-std.
"""

from __future__ import annotations

import abc
import dataclasses
import logging
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import tensorflow as tf

from rlkit.agent_io import SaveLoad
from rlkit.agents.common import (
    CompiledStep,
    CompiledUpdate,
    FiniteGuard,
    network_spec,
    require_box_observations,
)
from rlkit.config import hp
from rlkit.core import Agent
from rlkit.distributions import ActionDist, StateDependentNoise
from rlkit.errors import IncompatibleEnvError, NumericalError
from rlkit.networks import Network, build_network
from rlkit.normalization import RewardScaler
from rlkit.optimizers import make_optimizer
from rlkit.precision import MIXED_PRECISION_CHOICES
from rlkit.rollout import RolloutBuffer
from rlkit.types import Rollout

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class PolicySettings:
    """Settings every policy-gradient agent's config has: network, actions, normalization.

    A2C's, REINFORCE's and PPO's configs extend it with their own hyperparameters (a
    subclass may change a default by declaring the field again, as PPO does for
    ``share_torso``).
    """

    hidden_sizes: tuple[int, ...] = hp((64, 64), ge=1, help="MLP widths (CNN: dense width)")
    activation: str = hp("tanh", choices=("relu", "tanh", "elu"), help="hidden activation")
    share_torso: bool = hp(True, help="policy and value heads share one torso")
    jit_compile: bool = hp(False, help="compile the update step with XLA")
    mixed_precision: bool | str = hp(
        False,
        choices=MIXED_PRECISION_CHOICES,
        help="bfloat16 torso, float32 heads and losses (auto: where the hardware is fast)",
    )
    squash_actions: bool = hp(False, help="Box actions: tanh-squash into the bounds (else clip)")
    log_std_init: float = hp(0.0, help="Box actions: initial log-std of the Gaussian policy")
    use_sde: bool = hp(
        False, help="Box actions: explore with gSDE (state-dependent noise) instead of white noise"
    )
    sde_sample_freq: int = hp(
        -1, ge=-1, help="gSDE: draw new exploration matrices every N steps (-1: once per rollout)"
    )
    anneal_lr: bool = hp(False, help="learning rate falls linearly to 0 over the run")
    ortho_init: bool = hp(
        True,
        help="orthogonal init of every layer (false: PyTorch's default, as rl-zoo3's "
        "ortho_init=False)",
    )
    normalize_obs: bool = hp(False, help="normalize observations by running mean and std")
    normalize_reward: bool = hp(False, help="scale rewards by the running std of the return")

    def problems(self) -> list[str]:
        """Problems that involve several fields."""
        if self.sde_sample_freq == 0:
            return ["sde_sample_freq must be -1 (once per rollout) or >= 1, got 0"]
        return []


class PolicyGradient(SaveLoad, Agent):
    """An actor-critic network trained by one gradient step per rollout.

    The config is a ``PolicySettings`` with ``learning_rate``, ``max_grad_norm``,
    ``optimizer``, ``optimizer_eps`` and ``gamma``; the rest is the subclass's.

    Args:
        observation_space: single-env observation space (``Box``).
        action_space: single-env action space (``Discrete``, ``MultiDiscrete``,
            ``MultiBinary`` or ``Box``).
        config: hyperparameters (``config_cls()`` if None).
        seed: seeds the action-sampling generator.
    """

    on_policy: ClassVar[bool] = True

    @classmethod
    def check_action_space(cls, action_space: gym.spaces.Space) -> None:
        """Discrete, MultiDiscrete, MultiBinary and float Box actions."""
        ActionDist.from_space(action_space, agent=cls.__name__)

    def __init__(
        self,
        observation_space: gym.spaces.Space,
        action_space: gym.spaces.Space,
        config: Any = None,
        seed: int | None = None,
    ) -> None:
        self.config = config = config or self.config_cls()
        # 1 - env_steps / budget before each update (``anneal_lr``; PPO's clip range too).
        self.progress = tf.Variable(1.0, dtype=tf.float32, trainable=False, name="progress")
        self.horizon: int | None = None
        self.dist = ActionDist.from_space(
            action_space, squash=config.squash_actions, agent=type(self).__name__
        )
        self.num_actions = self.dist.num_params
        if config.use_sde and self.dist.kind != "gaussian":
            raise IncompatibleEnvError(
                f"use_sde (gSDE) is for Box actions, but the env's action space is "
                f"{action_space}; set use_sde=false"
            )
        # gSDE's exploration matrices (None without use_sde); redrawn after each update.
        self.sde_noise = StateDependentNoise(config.sde_sample_freq) if config.use_sde else None
        if self.dist.kind == "gaussian" and not self.dist.bounded:
            log.warning(
                "%s: the action space %s has infinite bounds: actions are not clipped",
                type(self).__name__,
                action_space,
            )
        obs_shape = require_box_observations(type(self).__name__, observation_space)
        self.observation_space, self.action_space = observation_space, action_space
        spec = network_spec(
            "actor_critic",
            observation_space,
            self.dist.num_params,
            config.hidden_sizes,
            config.activation,
            share_torso=config.share_torso,
            mixed_precision=config.mixed_precision,
            **({"log_std_dim": self.dist.log_std_dim} if self.dist.log_std_dim else {}),
            **({"normalize_obs": True} if config.normalize_obs else {}),
            **({"sde": True} if config.use_sde else {}),
            **({} if config.ortho_init else {"ortho_init": False}),
        )
        if config.normalize_obs and spec["torso"] != "mlp":
            raise IncompatibleEnvError(
                f"normalize_obs is for vector observations, not {observation_space} (image "
                "observations are scaled to [0, 1] in the network); set normalize_obs=false"
            )
        # Rewards divided by the running std of the discounted return (``normalize_reward``).
        self.reward_scaler = RewardScaler(config.gamma) if config.normalize_reward else None
        self.network: Network = build_network(spec)
        if self.dist.log_std_dim:
            self.network.log_std.assign(tf.fill(self.network.log_std.shape, config.log_std_init))
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
                action=self.action_spec([None, None]),
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
        self._features_fn = CompiledStep(
            self.acting_network.call_with_features,
            input_signature=[tf.TensorSpec([None, *obs_shape], obs_dtype)],
            lazy=True,
        )

    # -- storage and schedule ----------------------------------------------------------------
    def make_storage(
        self,
        num_envs: int,
        observation_space: gym.spaces.Space,
        action_space: gym.spaces.Space,
        *,
        frame_stack: int = 1,
        padding: str = "reset",
        seed: int | None = None,
    ) -> Any:
        """``n_steps`` steps of every env (A2C, PPO; whole observations: a rollout is short).

        REINFORCE overrides it with whole episodes.
        """
        return RolloutBuffer(self.config.n_steps, num_envs, observation_space, action_space)

    def set_horizon(self, total_steps: int) -> None:
        """The run's budget: the learning rate (PPO: and clip range) anneal over it when asked.

        A run resumed with a larger budget anneals from there over the new one.
        """
        self.horizon = int(total_steps)

    def next_batch(
        self, storage: Any, env_steps: int, last_obs: np.ndarray, schedule: dict[str, Any]
    ) -> Rollout | None:
        """The rollout, once the storage holds a full one (``last_obs`` bootstraps it).

        Also sets the annealing progress, ``1 - env_steps / budget``.
        """
        batch = storage.pop(last_obs=last_obs) if storage.ready else None
        if batch is not None and self.horizon:
            self.progress.assign(max(0.0, 1.0 - env_steps / self.horizon))
        return batch

    def action_spec(self, batch_dims: list[Any]) -> tf.TensorSpec:
        """``TensorSpec`` of stored actions with leading ``batch_dims``."""
        shape = [*batch_dims, *self.dist.action_shape]
        return tf.TensorSpec(shape, tf.as_dtype(self.dist.action_dtype))

    # -- acting ----------------------------------------------------------------------------
    def logits_and_values(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(policy parameters [N, P], values [N])`` (numpy path for small MLPs)."""
        if self.network.supports_numpy:
            return self.network.numpy_forward(obs)
        logits, values = self._forward_fn(obs)
        return logits.numpy(), values.numpy()

    def log_std(self) -> np.ndarray | None:
        """A Gaussian policy's current log-std ``[D]`` (None for other action spaces)."""
        if not self.dist.log_std_dim:
            return None
        if self.network.supports_numpy:
            return self.network.numpy_log_std()
        return self.network.log_std.numpy()

    def act(self, obs: np.ndarray, *, explore: bool) -> np.ndarray:
        """Sample from pi(.|s) when exploring; the mode (most likely action) otherwise.

        Raises:
            NumericalError: if the policy produced a non-finite action (never sent to the env).
        """
        if not explore:
            actions = self.dist.mode(self.policy_params(obs)[0])
        elif self.sde_noise is None:
            actions = self.dist.sample(self.policy_params(obs)[0], self.rng, self.log_std())
        else:
            params, features = self.policy_params(obs, features=True)
            noise = self.sde_noise(self.log_std(), len(params), self.rng)
            actions = self.dist.sample(params, self.rng, features=features, noise=noise)
        if self.dist.kind == "gaussian" and not np.isfinite(actions).all():
            raise NumericalError(
                "the Gaussian policy produced a non-finite action (NaN or Inf), which is not "
                "sent to the env; the observations may hold NaN/Inf (rerun with "
                "--check-numerics), or the policy diverged (lower the learning rate)"
            )
        return actions

    def policy_params(
        self, obs: np.ndarray, features: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """``(policy parameters [N, P], policy features [N, F] if asked, else None)``."""
        if self.network.supports_numpy:
            params, _, phi = self.network.numpy_forward_features(obs, value=False)
        elif features:
            params, _, phi = (t.numpy() for t in self._features_fn(obs))
        else:
            return self.logits_and_values(obs)[0], None
        return params, (phi if features else None)

    def acting_rule(self) -> dict[str, Any]:
        """Sample from the action distribution (see ``Agent``).

        With gSDE the rule carries ``sde_sample_freq``: a worker draws its own exploration
        matrices on that schedule (``rlkit.distributed.acting.ActingPolicy``).
        """
        if self.dist.kind == "categorical":
            return {"rule": "categorical"}
        rule = {"rule": "sample", "dist": self.dist.to_json()}
        if self.sde_noise is not None:
            rule["sde_sample_freq"] = self.sde_noise.sample_freq
        return rule

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

    def scaled_rewards(self, rollout: Rollout) -> Rollout:
        """The rollout with its rewards scaled (``normalize_reward``; statistics updated)."""
        if self.reward_scaler is None:
            return rollout
        ends = tf.maximum(rollout.terminated, rollout.truncated)
        return rollout._replace(
            reward=self.reward_scaler.scale(rollout.reward, ends, rollout.valid)
        )

    def anneal_learning_rate(self) -> dict[str, tf.Tensor]:
        """With ``anneal_lr``, set the rate to ``learning_rate x progress`` (traced).

        Returns:
            ``{"train/learning_rate": rate}`` when annealing, else nothing.
        """
        if not self.config.anneal_lr:
            return {}
        self.optimizer.learning_rate.assign(self.config.learning_rate * self.progress)
        return {"train/learning_rate": tf.cast(self.optimizer.learning_rate, tf.float32)}

    def _update_step(self, rollout: Rollout) -> dict[str, tf.Tensor]:
        """One gradient step on a ``[T, N]`` rollout (compiled once in ``__init__``)."""
        rate = self.anneal_learning_rate()
        rollout = self.scaled_rewards(rollout)
        obs = rollout.obs
        steps, envs = tf.shape(obs)[0], tf.shape(obs)[1]
        flat_obs = tf.reshape(obs, tf.concat([[steps * envs], tf.shape(obs)[2:]], 0))
        all_obs = tf.concat([flat_obs, rollout.last_obs], axis=0)  # [(T + 1) N, ...]
        variables = self.network.trainable_variables
        with tf.GradientTape() as tape:
            logits, values, features = self.network.call_with_features(all_obs)
            actions = tf.reshape(rollout.action, [steps * envs, *self.dist.action_shape])
            log_pi, entropy = self.log_prob_entropy(
                logits[: steps * envs], actions, features[: steps * envs]
            )
            values = tf.reshape(values, [steps + 1, envs])  # [T + 1, N]; row T is last_obs
            loss, metrics = self.loss(
                tf.reshape(log_pi, [steps, envs]),
                tf.reshape(entropy, [steps, envs]),
                values,
                rollout,
            )
        grads = tape.gradient(loss, variables)
        norm, applied = self.guard.apply(
            self.optimizer, grads, variables, loss, self.config.max_grad_norm
        )
        self.updates.assign_add(tf.cast(applied, tf.int64))
        # Observation statistics move after the step (the rollout was acted on with the old).
        self.network.update_obs_stats(flat_obs, tf.reshape(rollout.valid, [-1]))
        return {
            "train/loss": loss,
            **metrics,
            "train/grad_norm": norm,
            **self.std_metric(),
            **rate,
        }

    def log_prob_entropy(
        self, params: tf.Tensor, actions: tf.Tensor, features: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """``self.dist.log_prob_entropy`` with the network's log-std (and features, for gSDE)."""
        features = features if self.sde_noise is not None else None
        return self.dist.log_prob_entropy(params, actions, self.network.log_std, features)

    def std_metric(self) -> dict[str, tf.Tensor]:
        """``train/std``, the Gaussian policy's mean std (nothing for other action spaces)."""
        if not self.dist.log_std_dim:
            return {}
        return {"train/std": tf.reduce_mean(tf.exp(self.network.log_std))}

    def update(self, batch: Rollout) -> dict[str, float]:
        """One gradient step on a ``[T, N]`` rollout (gSDE: new exploration matrices next)."""
        metrics = self._update_fn(batch)
        if self.sde_noise is not None:
            self.sde_noise.reset()
        return metrics

    # -- state -----------------------------------------------------------------------------
    def checkpoint_items(self) -> dict[str, Any]:
        """Network (with its observation statistics), optimizer, update counter, reward scale.

        Not ``progress``: ``next_batch`` sets it from the step count before every update.
        """
        items = {"network": self.network, "optimizer": self.optimizer, "updates": self.updates}
        if self.reward_scaler is not None:
            items["reward_scaler"] = self.reward_scaler
        return items

    def policy_network(self) -> Network:
        """The actor-critic network (its logits decide actions)."""
        return self.network
