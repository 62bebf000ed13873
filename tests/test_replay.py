"""Exact tests of rlkit.replay.ReplayBuffer.

The contract under test: ``sample()`` returns exactly the ``obs`` / ``next_obs`` arrays the
environment produced for the sampled transitions, frame stacks included, and never an
autoreset row. The fake envs of ``rlkit.envs.testing`` give every frame a unique value, so
each sampled transition can be looked up by its ``obs`` among the transitions the runner
produced and compared field by field.
"""

from __future__ import annotations

import json
from typing import NamedTuple

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.wrappers import FrameStackObservation

import rlkit.replay
from rlkit.envs import make_vector_env
from rlkit.envs.testing import decode_value, frame_value, make_fake_vector_env
from rlkit.replay import ReplayBuffer
from rlkit.runner import VectorRunner
from rlkit.types import Batch, Transition

# -- helpers ---------------------------------------------------------------------------------


class Ref(NamedTuple):
    """One valid transition exactly as the runner handed it over."""

    obs: np.ndarray
    action: int
    reward: float
    next_obs: np.ndarray
    terminated: bool
    truncated: bool


class Run(NamedTuple):
    runner: VectorRunner
    refs: dict[bytes, Ref]  # obs bytes -> the valid transition acting on that obs
    invalid: set[bytes]  # obs bytes of autoreset rows
    log: list[list[bytes | None]]  # per add, per env: the valid transition's key, or None


def make_buffer(envs: gym.vector.VectorEnv, capacity: int, *, seed: int = 0, **kw) -> ReplayBuffer:
    """A buffer for ``envs``, with the frame stack of their ``FrameStackObservation`` if any."""
    space = envs.single_observation_space
    sub = envs.envs[0] if isinstance(envs, gym.vector.SyncVectorEnv) else None
    kw.setdefault("frame_stack", sub.stack_size if isinstance(sub, FrameStackObservation) else 1)
    return ReplayBuffer(capacity, envs.num_envs, space, envs.single_action_space, seed=seed, **kw)


def run_and_add(
    envs: gym.vector.VectorEnv,
    buffer: ReplayBuffer,
    steps: int,
    *,
    seed: int = 0,
    action_seed: int = 0,
    reset_at: tuple[int, ...] = (),
) -> Run:
    """Step ``envs`` with random actions, add every Transition to ``buffer``, keep references.

    ``reset_at``: vector steps before which ``runner.reset()`` (no seed) is called, cutting
    the episodes in progress.
    """
    runner = VectorRunner(envs)
    runner.reset(seed=seed)
    rng = np.random.default_rng(action_seed)
    run = Run(runner, {}, set(), [])
    for step in range(steps):
        if step in reset_at:
            runner.reset()
        tr, _ = runner.step(rng.integers(0, 2, runner.num_envs))
        buffer.add(tr)
        record(run, tr)
    return run


def record(run: Run, tr: Transition) -> None:
    """Keep a reference copy of every row of ``tr``."""
    keys: list[bytes | None] = []
    for i in range(len(tr.valid)):
        key = tr.obs[i].tobytes()
        assert key not in run.refs and key not in run.invalid, "test premise: unique frames"
        if tr.valid[i]:
            run.refs[key] = Ref(
                tr.obs[i].copy(),
                int(tr.action[i]),
                float(tr.reward[i]),
                tr.next_obs[i].copy(),
                bool(tr.terminated[i]),
                bool(tr.truncated[i]),
            )
            keys.append(key)
        else:
            run.invalid.add(key)
            keys.append(None)
    run.log.append(keys)


def describe(x: np.ndarray) -> list:
    """(env, episode, step) of each frame of an observation, for readable failures."""
    firsts = x.reshape(x.shape[0], -1)[:, 0] if x.ndim else x.reshape(1)
    return [decode_value(v) if v else 0 for v in firsts.tolist()]


def flat(batch: Batch) -> Batch:
    lead = batch.reward.ndim
    n = batch.reward.size
    return Batch(*(x.reshape(n, *x.shape[lead:]) for x in batch))


def check_batch(
    batch: Batch, run: Run, obs_dtype: np.dtype, buffer_gamma: float = 1.0
) -> set[bytes]:
    """Assert that every sampled transition equals a valid reference one; return their keys.

    ``discount`` must be ``buffer_gamma * (1 - terminated)`` and ``weights`` ones (uniform).
    """
    b = flat(batch)
    assert b.obs.dtype == obs_dtype and b.next_obs.dtype == obs_dtype
    assert b.action.dtype == np.int64
    assert b.reward.dtype == b.terminated.dtype == b.truncated.dtype == np.float32
    assert b.discount.dtype == b.weights.dtype == np.float32 and b.indices.dtype == np.int64
    keys = set()
    for j in range(b.reward.size):
        key = b.obs[j].tobytes()
        assert key not in run.invalid, f"sampled an autoreset row, obs {describe(b.obs[j])}"
        assert key in run.refs, f"sampled obs {describe(b.obs[j])} is no transition's obs"
        ref = run.refs[key]
        assert np.array_equal(b.obs[j], ref.obs)
        assert np.array_equal(b.next_obs[j], ref.next_obs), (
            f"obs {describe(ref.obs)}: next_obs {describe(b.next_obs[j])}, "
            f"expected {describe(ref.next_obs)}"
        )
        assert b.action[j] == ref.action
        assert b.reward[j] == ref.reward
        assert b.terminated[j] == float(ref.terminated)
        assert b.truncated[j] == float(ref.truncated)
        assert b.discount[j] == np.float32(0.0 if ref.terminated else buffer_gamma)
        assert b.weights[j] == 1.0
        keys.add(key)
    return keys


