"""REINFORCE: Monte-Carlo policy gradient (Williams, 1992) with an optional learned baseline."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import gymnasium as gym
import tensorflow as tf

from rlkit import losses
from rlkit.agents.policy_gradient import PolicyGradient, PolicySettings
from rlkit.config import hp
from rlkit.optimizers import OPTIMIZERS
from rlkit.rollout import EpisodeBuffer
from rlkit.types import Rollout


@dataclasses.dataclass(frozen=True)
class ReinforceConfig(PolicySettings):
    """Hyperparameters of REINFORCE."""

    learning_rate: float = hp(1e-3, gt=0, help="optimizer step size")
    gamma: float = hp(0.99, gt=0, le=1, help="discount factor")
    episodes_per_update: int = hp(8, ge=1, help="whole episodes in each update")
    normalize_returns: bool = hp(True, help="standardise returns (or advantages) per update")
    baseline: bool = hp(False, help="learn a state-value baseline and subtract it")
    vf_coef: float = hp(0.5, ge=0, help="value loss weight (with baseline)")
    ent_coef: float = hp(0.0, ge=0, help="entropy bonus weight")
    max_grad_norm: float = hp(1.0, gt=0, help="clip gradients to this global norm")
    optimizer: str = hp("adam", choices=OPTIMIZERS, help="optimizer")
    optimizer_eps: float = hp(1e-7, gt=0, help="epsilon of Adam/RMSprop")


class Reinforce(PolicyGradient):
    """REINFORCE on whole episodes from N envs (``rlkit.losses.reinforce_loss``).

    For each step t of a finished episode, G_t = sum_k gamma^k r_{t+k} (an episode cut by a
    time limit bootstraps from V(final obs) when the baseline is learned, else from 0), and
        L = -log pi(a_t|s_t) (G_t - b(s_t)) + vf_coef (G_t - V(s_t))^2 - ent_coef H[pi(.|s_t)]
    with b = V when ``baseline`` is on and b = 0 otherwise; ``normalize_returns``
    standardises G_t - b(s_t) over the batch, as the classic CartPole tutorials do.

    The network is the shared-torso actor-critic of ``PolicyGradient``; its value head is
    only trained with ``baseline``.
    """

    name: ClassVar[str] = "reinforce"
    config_cls: ClassVar[type] = ReinforceConfig

    def make_storage(
        self,
        num_envs: int,
        observation_space: gym.spaces.Space,
        action_space: gym.spaces.Space,
        *,
        frame_stack: int = 1,
        padding: str = "reset",
        seed: int | None = None,
    ) -> EpisodeBuffer:
        """Whole episodes: an update after ``episodes_per_update`` of them have ended."""
        return EpisodeBuffer(self.config.episodes_per_update, num_envs)

    def loss(
        self, log_pi: tf.Tensor, entropy: tf.Tensor, values: tf.Tensor, rollout: Rollout
    ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """The REINFORCE loss of ``[L, E]`` episodes (``values`` row L: V(final obs))."""
        cfg = self.config
        loss, terms = losses.reinforce_loss(
            log_pi,
            entropy,
            v_tm1=values[:-1],
            v_last=values[-1],
            r_t=rollout.reward,
            discount_t=cfg.gamma * (1.0 - rollout.terminated),
            truncated_t=rollout.truncated,
            mask_tm1=rollout.valid,
            baseline=cfg.baseline,
            vf_coef=cfg.vf_coef,
            ent_coef=cfg.ent_coef,
            normalize=cfg.normalize_returns,
        )
        return loss, {f"train/{k}": v for k, v in terms.items()}


__all__ = ["Reinforce", "ReinforceConfig"]
