"""Uniform replay: a numpy ring ``[rows, num_envs, ...]`` that stores each frame once.

Layout and contract
-------------------
Each env stream writes one row per ``add``: the *newest frame* of the observation it acted
on (the whole observation when ``frame_stack == 1``), the action, the reward, and the
``terminated`` / ``truncated`` / ``valid`` flags of that step. Because gymnasium's NEXT_STEP
autoreset makes the step after an episode end a reset step, the row after a finished
transition holds that episode's true *final* observation (an invalid row: its "transition"
is the reset). So every observation the env produced is stored exactly once, final
observations included, and the next observation of row ``t`` is always row ``t + 1``.

A frame stack for row ``t`` is rows ``t-k+1 .. t`` of its stream. Frames from before the
episode's first row are replaced the way ``FrameStackObservation`` pads: ``"reset"``
repeats the episode's first frame, ``"zero"`` uses zeros. ``sample()`` therefore returns
exactly the ``obs`` and ``next_obs`` arrays the environment produced, including the true
final observation of truncated episodes; ``add`` checks the padding of each episode's first
observation so that a mismatch is an error, never silently wrong data.

n-step returns
--------------
With ``n_step = n`` a sampled row ``t`` of a stream stands for up to ``n`` steps of it,
computed at sample time from the stored rows (no second copy of anything)::

    reward    = sum_{i<m} gamma**i * r[t+i]
    next_obs  = the observation of row t+m (a stack, padded as above)
    discount  = gamma**m * (1 - terminated[t+m-1])
    terminated, truncated = the flags of row t+m-1

where ``m <= n`` is the number of steps actually taken. Step ``i > 0`` (row ``t+i``) is
taken only if row ``t+i`` is valid and no earlier step of the window ended the episode:
the sum stops *after* a row that terminated (``discount`` 0) or was truncated (it then
bootstraps from the true final observation, row ``t+m``), and *before* an invalid row
(an autoreset row, or a row cut by a runner reset): that row still holds the successor of
row ``t+m-1``, so bootstrapping from it is right. ``n_step = 1`` is one-step replay.

Sampleable rows
---------------
A row is sampleable when it is valid and lies in one contiguous range of positions, the
same range for uniform and prioritized sampling:

- not among the ``n`` newest rows of the ring: a row's window needs rows ``t+1 .. t+n``
  to be stored (and their ``valid`` flags final, which a row's is once its successor is
  written). A row whose episode ends inside the stored rows waits for those ``n`` rows
  too: it becomes sampleable at most ``n - 1`` adds later than it could, which keeps the
  rule one range and the newest row excluded as before (``n = 1``: exactly that);
- once the ring has wrapped, not among the ``k - 1`` oldest rows (their stack history was
  overwritten);
- never an invalid row (autoreset rows and rows cut by a runner reset).

Memory: 1M Atari transitions (84x84 uint8, 4-stack) take 7.056 GB of frames plus 9 bytes a
transition of action (uint8), reward (float32) and four flags, 7.065 GB in all.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

from rlkit.types import Batch, Transition

PADDINGS = ("reset", "zero")
_RECENT_ROWS = 256  # rows can_sample() checks before scanning the whole ring


def available_memory_bytes() -> int | None:
    """Memory the kernel says a new allocation can use (MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class ReplayBuffer:
    """Ring buffer of transitions from ``num_envs`` env streams, sampled uniformly.

    A ``rlkit.core.Storage`` whose contents a run's checkpoints save (not ``transient``).

    Args:
        capacity: transitions to keep in total (rounded up to a multiple of ``num_envs``).
        num_envs: number of env streams adding a row each per ``add``.
        observation_space: the (single-env) observation space.
        action_space: the (single-env) action space.
        frame_stack: ``k`` if observations are ``FrameStackObservation`` stacks ``[k, ...]``
            whose newest frame is ``obs[-1]``; 1 stores whole observations.
        padding: how the env pads stacks at episode starts: ``"reset"`` (repeat the first
            frame, gymnasium's default) or ``"zero"``.
        seed: seed of the buffer's own sampling generator.
        check_memory: refuse to allocate more than the memory available.
        gamma: the discount factor, for the ``discount`` of sampled batches
            (``gamma**m * (1 - terminated)``, ``m`` the steps taken).
        n_step: sample ``n``-step returns (see the module docstring); 1 is one-step.

    Raises:
        ValueError: on inconsistent arguments, or ``MemoryError`` if the buffer cannot fit.
    """

    transient = False
    _extra_bytes_per_transition = 0  # what a subclass keeps beside the arrays (memory check)

    def __init__(
        self,
        capacity: int,
        num_envs: int,
        observation_space: gym.spaces.Space,
        action_space: gym.spaces.Space,
        *,
        frame_stack: int = 1,
        padding: str = "reset",
        seed: int | None = None,
        check_memory: bool = True,
        gamma: float = 1.0,
        n_step: int = 1,
    ) -> None:
        if isinstance(n_step, bool) or not isinstance(n_step, int | np.integer) or n_step < 1:
            raise ValueError(
                f"n_step must be an integer >= 1 (1 for one-step returns), got {n_step!r}"
            )
        if capacity < 2 * num_envs:
            raise ValueError(
                f"buffer capacity {capacity} is too small for {num_envs} envs; use at least "
                f"{2 * num_envs} (two rows per env stream)"
            )
        if num_envs < 1 or frame_stack < 1:
            raise ValueError(f"num_envs ({num_envs}) and frame_stack ({frame_stack}) must be >= 1")
        if math.ceil(capacity / num_envs) < frame_stack + n_step:
            # A full ring keeps k - 1 history rows, a sampleable row and its n successors.
            raise ValueError(
                f"buffer capacity {capacity} leaves {math.ceil(capacity / num_envs)} rows per env "
                f"stream, too few for stacks of {frame_stack} with n_step={n_step}; use at "
                f"least {(frame_stack + n_step) * num_envs}"
            )
        if padding not in PADDINGS:
            raise ValueError(f"unknown padding {padding!r}; choose one of {PADDINGS}")
        obs_shape = tuple(observation_space.shape or ())
        if frame_stack > 1 and (not obs_shape or obs_shape[0] != frame_stack):
            raise ValueError(
                f"frame_stack={frame_stack} needs observations of shape [{frame_stack}, ...] "
                f"(FrameStackObservation stacks on axis 0), got {obs_shape}"
            )
        self.num_envs = int(num_envs)
        self.rows = math.ceil(capacity / num_envs)
        self.frame_stack = int(frame_stack)
        self.padding = padding
        self.gamma = float(gamma)
        self.n_step = int(n_step)
        # (n_step, gamma, num_envs) -> window offsets and gamma powers; see _n_step_constants.
        self._n_step_cache: tuple[Any, np.ndarray, np.ndarray] | None = None
        self.obs_shape = obs_shape
        frame_shape = obs_shape[1:] if frame_stack > 1 else obs_shape
        action_shape = tuple(action_space.shape or ())
        action_dtype = np.dtype(action_space.dtype)
        self._discrete = isinstance(action_space, gym.spaces.Discrete)
        if (
            self._discrete
            and 0 <= action_space.start
            and action_space.start + action_space.n <= 256
        ):
            action_dtype = np.dtype(np.uint8)  # 1 byte instead of 8: it adds up at 1M
        shape = (self.rows, self.num_envs)
        specs = {
            "frames": (shape + frame_shape, np.dtype(observation_space.dtype)),
            "action": (shape + action_shape, action_dtype),
            "reward": (shape, np.dtype(np.float32)),
            "terminated": (shape, np.dtype(bool)),
            "truncated": (shape, np.dtype(bool)),
            "valid": (shape, np.dtype(bool)),
            "first": (shape, np.dtype(bool)),
        }
        need = sum(math.prod(s) * d.itemsize for s, d in specs.values())
        need += self._extra_bytes_per_transition * self.rows * self.num_envs
        free = available_memory_bytes() if check_memory else None
        if free is not None and need > free:
            per_transition = need / (self.rows * self.num_envs)
            fits = int(0.9 * free / per_transition) // num_envs * num_envs
            raise MemoryError(
                f"the replay buffer needs {need / 1e9:.2f} GB for {self.rows * num_envs:,} "
                f"transitions but only {free / 1e9:.2f} GB of memory is available; set "
                f"buffer_size to at most {fits:,} (e.g. --set buffer_size={fits})"
            )
        self._arrays = {name: np.zeros(s, d) for name, (s, d) in specs.items()}
        # [rows * N, ...] views: one flat index per sampled (row, env) pair.
        self._flat = {
            name: a.reshape(self.rows * self.num_envs, *a.shape[2:])
            for name, a in self._arrays.items()
        }
        self._positions = np.arange(self.frame_stack + 1)[None, :]  # [1, k + 1]
        self._offsets = self._positions - (self.frame_stack - 1)  # rows t-k+1 .. t+1 of row t
        self._rng = np.random.default_rng(seed)
        self._cursor = 0  # next row to write
        self._count = 0  # rows written, at most self.rows
        self._last_next: np.ndarray | None = None  # the last next_obs [N, *obs_shape]
        self._last_valid = np.zeros(self.num_envs, bool)

    # -- properties ------------------------------------------------------------------------
    @property
    def capacity(self) -> int:
        """Transitions the buffer can hold."""
        return self.rows * self.num_envs

    @property
    def size(self) -> int:
        """Rows stored so far, counted over all env streams."""
        return self._count * self.num_envs

    @property
    def nbytes(self) -> int:
        """Bytes held by the buffer's arrays."""
        return sum(a.nbytes for a in self._arrays.values())

    # -- writing ---------------------------------------------------------------------------
    def _newest(self, obs: np.ndarray) -> np.ndarray:
        return obs[:, -1] if self.frame_stack > 1 else obs

    def add(self, transition: Transition) -> None:
        """Store one vector step (``[N, ...]`` arrays) as one row per env stream.

        Raises:
            ValueError: if the arrays have the wrong leading size, or an episode's first
                observation is not padded as ``padding`` says.
        """
        obs = np.asarray(transition.obs)
        if obs.shape != (self.num_envs, *self.obs_shape):
            raise ValueError(
                f"expected obs of shape {(self.num_envs, *self.obs_shape)}, got {obs.shape}"
            )
        frame = self._newest(obs)
        a, c = self._arrays, self._cursor
        if self._last_next is None:
            continues = np.zeros(self.num_envs, bool)
        else:
            # A stream continues when this obs is the previous step's next_obs; if not (the
            # runner was reset), the previous row has no stored successor. The whole stack is
            # compared: a reset frame can equal the last frame of the previous episode.
            flat = (obs != self._last_next).reshape(self.num_envs, -1)
            continues = ~flat.any(axis=1)
            prev = (c - 1) % self.rows
            a["valid"][prev] &= continues
        first = ~(continues & self._last_valid)
        if self.frame_stack > 1 and first.any():
            self._check_padding(obs[first])
        a["frames"][c] = frame
        a["action"][c] = transition.action
        a["reward"][c] = transition.reward
        a["terminated"][c] = transition.terminated
        a["truncated"][c] = transition.truncated
        a["valid"][c] = transition.valid
        a["first"][c] = first
        self._last_next = np.array(transition.next_obs)
        self._last_valid = np.asarray(transition.valid, bool).copy()
        self._cursor = (c + 1) % self.rows
        self._count = min(self._count + 1, self.rows)

    def _check_padding(self, stacks: np.ndarray) -> None:
        pad = stacks[:, :-1]
        expected = stacks[:, -1:] if self.padding == "reset" else np.zeros_like(stacks[:, -1:])
        if not np.all(pad == expected):
            raise ValueError(
                f"an episode's first observation is not padded as padding={self.padding!r} "
                "expects (the frames before the newest one should "
                + ("repeat it" if self.padding == "reset" else "be zeros")
                + "); build the buffer with the padding your FrameStackObservation uses"
            )

    # -- sampling --------------------------------------------------------------------------
    def _sampleable_range(self) -> tuple[int, int, int]:
        """(oldest row, first sampleable position, number of sampleable positions).

        Positions count rows from the oldest stored one. The sampleable rows are the valid
        ones at positions ``low .. low + count - 1``: after the ``k - 1`` history rows of
        a wrapped ring, before the ``n_step`` newest rows (see "Sampleable rows" above).
        """
        full = self._count == self.rows
        oldest = self._cursor if full else 0
        low = self.frame_stack - 1 if full else 0
        return oldest, low, max(self._count - self.n_step - low, 0)

    def sampleable_mask(self) -> np.ndarray:
        """``[rows, num_envs]`` bool: the (row, env) pairs ``sample()`` can draw now."""
        oldest, low, n = self._sampleable_range()
        position = (np.arange(self.rows) - oldest) % self.rows
        return ((position >= low) & (position < low + n))[:, None] & self._arrays["valid"]

    def _is_sampleable(self, rows: np.ndarray, envs: np.ndarray) -> np.ndarray:
        """Whether each (row, env) pair is sampleable now: ``sampleable_mask()[rows, envs]``."""
        oldest, low, n = self._sampleable_range()
        position = (rows - oldest) % self.rows
        return (position >= low) & (position < low + n) & self._arrays["valid"][rows, envs]

    def can_sample(self) -> bool:
        """Whether at least one sampleable transition is stored.

        Only autoreset rows (one per episode) and rows cut by a runner reset are invalid,
        so the newest rows nearly always hold a valid one; the whole ring (2 ms at 1M
        transitions) is only scanned when they do not.
        """
        oldest, low, n = self._sampleable_range()
        if n == 0:
            return False
        valid = self._arrays["valid"]
        recent = min(n, _RECENT_ROWS)
        if valid[(oldest + low + np.arange(n - recent, n)) % self.rows].any():
            return True
        return bool(valid[(oldest + low + np.arange(n - recent)) % self.rows].any())

    def sample(self, batch_size: int, num_batches: int | None = None) -> Batch:
        """Sample transitions uniformly, with replacement.

        Args:
            batch_size: transitions per batch (B).
            num_batches: if given (G), return ``[G, B, ...]`` arrays for G fused updates.

        Returns:
            A ``Batch`` whose ``obs``/``next_obs`` are exactly what the env produced. They
            are read-only views of one gather of frames per transition (``k + 1`` for
            one-step replay: a stack and its successor share ``k - 1`` frames; for n-step
            replay ``k + n`` when every window of the batch is whole and ``n < k``, else
            ``2 k``), so they share memory: copy them (``np.array(batch.obs)``) to write
            into them. Every call returns new arrays; a batch stays valid after later
            calls. ``weights`` are ones.

        Raises:
            RuntimeError: if no transition can be sampled yet.
        """
        total = batch_size * (num_batches or 1)
        rows, envs = self._draw(total)
        batch = self._batch(rows, envs, np.ones(total, np.float32))  # uniform: no correction
        if num_batches is None:
            return batch
        return Batch(*(x.reshape(num_batches, batch_size, *x.shape[1:]) for x in batch))

    def _batch(self, rows: np.ndarray, envs: np.ndarray, weights: np.ndarray) -> Batch:
        """The ``[B]`` batch of sampleable (row, env) pairs ``rows``, ``envs``."""
        index = rows * self.num_envs + envs  # [B] into the flattened [rows * N] arrays
        flat = self._flat
        if self.n_step == 1:
            frames = self._gather_frames(rows, envs)  # [B, k + 1, *frame] or [B, 2, *obs]
            if self.frame_stack > 1:
                obs, next_obs = frames[:, :-1], frames[:, 1:]
            else:
                obs, next_obs = frames[:, 0], frames[:, 1]
            reward = flat["reward"][index]
            terminated = flat["terminated"][index].astype(np.float32)
            truncated = flat["truncated"][index].astype(np.float32)
            discount = np.float32(self.gamma) * (1.0 - terminated)  # one-step: gamma**1
        else:
            reward, terminated, truncated, discount, steps = self._n_step_returns(index)
            k, n = self.frame_stack, self.n_step
            if n < k and steps.min() == n:
                # Every window is whole: the stacks of t and t + n overlap in k - n frames,
                # so one gather of rows t-k+1 .. t+n holds both (k + n frames, not 2k).
                frames = self._gather_frames(rows, envs, span=n)  # [B, k + n, *frame]
                obs, next_obs = frames[:, :k], frames[:, n:]
            else:
                obs, next_obs = self._gather_n_step_frames(rows, envs, steps)
        obs.flags.writeable = next_obs.flags.writeable = False
        return Batch(
            obs=obs,
            action=flat["action"][index].astype(
                np.int64 if self._discrete else flat["action"].dtype
            ),
            reward=reward,
            next_obs=next_obs,
            terminated=terminated,
            truncated=truncated,
            discount=discount,
            weights=weights,
            indices=index,
        )

    def _n_step_returns(
        self, index: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The n-step sums of sampleable slots ``index`` (``row * num_envs + env``, ``[B]``).

        See "n-step returns" in the module docstring.

        Returns:
            ``reward``, ``terminated``, ``truncated`` and ``discount`` (float32 ``[B]``) and
            ``steps``, the number ``m`` of steps taken (int64 ``[B]``, 1 .. n).
        """
        n, flat = self.n_step, self._flat
        offsets, powers = self._n_step_constants()
        # Slots of rows t .. t+n-1 of the same stream: a row further is num_envs slots on.
        window = index[:, None] + offsets  # [B, n]
        size = self.rows * self.num_envs
        if index.max() >= size - offsets[-1]:  # some window wraps around the ring
            window %= size
        reward = flat["reward"][window]  # [B, n]
        terminated = flat["terminated"][window]  # [B, n]
        truncated = flat["truncated"][window]  # [B, n]
        # Step i > 0 is taken when row t+i is valid, step i-1 did not end the episode and
        # every step before was taken. Row t itself is valid: it was drawn as sampleable.
        go = flat["valid"][window]  # [B, n]
        go[:, 1:] &= ~(terminated[:, :-1] | truncated[:, :-1])
        whole = go.all()  # usually: no window ends early, so every step is taken
        if whole:
            steps = np.full(len(index), n)
            ended, cut = terminated[:, -1], truncated[:, -1]
            discount = np.where(ended, np.float32(0.0), np.float32(powers[n]))
        else:
            taken = np.logical_and.accumulate(go, axis=1)  # [B, n]
            steps = taken.sum(axis=1)  # [B] m
            # np.where, not a product: a NaN or Inf in a row not taken must not leak in.
            reward = np.where(taken, reward, np.float32(0.0))  # [B, n]
            last = np.arange(len(index)), steps - 1  # step m - 1 of each window
            ended, cut = terminated[last], truncated[last]  # [B] bool
            discount = np.where(ended, 0.0, powers[steps]).astype(np.float32)  # gamma**m
        # gamma**i as Python computes it, summed in step order: sum_{i<m} gamma**i r[t+i].
        ret = reward[:, 0].astype(np.float64)  # [B]
        for i in range(1, n):  # over the n steps, each vectorised over the batch
            ret += powers[i] * reward[:, i]
        return (
            ret.astype(np.float32),
            ended.astype(np.float32),
            cut.astype(np.float32),
            discount,
            steps,
        )

    def _n_step_constants(self) -> tuple[np.ndarray, np.ndarray]:
        """``(slot offsets of a window [n], gamma**i for i = 0 .. n [n + 1] float64)``."""
        key = (self.n_step, self.gamma, self.num_envs)
        cached = self._n_step_cache
        if cached is None or cached[0] != key:
            n = self.n_step
            offsets = np.arange(0, n * self.num_envs, self.num_envs)
            powers = np.array([self.gamma**i for i in range(n + 1)])
            self._n_step_cache = cached = (key, offsets, powers)
        return cached[1], cached[2]

    def _draw(self, total: int) -> tuple[np.ndarray, np.ndarray]:
        """Uniform (row, env) pairs ``[total]`` of valid sampleable transitions.

        Raises:
            RuntimeError: if no transition can be sampled yet.
        """
        oldest, low, n = self._sampleable_range()
        message = "the replay buffer holds no complete transition yet; add more first"
        if n == 0:
            raise RuntimeError(message)
        valid = self._arrays["valid"]
        rows = (oldest + low + self._rng.integers(0, n, total)) % self.rows
        envs = self._rng.integers(0, self.num_envs, total)
        todo = np.flatnonzero(~valid[rows, envs])
        # Only when every draw hit an invalid row can there be no valid one at all (the
        # rejection loop would never end); checking then keeps can_sample off the hot path.
        if todo.size == total and not self.can_sample():
            raise RuntimeError(message)
        while todo.size:  # rejection of autoreset rows (one per episode): a few rounds at most
            r = (oldest + low + self._rng.integers(0, n, todo.size)) % self.rows
            e = self._rng.integers(0, self.num_envs, todo.size)
            rows[todo], envs[todo] = r, e
            todo = todo[~valid[r, e]]
        return rows, envs

    def _gather_frames(self, rows: np.ndarray, envs: np.ndarray, span: int = 1) -> np.ndarray:
        """Frames of rows ``t-k+1 .. t+s`` of each sampled stream: ``[B, k + s, *frame]``.

        ``s`` is ``span``. Positions ``:k`` are the stack of row ``t`` and ``s:`` the stack
        of ``t + s``. Rows ``t .. t+s-1`` are valid (one-step replay: ``s = 1``), so rows
        ``t+1 .. t+s`` never start an episode (``add`` flags the row after an invalid one
        as a start): both stacks share one episode start and one padding mask. For
        ``k == 1`` and ``s == 1`` the result is ``[B, 2, *obs_shape]``: observation and
        successor.
        """
        k, n = self.frame_stack, self.num_envs
        if span == 1:
            positions, offsets = self._positions, self._offsets
        else:
            positions = np.arange(k + span)[None, :]  # [1, k + s]
            offsets = positions - (k - 1)
        window = (rows[:, None] + offsets) % self.rows  # [B, k + s], oldest first
        pad = None
        if k > 1:
            first = self._arrays["first"][window[:, :k], envs[:, None]]  # [B, k]
            # The episode's first row is the newest position flagged `first` (0 if none);
            # positions before it belong to an earlier episode and are replaced by padding.
            start = np.max(first * positions[:, :k], axis=1)  # [B]
            if start.any():
                pad = positions < start[:, None]  # [B, k + s]
                if self.padding == "reset":
                    window = np.where(pad, window[np.arange(len(rows)), start][:, None], window)
        # One contiguous copy per frame from the flattened [rows * N, *frame] ring
        # (np.take's fast path; mode="clip" skips the buffering its bounds check needs).
        out = np.take(self._flat["frames"], window * n + envs[:, None], axis=0, mode="clip")
        if pad is not None and self.padding == "zero":
            out[pad] = 0
        return out

    def _gather_n_step_frames(
        self, rows: np.ndarray, envs: np.ndarray, steps: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The stacks of rows ``t`` and ``t + m``, views of one ``[B, 2k, *frame]`` gather.

        For batches whose windows end at different steps (or ``n >= k``, where the stacks
        share no frame); ``_gather_frames(span=n)`` serves batches of whole windows.

        Rows ``t .. t+m-1`` are valid, so rows ``t+1 .. t+m`` continue the episode of row
        ``t`` (``add`` flags a row after an invalid one as an episode start): both stacks
        share the episode start found in the stack of row ``t``, and one padding mask.
        """
        k, n = self.frame_stack, self.num_envs
        if k == 1:
            window = np.stack([rows, (rows + steps) % self.rows], axis=1)  # [B, 2]
            out = np.take(self._flat["frames"], window * n + envs[:, None], axis=0, mode="clip")
            return out[:, 0], out[:, 1]
        positions = self._positions[:, :k]  # [1, k]
        # Rows of both stacks counted from row t-k+1: 0..k-1 for obs, m..m+k-1 for next_obs.
        relative = np.concatenate(
            [np.broadcast_to(positions, (len(rows), k)), positions + steps[:, None]], axis=1
        )  # [B, 2k]
        window = (rows[:, None] - (k - 1) + relative) % self.rows  # [B, 2k]
        first = self._arrays["first"][window[:, :k], envs[:, None]]  # [B, k]
        start = np.max(first * positions, axis=1)  # [B], as in _gather_frames
        pad = None
        if start.any():
            pad = relative < start[:, None]  # [B, 2k]
            if self.padding == "reset":
                window = np.where(pad, window[np.arange(len(rows)), start][:, None], window)
        out = np.take(self._flat["frames"], window * n + envs[:, None], axis=0, mode="clip")
        if pad is not None and self.padding == "zero":
            out[pad] = 0
        return out[:, :k], out[:, k:]

    # -- checkpoints -----------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Arrays and counters that restore the buffer exactly (no pickle needed).

        Only the rows written so far are in it: the ring fills rows ``0, 1, ...`` in order,
        so they are rows ``[0, count)`` (all of them once it has wrapped). A checkpoint of a
        buffer 6 % full then holds 6 % of its frames, not a file of zeros the size of the
        ring. The arrays are views of the buffer's own (a copy of 7 GB of Atari frames
        would double the memory): write them out before the next ``add``.
        """
        n = self._count
        state: dict[str, Any] = {f"array/{k}": v[:n] for k, v in self._arrays.items()}
        state["rows"], state["cursor"], state["count"] = self.rows, self._cursor, n
        state["last_valid"] = self._last_valid.copy()
        state["last_next"] = None if self._last_next is None else self._last_next.copy()
        state["rng"] = self._rng.bit_generator.state
        return state

    def restore(self, state: dict[str, Any]) -> None:
        """Load what ``state()`` returned (same capacity, envs and spaces).

        Arrays of the whole ring (what ``state()`` held before it kept only the written
        rows) load too.

        Raises:
            ValueError: if the state comes from a buffer of another capacity, env or
                number of envs, or its counters do not fit its arrays.
        """
        rows = int(state.get("rows", self.rows))
        count, cursor = int(state["count"]), int(state["cursor"])
        if rows != self.rows:
            raise ValueError(
                f"replay state has {rows} rows per env stream, this buffer {self.rows}: it "
                "comes from a buffer of another size (buffer_size or num_envs)"
            )
        if not 0 <= count <= rows or not 0 <= cursor < rows or (count < rows and cursor != count):
            raise ValueError(
                f"replay state has inconsistent counters: count {count}, cursor {cursor}"
            )
        sources = {}
        for k, v in self._arrays.items():
            src = np.asarray(state[f"array/{k}"])
            if (
                src.shape[0] not in (count, rows)
                or src.shape[1:] != v.shape[1:]
                or src.dtype != v.dtype
            ):
                raise ValueError(
                    f"replay state '{k}' has shape {src.shape} {src.dtype}, expected "
                    f"{(count, *v.shape[1:])} {v.dtype}: it comes from a buffer of another "
                    "size or env"
                )
            sources[k] = src
        for k, v in self._arrays.items():
            n = len(sources[k])
            v[:n] = sources[k]
            # Rows this buffer wrote beyond the state's are cleared, so it holds exactly what
            # the saved one did; rows it never wrote are zeros already and stay untouched
            # (writing zeros into them would commit memory the ring has not used yet).
            v[n : max(self._count, n)] = 0
        self._cursor, self._count = cursor, count
        self._last_valid = np.asarray(state["last_valid"], bool).copy()
        last = state["last_next"]
        self._last_next = None if last is None else np.array(last)
        self._rng.bit_generator.state = state["rng"]