def expected_keys(run: Run, buffer: ReplayBuffer, *, skip_adds: set[int] = frozenset()) -> set:
    """Keys of the transitions the buffer may sample: stored, successor stored, history kept."""
    total = len(run.log)
    if total <= buffer.rows:
        lo = 0
    else:  # oldest kept row, plus k - 1 rows whose stack history was overwritten
        lo = total - buffer.rows + buffer.frame_stack - 1
    return {
        key
        for n in range(lo, total - 1)  # the newest row has no successor yet
        if n not in skip_adds
        for key in run.log[n]
        if key is not None
    }


def sampled_set(buffer: ReplayBuffer) -> set[tuple]:
    """Every distinct sampled transition as plain tuples (for literal comparisons)."""
    b = buffer.sample(2048)
    return {
        (
            tuple(b.obs[j].reshape(b.obs.shape[1], -1)[:, 0].tolist()),
            tuple(b.next_obs[j].reshape(b.obs.shape[1], -1)[:, 0].tolist()),
            float(b.reward[j]),
            float(b.terminated[j]),
            float(b.truncated[j]),
        )
        for j in range(len(b.reward))
    }


# -- exact stacks written out ------------------------------------------------------------------


@pytest.mark.parametrize("obs_shape", [(), (2, 3)])
def test_literal_stacks_after_termination_reset_padding(obs_shape):
    # One env, episodes of 3 steps: episode 0 shows frames 1 2 3 4 (4 is the final obs),
    # episode 1 shows 101 102 ... With padding "reset" the first frame is repeated.
    envs = make_fake_vector_env(1, stack=4, padding="reset", episode_length=3, obs_shape=obs_shape)
    buffer = make_buffer(envs, 100)
    run_and_add(envs, buffer, 6)
    # Adds: 3 transitions, the autoreset row (obs [1,2,3,4]), 2 transitions of episode 1
    # (the newest, [101,101,101,102] -> [101,101,102,103], has no stored successor yet).
    assert sampled_set(buffer) == {
        ((1, 1, 1, 1), (1, 1, 1, 2), 1.0, 0.0, 0.0),
        ((1, 1, 1, 2), (1, 1, 2, 3), 2.0, 0.0, 0.0),
        ((1, 1, 2, 3), (1, 2, 3, 4), 3.0, 1.0, 0.0),
        ((101, 101, 101, 101), (101, 101, 101, 102), 1.0, 0.0, 0.0),
    }
    batch = buffer.sample(64)
    row = next(j for j in range(64) if batch.reward[j] == 3.0)
    expected = np.array([1, 1, 2, 3], np.uint8).reshape(4, *[1] * len(obs_shape))
    assert np.array_equal(batch.obs[row], np.broadcast_to(expected, (4, *obs_shape)))
    expected_next = np.array([1, 2, 3, 4], np.uint8).reshape(4, *[1] * len(obs_shape))
    assert np.array_equal(batch.next_obs[row], np.broadcast_to(expected_next, (4, *obs_shape)))


def test_literal_stacks_zero_padding():
    envs = make_fake_vector_env(1, stack=4, padding="zero", episode_length=3, obs_shape=())
    buffer = make_buffer(envs, 100, padding="zero")
    run_and_add(envs, buffer, 7)
    assert sampled_set(buffer) == {
        ((0, 0, 0, 1), (0, 0, 1, 2), 1.0, 0.0, 0.0),
        ((0, 0, 1, 2), (0, 1, 2, 3), 2.0, 0.0, 0.0),
        ((0, 1, 2, 3), (1, 2, 3, 4), 3.0, 1.0, 0.0),
        ((0, 0, 0, 101), (0, 0, 101, 102), 1.0, 0.0, 0.0),
        ((0, 0, 101, 102), (0, 101, 102, 103), 2.0, 0.0, 0.0),
    }


