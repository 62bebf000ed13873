"""Tiny deterministic fake envs whose every frame says which env, episode and step made it."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.wrappers import FrameStackObservation

COUNTING_ENV_ID = "rlkit/Counting-v0"

# Frame code = ENV_STRIDE * env_index + EPISODE_STRIDE * episode + step + 1; the +1 keeps
# every frame non-zero so that "zero" stack padding can never be mistaken for a frame.
ENV_STRIDE = 10_000
EPISODE_STRIDE = 100


def frame_value(env_index: int, episode: int, step: int) -> int:
    """Return the pixel value of the frame at ``step`` of ``episode`` in env ``env_index``.

    Example: env 0, episode 0 shows 1, 2, 3, ...; env 0, episode 1 shows 101, 102, ...; env 2,
    episode 3, step 4 shows ``20305``. Values are unique while ``step < 99`` and
    ``episode < 100``; use a wide ``dtype`` (e.g. ``np.int32``) when that matters.
    """
    return ENV_STRIDE * env_index + EPISODE_STRIDE * episode + step + 1


def decode_value(value: int) -> tuple[int, int, int]:
    """Invert ``frame_value``: ``(env_index, episode, step)`` (for readable test failures)."""
    env_index, rest = divmod(int(value) - 1, ENV_STRIDE)
    episode, step = divmod(rest, EPISODE_STRIDE)
    return env_index, episode, step


class CountingEnv(gym.Env):
    """A deterministic env whose observation is a frame filled with one counting value.

    Every pixel of the observation at step ``t`` (``t = 0`` after ``reset``) of the
    ``e``-th episode equals ``frame_value(env_index, e, t)``, wrapped to ``dtype``
    (``value % 256`` for the default ``uint8``). Episode ``e`` counts resets since the
    last seeded reset: ``reset(seed=s)`` restarts it at 0 (the same seed gives the same
    frames), ``reset()`` without a seed moves on to the next episode. Actions
    (``Discrete(2)``) do not change anything. The reward of the step that leads to step
    ``t`` is ``float(t)``, so an episode of ``L`` steps returns ``L * (L + 1) / 2``.

    Args:
        episode_length: if ``terminate``, the episode terminates (``terminated=True``)
            after this many steps.
        terminate: whether the episode terminates after ``episode_length`` steps.
        max_episode_steps: if given, the episode is truncated (``truncated=True``) after
            this many steps, like gymnasium's ``TimeLimit``.
        env_index: distinguishes the frames of several envs (e.g. vector-env streams).
        obs_shape: shape of a frame, ``(H, W)`` by default; ``()`` gives scalar frames.
        dtype: frame dtype; use a wide one (``np.int32``) when frames must be unique over
            long runs.

    Example:
        >>> env = CountingEnv(episode_length=2)
        >>> int(env.reset(seed=0)[0][0, 0]), int(env.step(0)[0][0, 0])
        (1, 2)
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        episode_length: int = 5,
        *,
        terminate: bool = True,
        max_episode_steps: int | None = None,
        env_index: int = 0,
        obs_shape: Sequence[int] = (4, 4),
        dtype: Any = np.uint8,
    ) -> None:
        if episode_length < 1:
            raise ValueError(f"episode_length must be >= 1, got {episode_length}")
        if max_episode_steps is not None and max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1 or None, got {max_episode_steps}")
        self.episode_length = int(episode_length)
        self.terminate = bool(terminate)
        self.max_episode_steps = max_episode_steps
        self.env_index = int(env_index)
        self.dtype = np.dtype(dtype)
        info = np.iinfo(self.dtype)
        self.observation_space = gym.spaces.Box(
            int(info.min), int(info.max), tuple(obs_shape), self.dtype
        )
        self.action_space = gym.spaces.Discrete(2)
        self.episode = -1  # incremented by every reset
        self.t = 0

    def _obs(self) -> np.ndarray:
        value = frame_value(self.env_index, self.episode, self.t)
        wrapped = np.array(value).astype(self.dtype)  # modular wrap for narrow dtypes
        return np.full(self.observation_space.shape, wrapped, self.dtype)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start the next episode (episode 0 again after a seeded reset)."""
        super().reset(seed=seed)
        self.episode = 0 if seed is not None else self.episode + 1
        self.t = 0
        return self._obs(), {"episode_index": self.episode, "step_index": self.t}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Advance one step; ``action`` is checked but otherwise ignored."""
        if self.episode < 0:
            raise RuntimeError("call reset() before step()")
        if not self.action_space.contains(action):
            raise ValueError(f"action {action!r} is not in {self.action_space}")
        self.t += 1
        terminated = self.terminate and self.t >= self.episode_length
        truncated = self.max_episode_steps is not None and self.t >= self.max_episode_steps
        info = {"episode_index": self.episode, "step_index": self.t}
        return self._obs(), float(self.t), bool(terminated), bool(truncated), info


