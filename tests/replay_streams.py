"""Random vector-env streams and a plain-Python n-step reference, for the replay tests.

``RandomStreams`` makes the Transitions a runner would hand a buffer, with every kind of
episode end at random times: terminations and truncations (each followed by gymnasium's
NEXT_STEP autoreset row), and runner resets of one env or all of them (an obs that is not
the previous next_obs). Every frame holds a unique value, so a stack says where it came
from. ``reference_n_step`` reads only that raw list of Transitions, never a buffer.
"""

from __future__ import annotations

from typing import NamedTuple

import gymnasium as gym
import numpy as np

from rlkit.types import Transition

FRAME_SHAPE = (2,)


class RandomStreams:
    """``num_envs`` streams of ``[k, 2]`` (or ``[2]`` when ``k == 1``) int32 observations.

    Args:
        num_envs: env streams.
        stack: frame stack ``k``.
        padding: ``"reset"`` (repeat the first frame) or ``"zero"``.
        seed: seed of every random choice.
        p_end: chance that a step ends its episode (terminated or truncated, 50/50).
        p_reset: chance that one env is reset by the runner before a step.
        p_reset_all: chance that every env is reset before a step.
    """

    def __init__(
        self,
        num_envs: int,
        stack: int,
        padding: str,
        seed: int,
        *,
        p_end: float = 0.15,
        p_reset: float = 0.04,
        p_reset_all: float = 0.02,
    ) -> None:
        self.num_envs, self.stack, self.padding = num_envs, stack, padding
        self.rng = np.random.default_rng(seed)
        self.p_end, self.p_reset, self.p_reset_all = p_end, p_reset, p_reset_all
        self.counter = 0
        self.obs = [self._start() for _ in range(num_envs)]
        self.ended = [False] * num_envs  # the last step ended: the next one is an autoreset

    @property
    def obs_shape(self) -> tuple[int, ...]:
        return (self.stack, *FRAME_SHAPE) if self.stack > 1 else FRAME_SHAPE

    @property
    def observation_space(self) -> gym.spaces.Box:
        return gym.spaces.Box(0, 2**30, self.obs_shape, np.int32)

    def _frame(self) -> np.ndarray:
        self.counter += 1
        return np.full(FRAME_SHAPE, self.counter, np.int32)

    def _start(self) -> np.ndarray:
        frame = self._frame()
        if self.stack == 1:
            return frame
        pad = frame if self.padding == "reset" else np.zeros_like(frame)
        return np.stack([pad] * (self.stack - 1) + [frame])

    def _after(self, obs: np.ndarray) -> np.ndarray:
        frame = self._frame()
        return frame if self.stack == 1 else np.concatenate([obs[1:], frame[None]])

    def step(self) -> Transition:
        """One vector step of random actions."""
        n = self.num_envs
        if self.rng.random() < self.p_reset_all:
            self.obs, self.ended = [self._start() for _ in range(n)], [False] * n
        obs, next_obs = [], []
        reward = np.zeros(n, np.float32)
        terminated, truncated, valid = np.zeros(n, bool), np.zeros(n, bool), np.ones(n, bool)
        for e in range(n):
            if self.rng.random() < self.p_reset:
                self.obs[e], self.ended[e] = self._start(), False
            obs.append(self.obs[e])
            if self.ended[e]:  # autoreset row: the final obs, then the new episode's first
                self.obs[e], self.ended[e], valid[e] = self._start(), False, False
            else:
                self.obs[e] = self._after(self.obs[e])
                reward[e] = np.float32(self.rng.normal() * 3.0)
                if self.rng.random() < self.p_end:
                    self.ended[e] = True
                    terminated[e] = self.rng.random() < 0.5
                    truncated[e] = not terminated[e]
            next_obs.append(self.obs[e])
        return Transition(
            np.stack(obs),
            self.rng.integers(0, 4, n),
            reward,
            np.stack(next_obs),
            terminated,
            truncated,
            valid,
        )


class Expected(NamedTuple):
    """One n-step transition as the reference works it out."""

    obs: np.ndarray
    action: int
    reward: float
    next_obs: np.ndarray
    terminated: bool
    truncated: bool
    discount: float
    steps: int


def sampleable_adds(total: int, rows: int, stack: int, n_step: int) -> range:
    """Add indices whose rows may be sampled after ``total`` adds (module docstring rule).

    Stored: the last ``rows`` adds. Once the ring is full the ``k - 1`` oldest only serve
    as stack history; the ``n`` newest wait for their n-step window.
    """
    lo = total - rows + stack - 1 if total >= rows else 0
    return range(lo, total - n_step)


def reference_n_step(
    log: list[Transition], rows: int, stack: int, n_step: int, gamma: float
) -> dict[tuple[int, int], Expected]:
    """Every sampleable (add index, env) and its n-step transition, from the raw stream.

    A step ``a`` of a stream can be taken when its Transition is valid and the next add's
    obs is its next_obs (no runner reset in between). A window takes steps from ``a``
    until one ended the episode, one cannot be taken, or ``n`` were taken.
    """
    total = len(log)

    def takeable(a: int, e: int) -> bool:
        return bool(log[a].valid[e]) and np.array_equal(log[a + 1].obs[e], log[a].next_obs[e])

    expected = {}
    for a in sampleable_adds(total, rows, stack, n_step):
        for e in range(len(log[a].valid)):
            if not takeable(a, e):
                continue
            ret, m = 0.0, 0
            for i in range(n_step):
                if i > 0 and not takeable(a + i, e):
                    break
                tr = log[a + i]
                ret += gamma**i * float(tr.reward[e])
                m = i + 1
                if tr.terminated[e] or tr.truncated[e]:
                    break
            last = log[a + m - 1]
            term = bool(last.terminated[e])
            expected[(a, e)] = Expected(
                obs=log[a].obs[e],
                action=int(log[a].action[e]),
                reward=ret,
                next_obs=last.next_obs[e],
                terminated=term,
                truncated=bool(last.truncated[e]),
                discount=0.0 if term else gamma**m,
                steps=m,
            )
    return expected


def add_index(flat_index: int, total: int, rows: int, num_envs: int) -> tuple[int, int]:
    """(add index, env) of a buffer's flat ``row * num_envs + env`` index after ``total`` adds."""
    row, env = divmod(int(flat_index), num_envs)
    return total - 1 - (total - 1 - row) % rows, env


def check_against_reference(
    batch, expected: dict[tuple[int, int], Expected], total: int, rows: int, num_envs: int
) -> set[tuple[int, int]]:
    """Assert every sampled transition equals the reference's; return the (add, env) keys."""
    lead = batch.reward.ndim
    size = batch.reward.size
    flat = [x.reshape(size, *x.shape[lead:]) for x in batch]
    obs, action, reward, next_obs, terminated, truncated, discount, _, indices = flat
    keys = set()
    for j in range(size):
        key = add_index(indices[j], total, rows, num_envs)
        assert key in expected, f"sampled add {key} is not sampleable (after {total} adds)"
        ref = expected[key]
        assert np.array_equal(obs[j], ref.obs), (key, obs[j], ref.obs)
        assert np.array_equal(next_obs[j], ref.next_obs), (key, next_obs[j], ref.next_obs)
        assert action[j] == ref.action, key
        assert reward[j] == np.float32(ref.reward), (key, reward[j], ref.reward)
        assert terminated[j] == float(ref.terminated), key
        assert truncated[j] == float(ref.truncated), key
        assert discount[j] == np.float32(ref.discount), (key, discount[j], ref.discount)
        keys.add(key)
    return keys