def test_literal_truncated_transition_bootstraps_from_true_final_obs():
    envs = make_fake_vector_env(1, stack=2, episode_length=2, truncate=True, obs_shape=())
    buffer = make_buffer(envs, 100)
    run_and_add(envs, buffer, 5)
    # [1,1]->[1,2]; [1,2]->[2,3] truncated; autoreset row [2,3]; [101,101]->[101,102];
    # [101,102]->[102,103] (the newest, not sampleable yet).
    assert sampled_set(buffer) == {
        ((1, 1), (1, 2), 1.0, 0.0, 0.0),
        ((1, 2), (2, 3), 2.0, 0.0, 1.0),
        ((101, 101), (101, 102), 1.0, 0.0, 0.0),
    }


def test_literal_wraparound_drops_rows_whose_history_was_overwritten():
    # 4 rows, stacks of 2, one long episode: obs frames 1..6 are added, rows keep 3..6.
    envs = make_fake_vector_env(1, stack=2, episode_length=50, obs_shape=())
    buffer = make_buffer(envs, 4)
    run_and_add(envs, buffer, 6)
    assert buffer.size == buffer.capacity == 4
    # [2,3] (oldest row, frame 2 overwritten) and [6,6]->... (newest) are not sampleable.
    assert sampled_set(buffer) == {
        ((3, 4), (4, 5), 4.0, 0.0, 0.0),
        ((4, 5), (5, 6), 5.0, 0.0, 0.0),
    }


# -- random runs checked against references --------------------------------------------------


@pytest.mark.parametrize("padding", ["reset", "zero"])
@pytest.mark.parametrize("truncate", [False, True])
def test_samples_equal_env_transitions_three_streams(padding, truncate):
    envs = make_fake_vector_env(
        3, stack=4, padding=padding, episode_length=[2, 3, 7], truncate=truncate, dtype=np.int32
    )
    buffer = make_buffer(envs, 300, padding=padding)
    run = run_and_add(envs, buffer, 40)
    keys = set()
    for _ in range(4):
        keys |= check_batch(buffer.sample(512), run, np.dtype(np.int32))
    assert keys == expected_keys(run, buffer)  # every stored transition is reachable
    # The episode ends that were sampled carry the right flag and the true final frame.
    ends = [run.refs[k] for k in keys if run.refs[k].terminated or run.refs[k].truncated]
    # An episode of L steps takes L + 1 vector steps (the last is the autoreset row).
    assert len(ends) == 40 // 3 + 40 // 4 + 40 // 8 == 28
    for ref in ends:
        env_index, episode, step = decode_value(ref.next_obs[-1].flat[0])
        assert step == [2, 3, 7][env_index]
        assert (ref.terminated, ref.truncated) == (not truncate, truncate)


@pytest.mark.parametrize("padding", ["reset", "zero"])
def test_wraparound_many_more_steps_than_capacity(padding):
    envs = make_fake_vector_env(
        3, stack=4, padding=padding, episode_length=[3, 4, 6], dtype=np.int32
    )
    buffer = make_buffer(envs, 30, padding=padding)  # 10 rows per stream
    runner = VectorRunner(envs)
    # Check after every add, from an empty buffer to 9x its capacity.
    runner.reset(seed=0)
    rng = np.random.default_rng(1)
    run = Run(runner, {}, set(), [])
    for step in range(90):
        tr, _ = runner.step(rng.integers(0, 2, 3))
        buffer.add(tr)
        record(run, tr)
        assert buffer.size == 3 * min(step + 1, 10)
        if not buffer.can_sample():
            assert not expected_keys(run, buffer)
            continue
        sampled = check_batch(buffer.sample(256), run, np.dtype(np.int32))
        expected = expected_keys(run, buffer)
        assert sampled <= expected
        if step % 10 == 0:
            for _ in range(3):
                sampled |= check_batch(buffer.sample(256), run, np.dtype(np.int32))
            assert sampled == expected


def test_frame_stack_one_vector_observations():
    envs = make_fake_vector_env(2, episode_length=[3, 5], obs_shape=(3,), dtype=np.int32)
    buffer = make_buffer(envs, 16)
    assert buffer.frame_stack == 1
    run = run_and_add(envs, buffer, 30)
    keys = check_batch(buffer.sample(1024), run, np.dtype(np.int32))
    assert keys == expected_keys(run, buffer)


def test_frame_stack_one_image_observations_uint8():
    envs = make_fake_vector_env(1, episode_length=4)
    buffer = make_buffer(envs, 64)
    run = run_and_add(envs, buffer, 12)
    b = buffer.sample(256)
    check_batch(b, run, np.dtype(np.uint8))
    assert b.obs.shape == (256, 4, 4)
    assert {int(x) for x in b.obs[:, 0, 0]} == {1, 2, 3, 4, 101, 102, 103, 104, 201}


def test_cartpole_float_observations():
    envs = make_vector_env("CartPole-v1", 2)
    buffer = make_buffer(envs, 1000)
    run = run_and_add(envs, buffer, 150)
    assert run.invalid  # some episodes ended
    keys = check_batch(buffer.sample(2048), run, np.dtype(np.float32))
    assert keys <= expected_keys(run, buffer)
    envs.close()


