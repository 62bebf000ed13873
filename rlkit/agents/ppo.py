"""PPO: proximal policy optimization with the clipped surrogate (Schulman et al., 2017)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import tensorflow as tf

from rlkit import losses
from rlkit.agents.policy_gradient import PolicyGradient, PolicySettings
from rlkit.config import RunConfig, hp
from rlkit.optimizers import OPTIMIZERS
from rlkit.types import Rollout


@dataclasses.dataclass(frozen=True)
class PPOConfig(PolicySettings):
    """Hyperparameters of PPO, named as in Stable-Baselines3 (so rl-zoo3's presets read across)."""

    learning_rate: float = hp(3e-4, gt=0, help="Adam step size (at the start, if annealed)")
    n_steps: int = hp(2048, ge=1, help="steps per env in each rollout")
    batch_size: int = hp(64, ge=1, help="rows per minibatch")
    n_epochs: int = hp(10, ge=1, help="passes over each rollout")
    gamma: float = hp(0.99, gt=0, le=1, help="discount factor")
    gae_lambda: float = hp(0.95, ge=0, le=1, help="GAE lambda")
    clip_range: float = hp(0.2, gt=0, help="epsilon of the probability-ratio clip")
    clip_range_vf: float | None = hp(
        None, gt=0, help="clip value predictions to old value +- this (none: no clipping)"
    )
    normalize_advantage: bool = hp(True, help="standardise advantages per minibatch")
    ent_coef: float = hp(0.0, ge=0, help="entropy bonus weight")
    vf_coef: float = hp(0.5, ge=0, help="value loss weight")
    max_grad_norm: float = hp(0.5, gt=0, help="clip gradients to this global norm")
    target_kl: float | None = hp(
        None, gt=0, help="stop an update's epochs once approx KL > 1.5 x this (none: never)"
    )
    anneal_clip_range: bool = hp(False, help="clip_range falls linearly to 0 over the run")
    optimizer: str = hp("adam", choices=OPTIMIZERS, help="optimizer")
    optimizer_eps: float = hp(1e-5, gt=0, help="Adam/RMSprop epsilon")
    share_torso: bool = hp(False, help="policy and value heads share one torso")

    def run_problems(self, run: RunConfig) -> list[str]:
        """Problems that involve the run settings."""
        if self.batch_size > self.n_steps * run.num_envs:
            return [
                f"batch_size ({self.batch_size}) must be <= n_steps x num_envs "
                f"({self.n_steps} x {run.num_envs}), the rows of a rollout"
            ]
        return []


class PPO(PolicyGradient):
    """PPO-clip on ``[n_steps, num_envs]`` rollouts: ``n_epochs`` passes of shuffled minibatches.

    Each update (``rlkit.losses.ppo_loss`` per minibatch):
      1. the rollout's log-probabilities and values under the policy that collected it,
         and GAE(lambda) advantages with returns = advantages + values (truncated rows
         bootstrap from the true final observation; autoreset rows are masked out);
      2. ``n_epochs`` passes, each over a fresh permutation of the rollout's rows, cut into
         minibatches of ``batch_size`` (the last one smaller if they do not divide), one
         clipped gradient step each. With ``target_kl``, the update stops before the first
         step whose minibatch has an approximate KL above ``1.5 * target_kl`` (as
         Stable-Baselines3 does).
    The whole update (every epoch and minibatch) is one compiled call. Permutations are
    drawn from a stateless generator keyed by the agent's seed and the update count, so a
    resumed run draws the same ones. The value clip follows Stable-Baselines3
    (``old V + clip(V - old V)``, no max with the unclipped loss). Networks are initialised
    orthogonally (sqrt 2 for every torso layer, convolutions included, 0.01 policy head, 1
    value head; ``ortho_init=False``: PyTorch's default), with separate policy and value
    torsos unless ``share_torso``.

    Args:
        observation_space: single-env observation space (``Box``).
        action_space: single-env action space (any ``rlkit.distributions`` handles).
        config: hyperparameters.
        seed: seeds action sampling and the minibatch permutations.
    """

    name: ClassVar[str] = "ppo"
    config_cls: ClassVar[type] = PPOConfig

    def __init__(
        self,
        observation_space: gym.spaces.Space,
        action_space: gym.spaces.Space,
        config: PPOConfig | None = None,
        seed: int | None = None,
    ) -> None:
        config = config or PPOConfig()
        # Before the base traces the update: the step reads these.
        shuffle_key = np.random.default_rng(seed).integers(0, 2**31 - 1)
        self.shuffle_key = tf.Variable(shuffle_key, dtype=tf.int64, trainable=False, name="key")
        self.rollouts = tf.Variable(0, dtype=tf.int64, trainable=False, name="rollouts")
        super().__init__(observation_space, action_space, config, seed)

    def loss(
        self, log_pi: tf.Tensor, entropy: tf.Tensor, values: tf.Tensor, rollout: Rollout
    ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """Not used: PPO's update runs minibatches of ``ppo_loss`` (see ``_update_step``)."""
        raise NotImplementedError("PPO updates with rlkit.losses.ppo_loss per minibatch")

    def _update_step(self, rollout: Rollout) -> dict[str, tf.Tensor]:
        """Every epoch and minibatch of one update on a ``[T, N]`` rollout (compiled once)."""
        cfg = self.config
        rollout = self.scaled_rewards(rollout)
        obs = rollout.obs
        steps, envs = tf.shape(obs)[0], tf.shape(obs)[1]
        size = steps * envs
        flat_obs = tf.reshape(obs, tf.concat([[size], tf.shape(obs)[2:]], 0))
        actions = tf.reshape(rollout.action, [size, *self.dist.action_shape])
        # 1. The collecting policy's view of the rollout, and the advantages.
        params, values, features = self.network.call_with_features(
            tf.concat([flat_obs, rollout.last_obs], axis=0)
        )
        old_log_pi, _ = self.log_prob_entropy(params[:size], actions, features[:size])
        values = tf.reshape(values, [steps + 1, envs])
        discount_t = cfg.gamma * (1.0 - rollout.terminated)
        advantages = losses.generalized_advantage_estimation(
            rollout.reward,
            values[:-1],
            values[1:],
            discount_t,
            discount_t * (1.0 - rollout.truncated),
            cfg.gae_lambda,
        )
        returns = advantages + values[:-1]
        mask = tf.reshape(rollout.valid, [size])
        explained = losses.explained_variance(values[:-1], returns, rollout.valid)
        old_values, advantages, returns = (
            tf.reshape(x, [size]) for x in (values[:-1], advantages, returns)
        )
        # 2. Epochs of shuffled minibatches.
        clip_range = cfg.clip_range * (self.progress if cfg.anneal_clip_range else 1.0)
        self.anneal_learning_rate()
        per_epoch = (size + cfg.batch_size - 1) // cfg.batch_size
        keys = tf.stack([self.shuffle_key, self.rollouts])
        order = tf.argsort(tf.random.stateless_uniform([cfg.n_epochs, size], seed=keys), axis=-1)
        # Every minibatch holds batch_size rows, a static shape: each epoch's permutation is
        # padded with row 0 to per_epoch * batch_size and padded rows get mask 0, so a last
        # minibatch of k < batch_size real rows averages over those k, as a k-row one would.
        # (Slices of a dynamic size compile under XLA as padded shapes, and the gradients of
        # broadcasts over the rows, such as the Gaussian's log-std, summed the padding too.)
        pad = [[0, 0], [0, per_epoch * cfg.batch_size - size]]
        order = tf.reshape(tf.pad(order, pad), [-1, cfg.batch_size])  # [E * per_epoch, B]
        real = tf.reshape(tf.pad(tf.ones([cfg.n_epochs, size]), pad), [-1, cfg.batch_size])
        names = ("loss", "policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction")
        sums = {name: tf.constant(0.0) for name in names}
        norm_sum, taken, applied_steps = tf.constant(0.0), tf.constant(0), tf.constant(0)
        stop = tf.constant(False)  # set by target_kl
        variables = self.network.trainable_variables
        for i in tf.range(cfg.n_epochs * per_epoch):
            # One minibatch after another: each step reads the weights the last one wrote.
            tf.autograph.experimental.set_loop_options(parallel_iterations=1)
            if stop:
                break
            idx = order[i]  # [B]
            with tf.GradientTape() as tape:
                mb_params, mb_values, mb_features = self.network.call_with_features(
                    tf.gather(flat_obs, idx)
                )
                log_pi, entropy = self.log_prob_entropy(
                    mb_params, tf.gather(actions, idx), mb_features
                )
                loss, terms = losses.ppo_loss(
                    log_pi,
                    tf.gather(old_log_pi, idx),
                    tf.gather(advantages, idx),
                    mb_values,
                    tf.gather(old_values, idx),
                    tf.gather(returns, idx),
                    entropy,
                    tf.gather(mask, idx) * real[i],
                    clip_range,
                    cfg.clip_range_vf,
                    cfg.vf_coef,
                    cfg.ent_coef,
                    cfg.normalize_advantage,
                )
            if cfg.target_kl is not None and terms["approx_kl"] > 1.5 * cfg.target_kl:
                stop = tf.constant(True)
            else:
                grads = tape.gradient(loss, variables)
                norm, applied = self.guard.apply(
                    self.optimizer, grads, variables, loss, cfg.max_grad_norm
                )
                applied_steps += tf.cast(applied, tf.int32)
                terms = {**terms, "loss": loss}
                sums = {name: sums[name] + terms[name] for name in names}
                norm_sum += norm
                taken += 1
        self.rollouts.assign_add(1)
        # Observation statistics move after the epochs (the rollout was acted on with the old).
        self.network.update_obs_stats(flat_obs, mask)
        # ``updates`` counts update calls that changed the weights (the weights version).
        self.updates.assign_add(tf.cast(applied_steps > 0, tf.int64))
        count = tf.maximum(tf.cast(taken, tf.float32), 1.0)
        metrics = {f"train/{name}": total / count for name, total in sums.items()}
        metrics.update(
            {
                "train/grad_norm": norm_sum / count,
                "train/explained_variance": explained,
                "train/minibatch_steps": tf.cast(taken, tf.float32),
                "train/clip_range": tf.cast(clip_range, tf.float32),
                "train/learning_rate": tf.cast(self.optimizer.learning_rate, tf.float32),
                **self.std_metric(),
            }
        )
        return metrics

    def checkpoint_items(self) -> dict[str, Any]:
        """The base's items, plus the rollout counter and the permutation key."""
        return {
            **super().checkpoint_items(),
            "rollouts": self.rollouts,
            "shuffle_key": self.shuffle_key,
        }


__all__ = ["PPO", "PPOConfig"]
