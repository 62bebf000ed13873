"""REINFORCE: Monte-Carlo policy gradient (Williams, 1992) with an optional learned baseline."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import gymnasium as gym
import tensorflow as tf
import tensorflow_probability as tfp

from rlkit import losses
from rlkit.agents.a2c import A2C
from rlkit.config import hp
from rlkit.precision import MIXED_PRECISION_CHOICES
from rlkit.rollout import EpisodeBuffer

tfd = tfp.distributions


@dataclasses.dataclass(frozen=True)
class ReinforceConfig:
    """Hyperparameters of REINFORCE."""

    learning_rate: float = hp(1e-3, gt=0, help="optimizer step size")
    gamma: float = hp(0.99, gt=0, le=1, help="discount factor")
    episodes_per_update: int = hp(8, ge=1, help="whole episodes in each update")
    normalize_returns: bool = hp(True, help="standardise returns (or advantages) per update")
    baseline: bool = hp(False, help="learn a state-value baseline and subtract it")
    vf_coef: float = hp(0.5, ge=0, help="value loss weight (with baseline)")
    ent_coef: float = hp(0.0, ge=0, help="entropy bonus weight")
    max_grad_norm: float = hp(1.0, gt=0, help="clip gradients to this global norm")
    optimizer: str = hp("adam", choices=("rmsprop", "adam"), help="optimizer")
    optimizer_eps: float = hp(1e-7, gt=0, help="epsilon of Adam/RMSprop")
    hidden_sizes: tuple[int, ...] = hp((64, 64), ge=1, help="MLP widths (CNN: dense width)")
    activation: str = hp("tanh", choices=("relu", "tanh", "elu"), help="hidden activation")
    share_torso: bool = hp(True, help="policy and value heads share one torso")
    jit_compile: bool = hp(False, help="compile the update step with XLA")
    mixed_precision: bool | str = hp(
        False,
        choices=MIXED_PRECISION_CHOICES,
        help="bfloat16 torso, float32 heads and losses (auto: where the hardware is fast)",
    )


class Reinforce(A2C):
    """REINFORCE on whole episodes from N envs.

    For each step t of a finished episode, G_t = sum_k gamma^k r_{t+k} (an episode cut by a
    time limit bootstraps from V(final obs) when the baseline is learned, else from 0), and
        L = -log pi(a_t|s_t) (G_t - b(s_t)) + vf_coef (G_t - V(s_t))^2 - ent_coef H[pi(.|s_t)]
    with b = V when ``baseline`` is on and b = 0 otherwise; ``normalize_returns``
    standardises G_t - b(s_t) over the batch, as the classic CartPole tutorials do.

    Acting, the network (a shared-torso actor-critic whose value head is only trained with
    ``baseline``) and saving are A2C's; only the data and the loss differ.
    """

    name: ClassVar[str] = "reinforce"
    config_cls: ClassVar[type] = ReinforceConfig

    def __init__(
        self,
        observation_space: gym.spaces.Space,
        action_space: gym.spaces.Space,
        config: ReinforceConfig | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(observation_space, action_space, config or ReinforceConfig(), seed)

    def make_rollout(self, runner: Any) -> EpisodeBuffer:
        """Episode storage: update after ``episodes_per_update`` whole episodes."""
        return EpisodeBuffer(self.config.episodes_per_update, runner.num_envs)

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
        """The REINFORCE loss of ``[L, E]`` episodes (columns; row L of ``values``: final obs)."""
        cfg = self.config
        use_baseline = 1.0 if cfg.baseline else 0.0
        v_s, v_final = values[:-1], tf.stop_gradient(values[-1])  # [L, E], [E]
        # Padding rows (valid 0) carry the bootstrap up to the episode's last step unchanged.
        cut = tf.reduce_max(truncated, axis=0)  # [E]: 1 where a time limit ended the episode
        bootstrap = use_baseline * cut * v_final
        discount_t = valid * cfg.gamma * (1.0 - terminated) + (1.0 - valid)
        returns = losses.discounted_returns(reward * valid, discount_t, bootstrap)  # [L, E]
        weights = returns - use_baseline * tf.stop_gradient(v_s)
        if cfg.normalize_returns:
            weights = losses.masked_standardize(weights, valid)
        policy_loss = losses.policy_gradient_loss(dist.log_prob(action), weights, valid)
        value_loss = losses.masked_mean(tf.square(returns - v_s), valid)
        entropy = losses.masked_mean(dist.entropy(), valid)
        loss = policy_loss + use_baseline * cfg.vf_coef * value_loss - cfg.ent_coef * entropy
        metrics = {
            "train/policy_loss": policy_loss,
            "train/value_loss": value_loss,
            "train/entropy": entropy,
            "train/return_mean": losses.masked_mean(returns, valid),
        }
        return loss, metrics


__all__ = ["Reinforce", "ReinforceConfig"]