def test_discontinuity_after_runner_reset_never_gives_wrong_next_obs():
    envs = make_fake_vector_env(3, stack=4, episode_length=[4, 5, 9], dtype=np.int32)
    buffer = make_buffer(envs, 600)
    reset_at = (7, 8, 15, 29, 30, 41)
    run = run_and_add(envs, buffer, 50, reset_at=reset_at)
    keys = set()
    for _ in range(4):
        keys |= check_batch(buffer.sample(512), run, np.dtype(np.int32))
    # The transitions right before a reset have no stored successor: they are dropped.
    assert keys == expected_keys(run, buffer, skip_adds={s - 1 for s in reset_at})


def test_discontinuity_in_wrapped_buffer():
    envs = make_fake_vector_env(2, stack=3, padding="zero", episode_length=[6, 11], dtype=np.int32)
    buffer = make_buffer(envs, 20, padding="zero")
    reset_at = tuple(range(5, 60, 7))
    run = run_and_add(envs, buffer, 60, reset_at=reset_at)
    keys = check_batch(buffer.sample(2048), run, np.dtype(np.int32))
    assert keys == expected_keys(run, buffer, skip_adds={s - 1 for s in reset_at})


def test_reset_whose_first_frame_equals_the_last_next_frame_is_an_episode_start():
    # The buffer detects a runner reset by comparing each new obs with the last next_obs.
    # Here an episode is cut after [1,1,2,3] -> [1,2,3,4] and the new episode happens to
    # start on a frame equal to the last one seen (4), as a static start screen can. The
    # new obs [4,4,4,4] is not the old next_obs [1,2,3,4]: it starts an episode.
    def stack(*v):
        return np.array([v], np.uint8)

    def tr(obs, next_obs, reward):
        return Transition(
            stack(*obs),
            np.array([0]),
            np.array([reward], np.float32),
            stack(*next_obs),
            np.array([False]),
            np.array([False]),
            np.array([True]),
        )

    space = gym.spaces.Box(0, 255, (4,), np.uint8)
    buffer = ReplayBuffer(100, 1, space, gym.spaces.Discrete(2), frame_stack=4, seed=0)
    buffer.add(tr((1, 1, 1, 1), (1, 1, 1, 2), 1.0))
    buffer.add(tr((1, 1, 1, 2), (1, 1, 2, 3), 2.0))
    buffer.add(tr((1, 1, 2, 3), (1, 2, 3, 4), 3.0))
    # runner.reset() here: the new episode's first obs is [4,4,4,4]
    buffer.add(tr((4, 4, 4, 4), (4, 4, 4, 5), 10.0))
    buffer.add(tr((4, 4, 4, 5), (4, 4, 5, 6), 11.0))
    buffer.add(tr((4, 4, 5, 6), (4, 5, 6, 7), 12.0))
    sampled = sampled_set(buffer)
    # [1,1,2,3] -> [1,2,3,4] has no stored successor; keeping it would happen to be right.
    sampled.discard(((1, 1, 2, 3), (1, 2, 3, 4), 3.0, 0.0, 0.0))
    assert sampled == {
        ((1, 1, 1, 1), (1, 1, 1, 2), 1.0, 0.0, 0.0),
        ((1, 1, 1, 2), (1, 1, 2, 3), 2.0, 0.0, 0.0),
        ((4, 4, 4, 4), (4, 4, 4, 5), 10.0, 0.0, 0.0),
        ((4, 4, 4, 5), (4, 4, 5, 6), 11.0, 0.0, 0.0),
    }


def vector_transition(t: int, action) -> Transition:
    """One env, scalar-frame obs ``[t]`` -> ``[t + 1]`` taking ``action``, never ending."""
    return Transition(
        np.array([[t]], np.int32),
        np.array([action]),
        np.array([float(t)], np.float32),
        np.array([[t + 1]], np.int32),
        np.array([False]),
        np.array([False]),
        np.array([True]),
    )


@pytest.mark.parametrize(
    ("space", "actions"),
    [
        (gym.spaces.Discrete(18), [0, 17, 5]),
        (gym.spaces.Discrete(300), [0, 299, 256]),
        (gym.spaces.Discrete(3, start=-1), [-1, 0, 1]),
        (gym.spaces.Discrete(256, start=1), [1, 256, 128]),
    ],
    ids=["18", "300", "start-1", "256-start1"],
)
def test_sampled_actions_are_the_actions_taken(space, actions):
    obs_space = gym.spaces.Box(0, 1000, (1,), np.int32)
    buffer = ReplayBuffer(100, 1, obs_space, space, seed=0)
    for t, a in enumerate([*actions, actions[0]]):
        buffer.add(vector_transition(t, a))
    b = buffer.sample(512)
    taken = {int(o[0]): int(a) for o, a in zip(b.obs, b.action, strict=True)}
    assert taken == dict(enumerate(actions))


