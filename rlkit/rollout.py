"""On-policy storage: fixed ``[n_steps, num_envs]`` rollouts and whole-episode batches."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from rlkit.types import Rollout, Transition


def action_dtype(space: gym.spaces.Space) -> np.dtype:
    """How on-policy storage keeps actions: float32 for ``Box`` spaces, int64 otherwise."""
    return np.dtype(np.float32 if isinstance(space, gym.spaces.Box) else np.int64)


class RolloutBuffer:
    """Collects ``n_steps`` vector steps into preallocated ``[T, N, ...]`` arrays (A2C).

    ``add`` returns True once the rollout is full; ``pop(last_obs)`` then hands it out and
    starts the next one. Autoreset rows keep ``valid = 0`` so every loss ignores them, and
    since their ``obs`` is the finished episode's final observation, a truncated row
    bootstraps from it (see ``rlkit.types.Rollout``). A ``transient`` ``rlkit.core.Storage``.
    """

    transient = True

    def __init__(
        self,
        n_steps: int,
        num_envs: int,
        observation_space: gym.spaces.Space,
        action_space: gym.spaces.Space,
    ) -> None:
        shape = (n_steps, num_envs)
        self.n_steps, self.num_envs = n_steps, num_envs
        self.obs = np.zeros(shape + tuple(observation_space.shape), observation_space.dtype)
        self.action = np.zeros(shape + tuple(action_space.shape or ()), action_dtype(action_space))
        self.reward = np.zeros(shape, np.float32)
        self.terminated = np.zeros(shape, np.float32)
        self.truncated = np.zeros(shape, np.float32)
        self.valid = np.zeros(shape, np.float32)
        self._t = 0

    def add(self, transition: Transition) -> bool:
        """Store one vector step; return True when the rollout is full."""
        t = self._t
        self.obs[t] = transition.obs
        self.action[t] = transition.action
        self.reward[t] = transition.reward
        self.terminated[t] = transition.terminated
        self.truncated[t] = transition.truncated
        self.valid[t] = transition.valid
        self._t += 1
        return self._t == self.n_steps

    @property
    def ready(self) -> bool:
        """Whether the rollout is full (``pop`` hands it out)."""
        return self._t == self.n_steps

    def clear(self) -> None:
        """Drop what was collected (after an env reset)."""
        self._t = 0

    def pop(self, last_obs: np.ndarray) -> Rollout:
        """The full rollout (arrays are reused: consume it before the next ``add``)."""
        if self._t != self.n_steps:
            raise RuntimeError(f"rollout holds {self._t} of {self.n_steps} steps; add more first")
        self._t = 0
        return Rollout(
            self.obs,
            self.action,
            self.reward,
            self.terminated,
            self.truncated,
            self.valid,
            np.asarray(last_obs),
        )


class EpisodeBuffer:
    """Collects whole episodes from N env streams for Monte-Carlo updates (REINFORCE).

    ``add`` returns True once ``episodes_per_update`` episodes have finished. ``pop`` lays
    the finished episodes out as columns of a ``[L, E, ...]`` Rollout (L the longest
    episode; shorter ones padded with ``valid = 0``) and ``last_obs [E]`` holding each
    episode's true final observation. Episodes still running keep collecting and join a
    later batch. A ``transient`` ``rlkit.core.Storage``.
    """

    transient = True

    def __init__(self, episodes_per_update: int, num_envs: int) -> None:
        self.episodes_per_update, self.num_envs = episodes_per_update, num_envs
        self._running: list[list[tuple]] = [[] for _ in range(num_envs)]
        self._done: list[tuple[list[tuple], np.ndarray]] = []

    def add(self, transition: Transition) -> bool:
        """Store one vector step; return True when enough episodes have finished."""
        for i in np.flatnonzero(transition.valid):
            term, trunc = bool(transition.terminated[i]), bool(transition.truncated[i])
            self._running[i].append(
                (transition.obs[i], transition.action[i], transition.reward[i], term, trunc)
            )
            if term or trunc:
                self._done.append((self._running[i], np.array(transition.next_obs[i])))
                self._running[i] = []
        return len(self._done) >= self.episodes_per_update

    @property
    def ready(self) -> bool:
        """Whether enough episodes have finished (``pop`` hands them out)."""
        return len(self._done) >= self.episodes_per_update

    def clear(self) -> None:
        """Drop the episodes in progress (after an env reset); finished ones are whole and stay."""
        self._running = [[] for _ in range(self.num_envs)]

    def pop(self, last_obs: np.ndarray | None = None) -> Rollout:
        """The finished episodes as a padded ``[L, E, ...]`` Rollout (``last_obs`` unused)."""
        episodes, self._done = self._done, []
        if not episodes:
            raise RuntimeError("no finished episode to hand out yet")
        length, count = max(len(rows) for rows, _ in episodes), len(episodes)
        first_obs = episodes[0][0][0][0]
        obs = np.zeros((length, count, *np.shape(first_obs)), np.asarray(first_obs).dtype)
        first_action = np.asarray(episodes[0][0][0][1])
        action = np.zeros((length, count, *first_action.shape), first_action.dtype)
        reward, terminated, truncated, valid = (
            np.zeros((length, count), np.float32) for _ in range(4)
        )
        for e, (rows, _) in enumerate(episodes):
            n = len(rows)
            obs[:n, e] = np.stack([r[0] for r in rows])
            action[:n, e] = [r[1] for r in rows]
            reward[:n, e] = [r[2] for r in rows]
            terminated[:n, e] = [r[3] for r in rows]
            truncated[:n, e] = [r[4] for r in rows]
            valid[:n, e] = 1.0
        final_obs = np.stack([final for _, final in episodes])
        return Rollout(obs, action, reward, terminated, truncated, valid, final_obs)
