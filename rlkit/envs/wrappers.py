"""Env wrappers: ``RewardNoise`` (noisy rewards, for experiments) and ``WideSeeds`` (seeds)."""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

# Mixed into the reset seed so that the noise stream is not the env's own stream
# (CartPole draws its start state from np_random seeded with the same number).
_NOISE_STREAM = 0x5EED_1015E


class RewardNoise(gym.RewardWrapper):
    """Replace every reward with a sample of Normal(``mean``, ``std``), whatever the env gave.

    On CartPole, whose reward is always 1, ``RewardNoise(env, 1.0, 1.0)`` keeps the expected
    reward but makes each one noisy: a test of how well an agent averages out reward noise
    (Double DQN's claim is that it overestimates less than DQN does).

    The samples come from the wrapper's own generator, reseeded from the seed of every
    ``reset(seed=...)`` (with a fixed stream key, so they differ from the env's own
    ``np_random`` draws); a reset without a seed continues the stream, and a wrapper never
    seeded draws from fresh OS entropy, as gymnasium's envs do. Same seeds, same rewards;
    the env's own randomness (its start states) is left untouched.

    Only the reward changes: ``terminated``/``truncated`` and the observations are the env's.
    The env's own reward is kept in ``info["true_reward"]``. For true episode returns in
    training statistics, put ``gymnasium.wrappers.RecordEpisodeStatistics`` inside this
    wrapper (``rlkit.envs.make_vector_env(..., wrappers=...)`` does); evaluations that build
    their env from the id (``rlkit.evaluate.play_episodes``) never see the noise.

    Args:
        env: the env to wrap.
        mean: mean of the rewards handed out.
        std: standard deviation of the rewards handed out (0 gives the constant ``mean``).

    Raises:
        ValueError: if ``std`` is negative or either number is not finite.

    Example:
        >>> env = RewardNoise(gym.make("CartPole-v1"), mean=1.0, std=1.0)
        >>> obs, info = env.reset(seed=0)
        >>> obs, reward, terminated, truncated, info = env.step(0)   # reward ~ N(1, 1)
    """

    def __init__(self, env: gym.Env, mean: float = 1.0, std: float = 1.0) -> None:
        if not (np.isfinite(mean) and np.isfinite(std)):
            raise ValueError(f"RewardNoise needs finite mean and std, got {mean} and {std}")
        if std < 0:
            raise ValueError(f"RewardNoise std must be >= 0, got {std}")
        super().__init__(env)
        self.mean, self.std = float(mean), float(std)
        self.noise_rng: np.random.Generator | None = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset the env; a ``seed`` also reseeds the reward noise."""
        if seed is not None:
            self.noise_rng = np.random.default_rng([seed, _NOISE_STREAM])
        elif self.noise_rng is None:
            self.noise_rng = np.random.default_rng()
        return self.env.reset(seed=seed, options=options)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the env and hand out a noisy reward (the env's own in ``info["true_reward"]``)."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = {**info, "true_reward": float(reward)}
        return obs, self.reward(reward), terminated, truncated, info

    def reward(self, reward: SupportsFloat) -> float:
        """A sample of Normal(mean, std); the env's ``reward`` is ignored."""
        if self.noise_rng is None:  # stepped before any reset: gymnasium allows it for some envs
            self.noise_rng = np.random.default_rng()
        return float(self.noise_rng.normal(self.mean, self.std))


class WideSeeds(gym.Wrapper):
    """Let an env whose RNG takes 32-bit seeds (MinAtar's ``RandomState``) take any seed.

    rlkit's evaluation seeds are >= 2**100 (``rlkit.evaluate.evaluation_seeds``), which
    ``numpy.random.RandomState`` refuses. A seed of 2**32 or more is hashed to 32 bits
    with ``numpy.random.SeedSequence``: the same seed gives the same episode, and distinct
    seeds stay distinct but for a hash collision (odds about 1 in 2**32 per pair). Smaller
    seeds (the training envs' run seed plus index) pass unchanged.
    """

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset the env, with ``seed`` hashed to 32 bits if it is wider."""
        if seed is not None and seed >= 2**32:
            seed = int(np.random.SeedSequence(seed).generate_state(1)[0])
        return self.env.reset(seed=seed, options=options)