def test_continuous_actions_round_trip():
    obs_space = gym.spaces.Box(0, 1000, (1,), np.int32)
    act_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    buffer = ReplayBuffer(100, 1, obs_space, act_space, seed=0)
    actions = [np.array([0.25, -0.5], np.float32), np.array([0.75, 0.125], np.float32)]
    for t, a in enumerate([*actions, actions[0]]):
        buffer.add(vector_transition(t, a))
    b = buffer.sample(64)
    assert b.action.dtype == np.float32 and b.action.shape == (64, 2)
    assert {int(o[0]) for o in b.obs} == {0, 1}  # both stored transitions, not the newest
    for o, a in zip(b.obs, b.action, strict=True):
        assert np.array_equal(a, actions[int(o[0])]), f"sampled action {a}, took {actions[o[0]]}"


# -- the vectorised sampler against a transition-at-a-time reference ----------------------------


def reference_sample(buffer: ReplayBuffer, batch_size: int) -> Batch:
    """What ``sample`` returns, written one transition at a time from ``buffer.state()``.

    Draws (row, env) pairs as the sampler always has (uniform positions, then uniform envs,
    redrawing autoreset rows), from a copy of the buffer's generator, and builds each stack
    by walking back from its row until the episode's first row, then padding: the plain
    reading of the documented layout, with none of the sampler's index arithmetic.
    """
    state = buffer.state()
    arrays = {k.split("/", 1)[1]: v for k, v in state.items() if k.startswith("array/")}
    rng = np.random.default_rng()
    rng.bit_generator.state = state["rng"]
    rows_total, k = buffer.rows, buffer.frame_stack
    full = state["count"] == rows_total
    oldest, low = (state["cursor"], k - 1) if full else (0, 0)
    n = state["count"] - 1 - low
    rows, envs = np.empty(batch_size, np.int64), np.empty(batch_size, np.int64)
    todo = np.arange(batch_size)
    while todo.size:
        rows[todo] = (oldest + low + rng.integers(0, n, todo.size)) % rows_total
        envs[todo] = rng.integers(0, buffer.num_envs, todo.size)
        todo = todo[~arrays["valid"][rows[todo], envs[todo]]]

    def stack(row: int, env: int) -> np.ndarray:
        frames = arrays["frames"]
        if k == 1:
            return frames[row, env].copy()
        newest_first = []
        for _ in range(k):
            newest_first.append(frames[row, env])
            if arrays["first"][row, env]:
                break
            row = (row - 1) % rows_total
        oldest_frame = newest_first[-1]
        pad = oldest_frame if buffer.padding == "reset" else np.zeros_like(oldest_frame)
        return np.stack([pad] * (k - len(newest_first)) + newest_first[::-1])

    return Batch(
        obs=np.stack([stack(r, e) for r, e in zip(rows, envs, strict=True)]),
        action=arrays["action"][rows, envs].astype(np.int64),
        reward=arrays["reward"][rows, envs],
        next_obs=np.stack(
            [stack((r + 1) % rows_total, e) for r, e in zip(rows, envs, strict=True)]
        ),
        terminated=arrays["terminated"][rows, envs].astype(np.float32),
        truncated=arrays["truncated"][rows, envs].astype(np.float32),
        discount=np.where(arrays["terminated"][rows, envs], 0.0, buffer.gamma).astype(np.float32),
        weights=np.ones(batch_size, np.float32),
        indices=rows * buffer.num_envs + envs,
    )


@pytest.mark.parametrize(
    ("stack", "padding", "obs_shape", "capacity"),
    [
        (4, "zero", (3, 2), 45),  # wraps around several times
        (4, "reset", (3, 2), 45),
        (4, "zero", (3, 2), 600),  # never wraps
        (2, "reset", (), 30),
        (1, "reset", (4,), 24),  # whole observations, as CartPole
    ],
)
def test_sample_equals_reference_sampler(stack, padding, obs_shape, capacity):
    envs = make_fake_vector_env(
        3,
        stack=stack,
        padding=padding,
        episode_length=[2, 5, 9],
        obs_shape=obs_shape,
        dtype=np.int32,
    )
    buffer = make_buffer(envs, capacity, padding=padding, seed=3, gamma=0.9)
    run = run_and_add(envs, buffer, 70, reset_at=(23, 24, 51))
    for size, groups in [(1, None), (64, None), (16, 3)]:
        expected = reference_sample(buffer, size * (groups or 1))
        got = flat(buffer.sample(size, num_batches=groups))
        for name, x, y in zip(Batch._fields, got, expected, strict=True):
            assert x.dtype == y.dtype and np.array_equal(x, y), name
        check_batch(got, run, np.dtype(np.int32), buffer_gamma=0.9)


