"""VectorRunner: steps a gymnasium vector env and turns its output into Transitions.

The vector env must use NEXT_STEP autoreset (``rlkit.envs.make_vector_env`` does): after
an episode ends, the env's next ``step`` only resets it. The runner marks that row
``valid=False`` so it is never learned from, and since the row's ``obs`` is the finished
episode's true final observation, a truncated transition can bootstrap from it.
"""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from rlkit import interrupts
from rlkit.types import EpisodeStats, Transition


class VectorRunner:
    """Steps ``envs`` and tracks env steps and finished episodes.

    Args:
        envs: a gymnasium vector env with ``autoreset_mode=NEXT_STEP``.
        clip_rewards: hand ``sign(reward)`` to the learner (Atari's DQN protocol); the
            episode statistics keep the raw rewards.
        life_loss_terminal: mark a transition that loses a life (``info["lives"]`` drops)
            as terminated for the learner; the episode itself goes on to game over.

    Raises:
        ValueError: if the vector env uses another autoreset mode.
    """

    def __init__(
        self,
        envs: gym.vector.VectorEnv,
        *,
        clip_rewards: bool = False,
        life_loss_terminal: bool = False,
    ) -> None:
        mode = envs.metadata.get("autoreset_mode")
        if mode != AutoresetMode.NEXT_STEP:
            raise ValueError(
                f"VectorRunner needs a vector env with autoreset_mode=NEXT_STEP, got {mode}; "
                "build it with rlkit.envs.make_vector_env"
            )
        self.envs = envs
        self.num_envs = envs.num_envs
        self.observation_space = envs.single_observation_space
        self.action_space = envs.single_action_space
        self.clip_rewards, self.life_loss_terminal = clip_rewards, life_loss_terminal
        self._lives: np.ndarray | None = None
        self.env_steps = 0  # valid transitions so far, summed over envs
        self.episodes = 0
        self._obs: np.ndarray | None = None
        self._resetting = np.zeros(self.num_envs, bool)
        self._returns = np.zeros(self.num_envs, np.float64)
        self._lengths = np.zeros(self.num_envs, np.int64)
        self._done_returns: list[float] = []
        self._done_lengths: list[int] = []
        self.restarts = 0  # crashed workers rebuilt (the Ray runner's count, mirrored)
        self.restarted = False  # the last step rebuilt a worker

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Reset every env (env i gets ``seed + i``) and return observations ``[N, ...]``.

        Episodes in progress are dropped from the statistics.
        """
        self._obs, info = self.envs.reset(seed=seed)
        self._lives = np.asarray(info["lives"]).copy() if "lives" in info else None
        self._resetting[:] = False
        self._returns[:] = 0.0
        self._lengths[:] = 0
        return self._obs

    def step(self, actions: np.ndarray) -> tuple[Transition, np.ndarray]:
        """Step every env once.

        Args:
            actions: ``[N]`` actions; ignored for envs that are resetting.

        Returns:
            ``(transition, obs)``: the step as a ``Transition`` (autoreset rows have
            ``valid=False``) and the observations to act on next.
        """
        if self._obs is None:
            raise RuntimeError("call reset() before step()")
        next_obs, reward, terminated, truncated, info = self.envs.step(actions)
        interrupts.check()  # a Ctrl-C during the step takes effect here, with no call pending
        valid = ~self._resetting
        reward = np.asarray(reward, np.float32)
        terminated = np.asarray(terminated, bool)
        truncated = np.asarray(truncated, bool)
        ended = (terminated | truncated) & valid
        self._track_episodes(reward, valid, ended, info)
        learn_terminated = terminated
        if self.life_loss_terminal and "lives" in info:
            lives = np.asarray(info["lives"])
            if self._lives is not None:
                learn_terminated = terminated | (valid & (lives < self._lives))
            self._lives = lives.copy()
        transition = Transition(
            obs=self._obs,
            action=np.asarray(actions),
            reward=np.sign(reward) if self.clip_rewards else reward,
            next_obs=next_obs,
            terminated=learn_terminated,
            truncated=truncated,
            valid=valid,
        )
        self._resetting = ended
        self._obs = next_obs
        self.env_steps += int(valid.sum())
        return transition, next_obs

    def act_and_step(self, agent: Any, obs: np.ndarray) -> tuple[Transition, np.ndarray]:
        """``step(agent.act(obs, explore=True))``: what the loops call for each step.

        A runner whose workers act with their own copy of the policy (``RayRunner``)
        implements this instead of acting here.
        """
        return self.step(agent.act(obs, explore=True))

    def _track_episodes(
        self, reward: np.ndarray, valid: np.ndarray, ended: np.ndarray, info: dict
    ) -> None:
        # Prefer statistics from a RecordEpisodeStatistics wrapper inside the env (it sees
        # the full game's unclipped score, e.g. for Atari); else count the rewards here.
        self._returns += np.where(valid, reward, 0.0)
        self._lengths += valid
        if "episode" in info:
            mask = np.asarray(info["_episode"], bool)
            self._done_returns += np.asarray(info["episode"]["r"])[mask].tolist()
            self._done_lengths += np.asarray(info["episode"]["l"])[mask].tolist()
        elif ended.any():
            self._done_returns += self._returns[ended].tolist()
            self._done_lengths += self._lengths[ended].tolist()
        self.episodes += int(ended.sum())
        self._returns[ended] = 0.0
        self._lengths[ended] = 0

    def pop_episode_stats(self) -> EpisodeStats:
        """Returns and lengths of the episodes finished since the last call."""
        stats = EpisodeStats(
            np.asarray(self._done_returns, np.float64), np.asarray(self._done_lengths, np.int64)
        )
        self._done_returns, self._done_lengths = [], []
        return stats

    def close(self) -> None:
        """Close the envs (and their worker processes).

        After Ctrl-C a vector env may still wait for a step; gymnasium then finishes it
        and warns, which is expected here and not worth a message to the user.
        """
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.envs.close()
