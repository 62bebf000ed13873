"""A2C: synchronous advantage actor-critic (Mnih et al., 2016) with GAE(lambda)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import tensorflow as tf

from rlkit import losses
from rlkit.agents.policy_gradient import PolicyGradient, PolicySettings
from rlkit.config import hp
from rlkit.optimizers import OPTIMIZERS
from rlkit.types import Rollout


@dataclasses.dataclass(frozen=True)
class A2CConfig(PolicySettings):
    """Hyperparameters of A2C."""

    learning_rate: float = hp(7e-4, gt=0, help="optimizer step size")
    gamma: float = hp(0.99, gt=0, le=1, help="discount factor")
    gae_lambda: float = hp(1.0, ge=0, le=1, help="GAE lambda (1: Monte-Carlo advantages)")
    n_steps: int = hp(5, ge=1, help="steps per env in each rollout")
    ent_coef: float = hp(0.0, ge=0, help="entropy bonus weight")
    vf_coef: float = hp(0.5, ge=0, help="value loss weight")
    max_grad_norm: float = hp(0.5, gt=0, help="clip gradients to this global norm")
    optimizer: str = hp("rmsprop", choices=OPTIMIZERS, help="optimizer")
    optimizer_eps: float = hp(1e-10, gt=0, help="RMSprop/Adam epsilon (Keras: inside the sqrt)")
    normalize_advantage: bool = hp(False, help="standardise advantages per rollout")


class A2C(PolicyGradient):
    """Advantage actor-critic with a shared torso, on ``[n_steps, num_envs]`` rollouts.

    For each valid row t of a rollout (``rlkit.losses.a2c_loss``):
        A_t = GAE(lambda) of delta_t = r_t + gamma (1 - terminated_t) V(s_{t+1}) - V(s_t)
        L = -log pi(a_t|s_t) A_t + vf_coef (A_t + V(s_t) - V_theta(s_t))^2 - ent_coef H[pi(.|s_t)]
    Truncated rows bootstrap from the true final observation's value; autoreset rows are
    masked out of every term.

    Args:
        observation_space: single-env observation space (``Box``).
        action_space: single-env action space (any ``rlkit.distributions`` handles).
        config: hyperparameters.
        seed: seeds the action-sampling generator.
    """

    name: ClassVar[str] = "a2c"
    config_cls: ClassVar[type] = A2CConfig

    def loss(
        self, log_pi: tf.Tensor, entropy: tf.Tensor, values: tf.Tensor, rollout: Rollout
    ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """The A2C loss (see the class docstring); ``values`` row T is V(last_obs)."""
        cfg = self.config
        discount_t = cfg.gamma * (1.0 - rollout.terminated)  # [T, N]
        continue_t = discount_t * (1.0 - rollout.truncated)  # 0 where an episode ended
        loss, terms = losses.a2c_loss(
            log_pi,
            entropy,
            v_tm1=values[:-1],
            v_t=values[1:],
            r_t=rollout.reward,
            discount_t=discount_t,
            continue_t=continue_t,
            mask_tm1=rollout.valid,
            lambda_=cfg.gae_lambda,
            vf_coef=cfg.vf_coef,
            ent_coef=cfg.ent_coef,
            normalize_advantage=cfg.normalize_advantage,
        )
        return loss, {f"train/{k}": v for k, v in terms.items()}