def test_sampled_batches_stay_valid_and_read_only():
    envs = make_fake_vector_env(2, stack=4, episode_length=[3, 4], dtype=np.int32)
    buffer = make_buffer(envs, 100)
    run = run_and_add(envs, buffer, 30)
    first = buffer.sample(32)
    kept = Batch(*(np.array(x) for x in first))
    for _ in range(5):
        buffer.sample(32)
    run_and_add(envs, buffer, 5)  # later adds do not touch a returned batch either
    for x, y in zip(first, kept, strict=True):
        assert np.array_equal(x, y)
    check_batch(first, run, np.dtype(np.int32))
    with pytest.raises(ValueError, match="read-only"):
        first.obs[0, 0] = 0
    with pytest.raises(ValueError, match="read-only"):
        first.next_obs[0, 0] = 0


# -- shapes, seeds, errors ----------------------------------------------------------------------


def test_sample_num_batches_shapes_and_values():
    envs = make_fake_vector_env(2, stack=4, episode_length=[3, 4], obs_shape=(5, 6), dtype=np.int32)
    buffer = make_buffer(envs, 100)
    run = run_and_add(envs, buffer, 20)
    batch = buffer.sample(8, num_batches=3)
    assert batch.obs.shape == batch.next_obs.shape == (3, 8, 4, 5, 6)
    for x in (batch.action, batch.reward, batch.terminated, batch.truncated):
        assert x.shape == (3, 8)
    check_batch(batch, run, np.dtype(np.int32))
    assert buffer.sample(8).obs.shape == (8, 4, 5, 6)


def test_same_seed_same_samples_other_seed_other_samples():
    def build(seed):
        envs = make_fake_vector_env(3, stack=4, episode_length=[2, 5, 6], dtype=np.int32)
        buffer = make_buffer(envs, 60, seed=seed)
        run_and_add(envs, buffer, 45)
        return buffer

    a, b, c = build(7), build(7), build(8)
    for _ in range(3):
        for x, y in zip(a.sample(32, num_batches=2), b.sample(32, num_batches=2), strict=True):
            assert np.array_equal(x, y)
    assert not np.array_equal(a.sample(32).obs, c.sample(32).obs)


def test_cannot_sample_before_a_complete_transition():
    envs = make_fake_vector_env(2, stack=4, episode_length=3)
    buffer = make_buffer(envs, 20)
    assert not buffer.can_sample() and buffer.size == 0
    with pytest.raises(RuntimeError, match="no complete transition"):
        buffer.sample(4)
    runner = VectorRunner(envs)
    runner.reset(seed=0)
    buffer.add(runner.step(np.zeros(2, np.int64))[0])
    assert buffer.size == 2
    assert not buffer.can_sample()  # the only row has no stored successor
    with pytest.raises(RuntimeError):
        buffer.sample(4)
    buffer.add(runner.step(np.zeros(2, np.int64))[0])
    assert buffer.can_sample()
    assert set(buffer.sample(64).obs[:, :, 0, 0].reshape(-1).tolist()) == {1, 10001 % 256}


def test_constructor_errors():
    box = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    act = gym.spaces.Discrete(4)
    with pytest.raises(ValueError, match="at least 8"):
        ReplayBuffer(7, 4, box, act, frame_stack=4)
    with pytest.raises(ValueError, match="padding"):
        ReplayBuffer(100, 1, box, act, frame_stack=4, padding="same")
    with pytest.raises(ValueError, match=r"\[3, \.\.\.\]"):
        ReplayBuffer(100, 1, box, act, frame_stack=3)


@pytest.mark.parametrize("capacity", [2, 3, 4])
def test_tiny_capacity_with_frame_stack_is_refused(capacity):
    # With k = 4, a full ring must keep k - 1 history rows plus a row and its successor: 5.
    space = gym.spaces.Box(0, 255, (4,), np.uint8)
    with pytest.raises(ValueError, match=f"capacity {capacity} .*use at least 5"):
        ReplayBuffer(capacity, 1, space, gym.spaces.Discrete(2), frame_stack=4)


@pytest.mark.parametrize(
    ("capacity", "expected"),
    [
        # 12 adds of one long episode (add n shows frames n-2..n+1, reward n+1): a ring of 5
        # keeps adds 7..11; add 11 has no successor, adds 7..9 serve as history only.
        (5, {((8, 9, 10, 11), (9, 10, 11, 12), 11.0, 0.0, 0.0)}),
        (
            6,
            {
                ((7, 8, 9, 10), (8, 9, 10, 11), 10.0, 0.0, 0.0),
                ((8, 9, 10, 11), (9, 10, 11, 12), 11.0, 0.0, 0.0),
            },
        ),
    ],
)
def test_smallest_capacities_with_frame_stack_sample_exactly(capacity, expected):
    envs = make_fake_vector_env(1, stack=4, episode_length=50, obs_shape=())
    buffer = make_buffer(envs, capacity)
    assert buffer.frame_stack == 4
    run = run_and_add(envs, buffer, 12)
    assert buffer.size == capacity and buffer.can_sample()
    assert sampled_set(buffer) == expected
    check_batch(buffer.sample(8), run, np.dtype(np.uint8))