def _make_counting_env(stack: int, padding: str, kwargs: dict[str, Any]) -> gym.Env:
    # Module-level (not a lambda) so that spawned async workers can unpickle it.
    env: gym.Env = CountingEnv(**kwargs)
    if stack > 1:
        env = FrameStackObservation(env, stack, padding_type=padding)
    return env


def make_fake_vector_env(
    num_envs: int = 1,
    *,
    stack: int = 1,
    padding: str = "reset",
    episode_length: int | Sequence[int] = 5,
    truncate: bool = False,
    autoreset_mode: AutoresetMode = AutoresetMode.NEXT_STEP,
    **kwargs: Any,
) -> gym.vector.SyncVectorEnv:
    """Build a ``SyncVectorEnv`` of ``CountingEnv`` s, env ``i`` with ``env_index=i``.

    Args:
        num_envs: number of env streams.
        stack: if > 1, wrap each env in ``FrameStackObservation(env, stack, padding_type=padding)``.
        padding: ``"reset"`` or ``"zero"`` stack padding.
        episode_length: episode length of every env, or one per env.
        truncate: end episodes by truncation (``truncated=True``, via ``max_episode_steps``)
            instead of termination.
        autoreset_mode: the vector env's autoreset mode (rlkit needs ``NEXT_STEP``).
        **kwargs: more ``CountingEnv`` arguments (``obs_shape``, ``dtype``).

    Returns:
        The vector env.

    Example:
        >>> envs = make_fake_vector_env(3, stack=4, episode_length=[2, 3, 4], dtype=np.int32)
        >>> envs.reset(seed=0)[0].shape
        (3, 4, 4, 4)
    """
    lengths = [episode_length] * num_envs if isinstance(episode_length, int) else episode_length
    if len(lengths) != num_envs:
        raise ValueError(f"got {len(lengths)} episode lengths for {num_envs} envs")
    fns = []
    for i, length in enumerate(lengths):
        env_kwargs = dict(kwargs, episode_length=length, env_index=i)
        if truncate:
            env_kwargs.update(terminate=False, max_episode_steps=length)
        fns.append(functools.partial(_make_counting_env, stack, padding, env_kwargs))
    return gym.vector.SyncVectorEnv(fns, autoreset_mode=autoreset_mode)


def register_fake_envs() -> None:
    """Register ``CountingEnv`` as ``rlkit/Counting-v0`` (idempotent), for ``make_vector_env``."""
    if COUNTING_ENV_ID not in gym.registry:
        gym.register(COUNTING_ENV_ID, entry_point=CountingEnv)


