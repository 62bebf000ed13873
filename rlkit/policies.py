"""Acting rules built from a network's outputs: greedy, epsilon-greedy, categorical; schedules."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LinearSchedule:
    """Value moving linearly from ``initial`` to ``final`` over ``duration`` steps, then flat."""

    initial: float
    final: float
    duration: int

    def __call__(self, step: int) -> float:
        """Value at ``step``."""
        if self.duration <= 0:
            return self.final
        frac = min(max(step / self.duration, 0.0), 1.0)
        return self.initial + frac * (self.final - self.initial)


class GreedyPolicy:
    """argmax_a Q(s, a) (or the mode of a categorical policy, given logits)."""

    def __init__(self, scores: Callable[[np.ndarray], np.ndarray]) -> None:
        self.scores = scores

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Actions ``[N]`` for observations ``[N, ...]``."""
        return np.argmax(self.scores(obs), axis=-1)


class EpsilonGreedyPolicy:
    """With probability epsilon a uniformly random action, otherwise the greedy one.

    Args:
        q_values: maps observations ``[N, ...]`` to Q-values ``[N, A]``.
        num_actions: size of the discrete action space.
        epsilon: schedule of epsilon over ``step`` (advanced by the caller).
        rng: the generator for exploration (seeded by the agent).
    """

    def __init__(
        self,
        q_values: Callable[[np.ndarray], np.ndarray],
        num_actions: int,
        epsilon: Callable[[int], float],
        rng: np.random.Generator,
    ) -> None:
        self.q_values, self.num_actions, self.epsilon, self.rng = (
            q_values,
            num_actions,
            epsilon,
            rng,
        )
        self.step = 0

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Actions ``[N]``; advances ``step`` by N."""
        n = len(obs)
        eps = self.epsilon(self.step)
        self.step += n
        explore = self.rng.random(n) < eps
        actions = self.rng.integers(0, self.num_actions, n)
        if not explore.all():
            greedy = np.argmax(self.q_values(obs), axis=-1)
            actions = np.where(explore, actions, greedy)
        return actions


def sample_categorical(logits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sample one action per row of ``logits`` ``[N, A]`` by the Gumbel-max trick."""
    gumbel = -np.log(-np.log(rng.random(logits.shape)))
    return np.argmax(logits + gumbel, axis=-1)


class CategoricalPolicy:
    """Samples actions from softmax(logits); the numpy twin of ``tfp.distributions.Categorical``."""

    def __init__(
        self, logits: Callable[[np.ndarray], np.ndarray], rng: np.random.Generator
    ) -> None:
        self.logits, self.rng = logits, rng

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Actions ``[N]``."""
        return sample_categorical(self.logits(obs), self.rng)