def test_wrong_obs_shape_is_rejected():
    envs = make_fake_vector_env(2, stack=4)
    buffer = make_buffer(envs, 20)
    runner = VectorRunner(envs)
    runner.reset(seed=0)
    tr, _ = runner.step(np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="shape"):
        buffer.add(tr._replace(obs=tr.obs[:1]))


@pytest.mark.parametrize(("env_padding", "buffer_padding"), [("zero", "reset"), ("reset", "zero")])
def test_padding_mismatch_raises(env_padding, buffer_padding):
    envs = make_fake_vector_env(2, stack=4, padding=env_padding, episode_length=3)
    buffer = make_buffer(envs, 20, padding=buffer_padding)
    runner = VectorRunner(envs)
    runner.reset(seed=0)
    with pytest.raises(ValueError, match=f"padding='{buffer_padding}'"):
        buffer.add(runner.step(np.zeros(2, np.int64))[0])


# -- memory ----------------------------------------------------------------------------------


ATARI_OBS = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)


def test_nbytes_one_million_atari_transitions():
    buffer = ReplayBuffer(
        1_000_000, 1, ATARI_OBS, gym.spaces.Discrete(18), frame_stack=4, check_memory=False
    )
    # Per transition: one 84x84 uint8 frame (not 4), a uint8 action, a float32 reward and
    # four bool flags (terminated, truncated, valid, episode-first): 7056 + 1 + 4 + 4.
    assert buffer.nbytes == 1_000_000 * (84 * 84 + 1 + 4 + 4) == 7_065_000_000
    assert buffer.nbytes <= 7.1e9
    single = ReplayBuffer(
        1_000_000,
        1,
        gym.spaces.Box(0, 255, (84, 84), np.uint8),
        gym.spaces.Discrete(18),
        check_memory=False,
    )
    assert single.nbytes == buffer.nbytes  # a 4-stack costs what one frame costs


def test_capacity_rounds_up_to_whole_rows():
    box = gym.spaces.Box(0, 255, (2, 3, 3), np.uint8)
    buffer = ReplayBuffer(10, 3, box, gym.spaces.Discrete(2), frame_stack=2)
    assert buffer.rows == 4 and buffer.capacity == 12
    assert buffer.nbytes == 12 * (9 + 1 + 4 + 4)


def test_memory_error_names_a_buffer_size_that_fits(monkeypatch):
    monkeypatch.setattr(rlkit.replay, "available_memory_bytes", lambda: 1_000_000_000)
    with pytest.raises(MemoryError) as err:
        ReplayBuffer(1_000_000, 1, ATARI_OBS, gym.spaces.Discrete(18), frame_stack=4)
    message = str(err.value)
    assert "7.07 GB" in message and "1.00 GB" in message
    # 0.9 * 1e9 bytes / 7065 bytes a transition = 127,388 transitions
    assert "buffer_size to at most 127,388" in message
    # A buffer that fits is built; so is any buffer when the check is off or memory unknown.
    ReplayBuffer(100_000, 1, ATARI_OBS, gym.spaces.Discrete(18), frame_stack=4)
    ReplayBuffer(
        1_000_000, 1, ATARI_OBS, gym.spaces.Discrete(18), frame_stack=4, check_memory=False
    )
    monkeypatch.setattr(rlkit.replay, "available_memory_bytes", lambda: None)
    ReplayBuffer(1_000_000, 1, ATARI_OBS, gym.spaces.Discrete(18), frame_stack=4)


# -- checkpoints -------------------------------------------------------------------------------


def save_and_load(state: dict, tmp_path) -> dict:
    """Round-trip a buffer state the way a checkpoint does: .npz arrays + JSON, no pickle."""
    arrays = {k: v for k, v in state.items() if isinstance(v, np.ndarray)}
    rest = {k: v for k, v in state.items() if k not in arrays}
    np.savez(tmp_path / "replay.npz", **{k.replace("/", "__"): v for k, v in arrays.items()})
    (tmp_path / "replay.json").write_text(json.dumps(rest))
    with np.load(tmp_path / "replay.npz", allow_pickle=False) as f:
        loaded = {k.replace("__", "/"): f[k] for k in f.files}
    loaded.update(json.loads((tmp_path / "replay.json").read_text()))
    return loaded


