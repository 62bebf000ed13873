"""A rollout worker: one Ray actor's vector env and acting policy, collecting chunks of steps.

The class is plain Python (``RayRunner`` wraps it with ``ray.remote``), so it can be
tested in-process. The env is stepped by a ``VectorRunner``, which gives the worker the
local runner's exact data: NEXT_STEP autoreset rows marked invalid, episode statistics,
reward clipping and life-loss terminals.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from rlkit.distributed.acting import ActingPolicy, PolicySnapshot
from rlkit.errors import RlkitError
from rlkit.runner import VectorRunner
from rlkit.types import Transition

EnvFactory = Callable[[int], gym.vector.VectorEnv]  # num_envs -> vector env (NEXT_STEP)


class RolloutWorker:
    """Owns ``num_envs`` envs and a copy of the policy; collects ``[T, num_envs]`` chunks.

    Args:
        env_factory: builds the vector env from a number of envs (picklable: Ray ships it).
        num_envs: envs in this worker.
        worker_index: position among the workers; with ``seed``, seeds the worker's
            action sampling.
        seed: the run's seed.
        runner_kwargs: ``clip_rewards`` and ``life_loss_terminal`` of the VectorRunner.
    """

    def __init__(
        self,
        env_factory: EnvFactory,
        num_envs: int,
        worker_index: int,
        seed: int,
        runner_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.runner = VectorRunner(env_factory(num_envs), **(runner_kwargs or {}))
        self.num_envs = num_envs
        self.rng = np.random.default_rng([seed, worker_index])
        self.policy: ActingPolicy | None = None
        # None until reset(): a worker that Ray restarted after a crash starts here, and
        # says so (collect returns None) instead of stepping envs nobody seeded.
        self.obs: np.ndarray | None = None

    def info(self) -> dict[str, Any]:
        """The process id and the single-env spaces."""
        return {
            "pid": os.getpid(),
            "observation_space": self.runner.observation_space,
            "action_space": self.runner.action_space,
        }

    def reset(self, seed: int | None) -> np.ndarray:
        """Reset the envs (env k gets ``seed + k``); return observations ``[n, ...]``."""
        self.obs = self.runner.reset(seed=seed)
        return self.obs

    def step(self, actions: np.ndarray) -> tuple[Any, ...] | None:
        """One step: ``(transition, obs, episode stats)``, or None if not reset (restarted)."""
        if self.obs is None:
            return None
        transition, self.obs = self._step(actions)
        return transition, self.obs, self.runner.pop_episode_stats()

    def _step(self, actions: np.ndarray) -> tuple[Transition, np.ndarray]:
        """``runner.step``; an env that raises takes the actor down, like a crash.

        Ray then restarts the actor and the learner's crash path takes over: the partial
        chunk is dropped, the restart counted and capped. The traceback goes to the
        actor's stderr, which Ray shows on the driver. A user's ``RlkitError`` (an env
        breaking its space) is no crash: it reaches the learner as it is.
        """
        try:
            return self.runner.step(actions)
        except RlkitError:
            raise
        except Exception:  # noqa: BLE001 - any env failure: die so that Ray restarts us
            traceback.print_exc(file=sys.stderr)
            sys.stderr.flush()
            os._exit(1)

    def collect(
        self, snapshot: PolicySnapshot, num_steps: int, explore_step: int, stride: int
    ) -> dict[str, Any] | None:
        """Step the envs ``num_steps`` times, acting with ``snapshot``.

        Args:
            snapshot: the policy to act with (Ray hands the object-store copy over).
            num_steps: rows T of the chunk.
            explore_step: the learner's acting-step count before the chunk's first row;
                row t acts with epsilon at ``explore_step + t * stride``.
            stride: acting steps per row over all workers (the learner's ``num_envs``).

        Returns:
            None if the worker was not reset (Ray restarted it), else a dict of arrays:
            ``obs [T + 1, n, ...]`` (row t + 1 is row t's next observation), ``action``,
            ``reward``, ``terminated``, ``truncated``, ``valid`` (``[T, n]``), ``episodes``
            (``(row, returns, lengths)`` for rows where episodes ended) and ``version``.
        """
        if self.obs is None:
            return None
        if self.policy is None:
            self.policy = ActingPolicy(snapshot, self.rng)
        elif self.policy.snapshot.version != snapshot.version:
            self.policy.load(snapshot)
        n, obs = self.num_envs, self.obs
        out = {
            "obs": np.empty((num_steps + 1, *obs.shape), obs.dtype),
            "action": None,
            "reward": np.empty((num_steps, n), np.float32),
            "terminated": np.empty((num_steps, n), bool),
            "truncated": np.empty((num_steps, n), bool),
            "valid": np.empty((num_steps, n), bool),
        }
        out["obs"][0] = obs
        episodes = []
        for t in range(num_steps):
            actions = self.policy(obs, explore_step + t * stride)
            transition, obs = self._step(actions)
            if out["action"] is None:
                out["action"] = np.empty((num_steps, *np.shape(actions)), np.asarray(actions).dtype)
            out["action"][t] = actions
            out["obs"][t + 1] = obs
            for key in ("reward", "terminated", "truncated", "valid"):
                out[key][t] = getattr(transition, key)
            stats = self.runner.pop_episode_stats()
            if len(stats.returns):
                episodes.append((t, stats.returns, stats.lengths))
        self.obs = obs
        out["episodes"], out["version"] = episodes, snapshot.version
        return out