class FakeAtariEnv(gym.Env):
    """An Atari-shaped game without ROMs: 84x84 uint8 frames, lives, large rewards.

    Frame ``t`` of a game is filled with ``(t + 1) % 256`` (so stacks are checkable), the
    reward of every step is 5.0, a life is lost every ``life_length`` steps (``info["lives"]``
    drops from ``lives``) and the game ends, ``terminated``, when the last life is lost.
    """

    metadata = {"render_modes": []}

    def __init__(self, lives: int = 3, life_length: int = 4, shape: tuple[int, int] = (84, 84)):
        self.observation_space = gym.spaces.Box(0, 255, shape, np.uint8)
        self.action_space = gym.spaces.Discrete(6)
        self.total_lives, self.life_length, self.shape = lives, life_length, shape
        self._t = 0

    def _frame(self) -> np.ndarray:
        return np.full(self.shape, (self._t + 1) % 256, np.uint8)

    def _lives(self) -> int:
        return self.total_lives - self._t // self.life_length

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a new game with all lives."""
        super().reset(seed=seed)
        self._t = 0
        return self._frame(), {"lives": self._lives()}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Advance one step; lose a life every ``life_length`` steps."""
        self._t += 1
        lives = self._lives()
        return self._frame(), 5.0, lives <= 0, False, {"lives": lives}


def make_fake_atari_vector_env(
    num_envs: int = 2, stack: int = 4, **kwargs: Any
) -> gym.vector.VectorEnv:
    """Zero-padded ``FrameStackObservation`` stacks of ``FakeAtariEnv``, NEXT_STEP autoreset."""
    fns = [functools.partial(_make_fake_atari, stack, dict(kwargs)) for _ in range(num_envs)]
    return gym.vector.SyncVectorEnv(fns, autoreset_mode=AutoresetMode.NEXT_STEP)


def _make_fake_atari(stack: int, kwargs: dict[str, Any]) -> gym.Env:
    return gym.wrappers.FrameStackObservation(FakeAtariEnv(**kwargs), stack, padding_type="zero")


class _FakeScreen:
    """The slice of ale-py's ALEInterface that gymnasium's AtariPreprocessing reads."""

    def __init__(self, game: FakeALEGame) -> None:
        self.game = game

    def getScreenGrayscale(self, out: np.ndarray) -> None:  # noqa: N802 (ale-py's name)
        """Copy the current 210x160 grayscale screen into ``out``."""
        out[...] = self.game.screen()

    def getScreenRGB(self, out: np.ndarray) -> None:  # noqa: N802 (ale-py's name)
        """Copy the current screen into an RGB ``out``."""
        out[...] = self.game.screen()[..., None]

    def lives(self) -> int:
        """Lives left."""
        return self.game.lives_left


class FakeALEGame(gym.Env):
    """A ROM-free stand-in for an ALE game at frame level (no frame skip), for protocol tests.

    Raw frame ``f`` shows a flickering sprite: the top half of the screen is 200 on even
    frames and 0 on odd ones, and the bottom half holds ``f % 200`` (the frame counter).
    A life is lost every ``life_frames`` frames; ``frames`` counts ``step`` calls.
    """

    metadata = {"render_modes": []}
    _frameskip = 1  # what AtariPreprocessing checks before skipping frames itself

    def __init__(self, lives: int = 3, life_frames: int = 400) -> None:
        self.observation_space = gym.spaces.Box(0, 255, (210, 160), np.uint8)
        self.action_space = gym.spaces.Discrete(6)
        self.ale = _FakeScreen(self)
        self.total_lives, self.life_frames = lives, life_frames
        self.frames = 0  # frames since reset
        self.lives_left = lives

    def get_action_meanings(self) -> list[str]:
        """ALE's minimal action set for a shooter."""
        return ["NOOP", "FIRE", "RIGHT", "LEFT", "RIGHTFIRE", "LEFTFIRE"]

    def screen(self) -> np.ndarray:
        """The 210x160 grayscale screen of the current frame."""
        out = np.empty((210, 160), np.uint8)
        out[:105] = 200 if self.frames % 2 == 0 else 0
        out[105:] = self.frames % 200
        return out

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """New game, all lives."""
        super().reset(seed=seed)
        self.frames, self.lives_left = 0, self.total_lives
        return self.screen(), {"lives": self.lives_left}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """One raw frame; reward 1 per frame."""
        self.frames += 1
        self.lives_left = self.total_lives - self.frames // self.life_frames
        return self.screen(), 1.0, self.lives_left <= 0, False, {"lives": self.lives_left}