@pytest.mark.parametrize("padding", ["reset", "zero"])
@pytest.mark.parametrize("capacity", [30, 300], ids=["wrapped", "partly-filled"])
def test_state_restore_round_trip(tmp_path, padding, capacity):
    lengths = [2, 3, 5]
    envs = make_fake_vector_env(3, stack=4, padding=padding, episode_length=lengths, dtype=np.int32)
    a = make_buffer(envs, capacity, seed=3, padding=padding)
    b = make_buffer(envs, capacity, seed=99, padding=padding)
    # 15 adds (10 rows per stream wrap at capacity 30): env 0's newest row is an autoreset
    # row, so its next row starts an episode; envs 1 and 2 are mid-episode, so their next
    # rows continue the stored stacks.
    run = run_and_add(envs, a, 15)
    assert run.log[-1][0] is None and None not in run.log[-1][1:]
    a.sample(16)  # move the generator away from its seed
    state = a.state()
    assert len(state["array/frames"]) == min(15, a.rows)  # the written rows only
    b.restore(save_and_load(state, tmp_path))
    assert (b.size, b.capacity) == (a.size, a.capacity)
    for name, array in a._arrays.items():
        assert np.array_equal(array, b._arrays[name]), name
    for _ in range(3):
        for x, y in zip(a.sample(64), b.sample(64), strict=True):
            assert np.array_equal(x, y)
    # The same stream goes on into both: each stays exact and they stay identical.
    for step in range(25):
        tr, _ = run.runner.step(np.full(3, step % 2))
        a.add(tr)
        b.add(tr)
        record(run, tr)
        sample_a, sample_b = a.sample(32, num_batches=2), b.sample(32, num_batches=2)
        for x, y in zip(sample_a, sample_b, strict=True):
            assert np.array_equal(x, y)
        assert check_batch(sample_b, run, np.dtype(np.int32)) <= expected_keys(run, b)


def test_restore_rejects_other_shapes():
    small = make_buffer(make_fake_vector_env(1, stack=4), 10)
    big = make_buffer(make_fake_vector_env(1, stack=4), 20)
    with pytest.raises(ValueError, match="another size"):
        big.restore(small.state())
    two_envs = make_buffer(make_fake_vector_env(2, stack=4), 20)
    run_and_add(make_fake_vector_env(2, stack=4), two_envs, 3)
    state = two_envs.state()
    state["rows"] = 20  # a buffer with as many rows per stream, but one env fewer
    with pytest.raises(ValueError, match="another size"):
        big.restore(state)


def test_restore_rejects_counters_that_do_not_fit():
    envs = make_fake_vector_env(1, stack=4)
    buffer = make_buffer(envs, 20)
    run_and_add(envs, buffer, 5)
    state = buffer.state()
    with pytest.raises(ValueError, match="inconsistent counters"):
        buffer.restore({**state, "cursor": 7})
    with pytest.raises(ValueError, match="another size"):
        buffer.restore({**state, "count": 6, "cursor": 6})  # arrays hold 5 rows


@pytest.mark.parametrize("capacity", [2_000, 40_000])
def test_saved_arrays_grow_with_the_rows_written_not_the_capacity(tmp_path, capacity):
    envs = make_fake_vector_env(2, stack=4, obs_shape=(16, 16), dtype=np.uint8)
    buffer = make_buffer(envs, capacity)
    frame_bytes = buffer.num_envs * 16 * 16  # one row of frames, both streams

    def frames_file_bytes(name: str) -> int:
        np.save(tmp_path / name, buffer.state()["array/frames"], allow_pickle=False)
        return (tmp_path / name).stat().st_size

    run_and_add(envs, buffer, 100)
    after_100 = frames_file_bytes("100.npy")
    run_and_add(envs, buffer, 100)
    after_200 = frames_file_bytes("200.npy")
    header = 128  # the .npy header
    assert 100 * frame_bytes <= after_100 <= 100 * frame_bytes + header
    assert 200 * frame_bytes <= after_200 <= 200 * frame_bytes + header
    for key, array in buffer.state().items():
        if key.startswith("array/"):
            assert len(array) == 200, key  # whatever the capacity


def test_restore_over_a_fuller_buffer_clears_its_extra_rows(tmp_path):
    envs = make_fake_vector_env(2, stack=4, episode_length=[3, 7], dtype=np.int32)
    a, b = make_buffer(envs, 100, seed=1), make_buffer(envs, 100, seed=2)
    run_and_add(envs, b, 40)  # b has written rows a never will
    run_and_add(envs, a, 12, seed=5)
    b.restore(save_and_load(a.state(), tmp_path))
    for name, array in a._arrays.items():
        assert np.array_equal(array, b._arrays[name]), name
    for x, y in zip(a.sample(64), b.sample(64), strict=True):
        assert np.array_equal(x, y)


def test_restore_reads_whole_ring_arrays_of_older_checkpoints(tmp_path):
    # Checkpoints written before state() kept only the written rows hold the whole ring.
    envs = make_fake_vector_env(2, stack=4, episode_length=[3, 7], dtype=np.int32)
    a, b = make_buffer(envs, 100, seed=1), make_buffer(envs, 100, seed=2)
    run_and_add(envs, a, 12)
    old = {k: v for k, v in a.state().items() if k != "rows"}
    old.update({f"array/{k}": v for k, v in a._arrays.items()})
    b.restore(save_and_load(old, tmp_path))
    for x, y in zip(a.sample(64), b.sample(64), strict=True):
        assert np.array_equal(x, y)


def test_frame_values_are_what_the_helpers_say():
    assert frame_value(2, 3, 4) == 20305 and decode_value(20305) == (2, 3, 4)
