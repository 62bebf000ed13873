"""A user's own envs, as a package of theirs would hold them: importing this registers them.

``--env tests.user_envs.corridor:UserCorridor-v0`` imports this module (from the repository
root, or with it on PYTHONPATH), which registers ``UserCorridor-v0`` and ``UserDictCorridor-v0``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


class Corridor(gym.Env):
    """Walk right along a corridor of ``length`` cells to the goal in the last one.

    Observation: the position, one-hot (float32 ``[length]``). Actions: 0 left, 1 right.
    Reward: +1 on reaching the goal (the episode terminates), -0.1 for every other step; the
    episode is truncated after ``max_steps``. Each episode starts in a random cell of the
    left half, so a seed matters. A DQN or A2C finds the way in a few thousand steps.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, length: int = 5, max_steps: int = 50) -> None:
        if length < 2:
            raise ValueError(f"length must be >= 2, got {length}")
        self.length, self.max_steps = int(length), int(max_steps)
        self.observation_space = gym.spaces.Box(0.0, 1.0, (self.length,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.position = self.steps = 0

    def observe(self) -> Any:
        obs = np.zeros(self.length, np.float32)
        obs[self.position] = 1.0
        return obs

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        self.position, self.steps = int(self.np_random.integers(0, self.length // 2 + 1)), 0
        return self.observe(), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        move = 1 if int(action) == 1 else -1
        self.position = min(max(self.position + move, 0), self.length - 1)
        self.steps += 1
        at_goal = self.position == self.length - 1
        return self.observe(), 1.0 if at_goal else -0.1, at_goal, self.steps >= self.max_steps, {}


class DictCorridor(Corridor):
    """``Corridor`` with ``Dict`` observations: the position and the fraction of steps left."""

    def __init__(self, length: int = 5, max_steps: int = 50) -> None:
        super().__init__(length, max_steps)
        self.observation_space = gym.spaces.Dict(
            {
                "position": gym.spaces.Box(0.0, 1.0, (self.length,), np.float32),
                "time_left": gym.spaces.Box(0.0, 1.0, (1,), np.float32),
            }
        )

    def observe(self) -> Any:
        left = np.array([1.0 - self.steps / self.max_steps], np.float32)
        return {"position": super().observe(), "time_left": left}


gym.register("UserCorridor-v0", entry_point=f"{__name__}:Corridor")
gym.register("UserDictCorridor-v0", entry_point=f"{__name__}:DictCorridor")
