"""VectorRunner: steps a gymnasium vector env and turns its output into Transitions.

The vector env must use NEXT_STEP autoreset (``rlkit.envs.make_vector_env`` does): after
an episode ends, the env's next ``step`` only resets it. The runner marks that row
``valid=False`` so it is never learned from, and since the row's ``obs`` is the finished
episode's true final observation, a truncated transition can bootstrap from it.

Faults: given ``rebuild_envs``, a step that fails (an env raised, a worker process died, an
async worker hung past ``step_timeout``) closes the broken envs, builds new ones, resets
them with fresh seeds and hands out a *restart row*: like an autoreset row it has
``valid=False``, ``obs`` the last observation and ``next_obs`` the new episode's first, so
nothing half-stepped is ever learned from and the replay buffer keeps every completed
transition. ``restarted`` is True for that step (the on-policy loop drops its partial
rollout) and ``restarts`` counts them; past ``max_restarts`` the run stops with
``EnvWorkerError`` and the last worker traceback.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
import traceback
import warnings
from collections.abc import Callable

import gymnasium as gym
import numpy as np
from gymnasium.vector import AsyncVectorEnv, AutoresetMode

from rlkit import interrupts
from rlkit.distributions import clip_to_space
from rlkit.errors import EnvWorkerError, RlkitError
from rlkit.types import EpisodeStats, Transition

log = logging.getLogger(__name__)


def derive_seed(*keys: int) -> int:
    """A reproducible env seed in ``[0, 2**31 - 1)`` derived from ``keys`` (``SeedSequence``)."""
    return int(np.random.SeedSequence(list(keys)).generate_state(1)[0] % (2**31 - 1))


class VectorRunner:
    """Steps ``envs`` and tracks env steps and finished episodes.

    Args:
        envs: a gymnasium vector env with ``autoreset_mode=NEXT_STEP``.
        clip_rewards: hand ``sign(reward)`` to the learner (Atari's DQN protocol); the
            episode statistics keep the raw rewards.
        life_loss_terminal: mark a transition that loses a life (``info["lives"]`` drops)
            as terminated for the learner; the episode itself goes on to game over.
        rebuild_envs: builds a replacement for ``envs`` after a fault; without it a failing
            step raises as it is.
        max_restarts: env rebuilds allowed in the run before ``EnvWorkerError``.
        step_timeout: seconds an ``AsyncVectorEnv`` step may take before its workers count
            as hung (None: wait forever).

    Raises:
        ValueError: if the vector env uses another autoreset mode.
    """

    # The loop acts (``step(agent.act(obs, explore=True))``); RayRunner's workers act instead.
    acts_in_workers = False

    def __init__(
        self,
        envs: gym.vector.VectorEnv,
        *,
        clip_rewards: bool = False,
        life_loss_terminal: bool = False,
        rebuild_envs: Callable[[], gym.vector.VectorEnv] | None = None,
        max_restarts: int = 3,
        step_timeout: float | None = None,
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
        self._resetting = np.zeros(self.num_envs, bool)  # envs whose next step only resets
        self._any_resetting = False
        self._count_returns = True  # until the env is seen to report episode statistics
        self._returns = np.zeros(self.num_envs, np.float64)
        self._lengths = np.zeros(self.num_envs, np.int64)
        self._done_returns: list[float] = []
        self._done_lengths: list[int] = []
        self.rebuild_envs, self.max_restarts, self.step_timeout = (
            rebuild_envs,
            max_restarts,
            step_timeout,
        )
        self.restarts = 0  # env rebuilds after faults
        self.restarted = False  # whether the last step() was a restart row
        self._seed: int | None = None

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Reset every env (env i gets ``seed + i``) and return observations ``[N, ...]``.

        Episodes in progress are dropped from the statistics.
        """
        self._seed = seed
        self._obs, info = self.envs.reset(seed=seed)
        self._start_episodes(info)
        return self._obs

    def _start_episodes(self, info: dict) -> None:
        self._lives = np.asarray(info["lives"]).copy() if "lives" in info else None
        self._resetting[:] = False
        self._any_resetting = False
        self._returns[:] = 0.0
        self._lengths[:] = 0

    def step(self, actions: np.ndarray) -> tuple[Transition, np.ndarray]:
        """Step every env once.

        Args:
            actions: ``[N, *action_shape]`` actions; ignored for envs that are resetting.
                ``Box`` actions are clipped to the space's bounds for the env.

        Returns:
            ``(transition, obs)``: the step as a ``Transition`` (autoreset rows have
            ``valid=False``) and the observations to act on next.
        """
        if self._obs is None:
            raise RuntimeError("call reset() before step()")
        try:
            # Box actions go to the env clipped to its bounds; the transition keeps what
            # the policy sampled (a Gaussian's log-probability is of that).
            next_obs, reward, terminated, truncated, info = self._step_envs(
                clip_to_space(self.action_space, actions)
            )
        except (RlkitError, EnvWorkerError):  # the user's env breaks its contract: no retry
            raise
        except Exception as error:  # a worker raised, died or hung
            if self.rebuild_envs is None:
                raise
            return self._restart(error, actions)
        interrupts.check()  # a Ctrl-C during the step takes effect here, with no call pending
        self.restarted = False
        # Fast path: when no env is resetting (most steps), every row is valid and the
        # masks below are skipped; about a dozen numpy calls fewer per step.
        resetting = self._any_resetting
        valid = ~self._resetting if resetting else np.ones(self.num_envs, bool)
        reward = np.asarray(reward, np.float32)
        terminated = np.asarray(terminated, bool)
        truncated = np.asarray(truncated, bool)
        ended = terminated | truncated
        if resetting:
            ended &= valid
        any_ended = np.count_nonzero(ended) > 0
        self._track_episodes(reward, valid, ended, any_ended, resetting, info)
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
        self._resetting, self._any_resetting = ended, any_ended
        self._obs = next_obs
        self.env_steps += int(np.count_nonzero(valid)) if resetting else self.num_envs
        return transition, next_obs

    def _step_envs(self, actions: np.ndarray) -> tuple:
        if isinstance(self.envs, AsyncVectorEnv):
            self.envs.step_async(actions)
            with warnings.catch_warnings():  # gymnasium's copy of a worker's traceback:
                warnings.filterwarnings("ignore", r".*(ERROR|Worker-)")  # the runner logs it
                return self.envs.step_wait(timeout=self.step_timeout)
        return self.envs.step(actions)

    def _describe(self, error: Exception) -> str:
        """The failure in words, with the worker's traceback when there is one."""
        text = "".join(traceback.format_exception(error)).rstrip()
        processes = getattr(self.envs, "processes", [])
        if isinstance(error, (EOFError, OSError)):  # a pipe closed: give the OS a moment
            deadline = time.monotonic() + 2.0  # to report the worker's exit
            while all(p.is_alive() for p in processes) and time.monotonic() < deadline:
                time.sleep(0.01)
        dead = [
            f"worker {i} (exit code {p.exitcode})"
            for i, p in enumerate(processes)
            if not p.is_alive()
        ]
        if dead:
            return f"{', '.join(dead)} died\n{text}"
        if isinstance(error, multiprocessing.TimeoutError):
            return f"a worker hung: no answer within {self.step_timeout} s\n{text}"
        return text

    def _restart(self, error: Exception, actions: np.ndarray) -> tuple[Transition, np.ndarray]:
        """Replace broken envs; return the restart row and the new first observations."""
        last_obs = self._obs
        while True:
            self.restarts += 1
            detail = self._describe(error)
            if self.restarts > self.max_restarts:
                _discard(self.envs)
                raise EnvWorkerError(
                    f"the envs failed {self.restarts} times, more than max_env_restarts "
                    f"({self.max_restarts}) allows; the last failure:\n{detail}"
                ) from error
            log.warning(
                "env step failed; closing the envs and starting new ones (restart %d of at "
                "most %d); the partial step is dropped:\n%s",
                self.restarts,
                self.max_restarts,
                detail,
            )
            _discard(self.envs)
            # Fresh, reproducible seeds for the new envs.
            seed = None if self._seed is None else derive_seed(self._seed, self.restarts)
            try:
                self.envs = self.rebuild_envs()  # type: ignore[misc]
                obs, info = self.envs.reset(seed=seed)
                break
            except (RlkitError, EnvWorkerError):
                raise
            except Exception as again:  # noqa: BLE001 - the rebuild failed too: count it
                error = again
        self._start_episodes(info)
        self._obs = obs
        self.restarted = True
        zeros = np.zeros(self.num_envs, np.float32)
        transition = Transition(
            obs=last_obs,
            action=np.asarray(actions),
            reward=zeros,
            next_obs=obs,
            terminated=np.zeros(self.num_envs, bool),
            truncated=np.zeros(self.num_envs, bool),
            valid=np.zeros(self.num_envs, bool),
        )
        return transition, obs

    def _track_episodes(
        self,
        reward: np.ndarray,
        valid: np.ndarray,
        ended: np.ndarray,
        any_ended: bool,
        resetting: bool,
        info: dict,
    ) -> None:
        # Prefer statistics from a RecordEpisodeStatistics wrapper inside the env (it sees
        # the full game's unclipped score, e.g. for Atari); else count the rewards here,
        # until the first finished episode shows that the env reports them itself.
        if self._count_returns:
            if resetting:
                self._returns += np.where(valid, reward, 0.0)
                self._lengths += valid
            else:
                self._returns += reward
                self._lengths += 1
        if not any_ended:
            return
        if "episode" in info:
            self._count_returns = False
            mask = np.asarray(info["_episode"], bool)
            self._done_returns += np.asarray(info["episode"]["r"])[mask].tolist()
            self._done_lengths += np.asarray(info["episode"]["l"])[mask].tolist()
        else:
            self._done_returns += self._returns[ended].tolist()
            self._done_lengths += self._lengths[ended].tolist()
        self.episodes += int(np.count_nonzero(ended))
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
        for process in getattr(self.envs, "processes", []):  # workers ignore SIGTERM
            if process.is_alive():
                process.join(timeout=5)
            if process.is_alive():
                process.kill()


def _discard(envs: gym.vector.VectorEnv) -> None:
    """Close envs that failed, whatever state their workers are in, leaving no process."""
    processes = list(getattr(envs, "processes", []))
    for process in processes:  # dead, hung or healthy: none of them is needed any more
        if process.is_alive():
            process.kill()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            envs.close(terminate=True) if processes else envs.close()
        except Exception:  # noqa: BLE001 - broken pipes of dead workers; they are gone
            for pipe in getattr(envs, "parent_pipes", []):
                if pipe is not None:
                    pipe.close()
            envs.closed = True
    for process in processes:
        process.join(timeout=5)
    multiprocessing.active_children()  # reap