FAULTY_ENV_ID = "rlkit/Faulty-v0"
FAULTS = ("raise", "exit", "hang", "nan_reward", "bad_obs", "out_of_bounds")


class FaultInjector(gym.Wrapper):
    """Injects one kind of fault into an env at a chosen step, for reliability tests.

    Faults: ``"raise"`` (the step raises ``RuntimeError``), ``"exit"`` (the process dies at
    once with ``os._exit(3)``, as after a segfault or the OOM killer), ``"hang"`` (the step
    sleeps ``hang_seconds``), ``"nan_reward"`` (the reward is NaN from then on) and
    ``"bad_obs"`` (the observation becomes float64 NaNs, outside the declared space) and
    ``"out_of_bounds"`` (the observation keeps its dtype, but its first element is 1e6).

    Args:
        env: the env to break.
        fault: one of ``FAULTS``.
        at_step: the fault strikes at this step (counted from the wrapper's creation, over
            episodes), and at every later one for ``nan_reward``.
        once_file: if given, the fault strikes only while this file does not exist, and
            creates it: across rebuilt envs (or restarted workers) it strikes once per run.
        hang_seconds: how long ``"hang"`` sleeps.
    """

    def __init__(
        self,
        env: gym.Env,
        fault: str = "raise",
        at_step: int = 10,
        once_file: str | None = None,
        hang_seconds: float = 3600.0,
    ) -> None:
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; choose one of {FAULTS}")
        super().__init__(env)
        self.fault, self.at_step, self.once_file = fault, at_step, once_file
        self.hang_seconds = hang_seconds
        self.steps = 0

    def _strikes(self) -> bool:
        if self.fault == "nan_reward":
            return self.steps >= self.at_step
        if self.steps != self.at_step:
            return False
        if self.once_file is None:
            return True
        try:  # exclusive create: exactly one env of one run gets it
            os.close(os.open(self.once_file, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return False
        return True

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        """Step the env, and break it at ``at_step``."""
        self.steps += 1
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self._strikes():
            if self.fault == "raise":
                raise RuntimeError(f"injected fault at step {self.steps}")
            if self.fault == "exit":
                os._exit(3)
            if self.fault == "hang":
                time.sleep(self.hang_seconds)
            if self.fault == "nan_reward":
                reward = float("nan")
            if self.fault == "bad_obs":
                obs = np.full(np.shape(obs), np.nan)  # float64 NaNs: outside any integer space
            if self.fault == "out_of_bounds":
                obs = np.array(obs, copy=True)
                obs.flat[0] = 1e6
        return obs, reward, terminated, truncated, info


def make_faulty_env(env_id: str = "CartPole-v1", **fault: Any) -> gym.Env:
    """``gym.make(env_id)`` wrapped in a ``FaultInjector(**fault)`` (``rlkit/Faulty-v0``)."""
    if env_id == COUNTING_ENV_ID:
        register_fake_envs()
    return FaultInjector(gym.make(env_id), **fault)


def make_faulty_counting_env(
    fault: str, at_step: int, once_file: str | None = None, index: int = 0, **counting: Any
) -> gym.Env:
    """A ``CountingEnv(env_index=index, **counting)`` in a ``FaultInjector``.

    By default the frames are 2 int32 pixels and episodes last 7 steps. Module-level and
    light to import, so that spawned async workers start quickly.
    """
    counting = {"episode_length": 7, "obs_shape": (2,), "dtype": np.int32, **counting}
    env = CountingEnv(env_index=index, **counting)
    return FaultInjector(env, fault, at_step=at_step, once_file=once_file, hang_seconds=600)


def register_faulty_env() -> None:
    """Register ``make_faulty_env`` as ``rlkit/Faulty-v0`` (idempotent).

    Example: ``make_vector_env("rlkit/Faulty-v0", 2, "async", fault="exit", at_step=20)``.
    """
    if FAULTY_ENV_ID not in gym.registry:
        gym.register(FAULTY_ENV_ID, entry_point=make_faulty_env)
