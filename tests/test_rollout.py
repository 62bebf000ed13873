"""Exact tests of rlkit.rollout: the [T, N] RolloutBuffer and the whole-episode EpisodeBuffer.

The fake envs of ``rlkit.envs.testing`` show frame ``frame_value(env, episode, step)`` and
reward ``step`` for the step that leads to it, so every expected array is written out here.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from rlkit.envs.testing import frame_value, make_fake_vector_env
from rlkit.rollout import EpisodeBuffer, RolloutBuffer
from rlkit.runner import VectorRunner
from rlkit.types import Rollout, Transition

OBS_SPACE = gym.spaces.Box(-10.0, 10.0, (3,), np.float32)
ACTION_SPACE = gym.spaces.Discrete(4)


def transition(k: int, n: int = 2, **flags: list[bool]) -> Transition:
    """A hand-made vector step ``k`` of ``n`` envs: obs k + 10 i, action (k + i) % 4, reward k."""
    obs = np.array([[k + 10 * i] * 3 for i in range(n)], np.float32)
    false = [False] * n
    return Transition(
        obs=obs,
        action=np.array([(k + i) % 4 for i in range(n)]),
        reward=np.full(n, float(k), np.float32),
        next_obs=obs + 1,
        terminated=np.array(flags.get("terminated", false)),
        truncated=np.array(flags.get("truncated", false)),
        valid=np.array(flags.get("valid", [True] * n)),
    )


def fake_runner(episode_length, truncate: bool = False) -> VectorRunner:
    envs = make_fake_vector_env(
        len(episode_length),
        episode_length=episode_length,
        truncate=truncate,
        obs_shape=(),
        dtype=np.int32,
    )
    return VectorRunner(envs)


def step(runner: VectorRunner) -> tuple[Transition, np.ndarray]:
    return runner.step(np.zeros(runner.num_envs, np.int64))


# -- RolloutBuffer ---------------------------------------------------------------------------


def test_rollout_buffer_fills_t_by_n_and_resets():
    buf = RolloutBuffer(3, 2, OBS_SPACE, ACTION_SPACE)
    with pytest.raises(RuntimeError, match="0 of 3"):
        buf.pop(np.zeros((2, 3), np.float32))
    steps = [
        transition(0),
        transition(1, terminated=[True, False]),
        transition(2, valid=[False, True], truncated=[False, True]),
    ]
    assert [buf.add(t) for t in steps] == [False, False, True]
    last_obs = np.full((2, 3), 7.0, np.float32)
    rollout = buf.pop(last_obs)
    assert isinstance(rollout, Rollout)
    assert rollout.obs.shape == (3, 2, 3) and rollout.obs.dtype == np.float32
    np.testing.assert_array_equal(rollout.obs[:, :, 0], [[0, 10], [1, 11], [2, 12]])
    np.testing.assert_array_equal(rollout.obs[:, :, 2], rollout.obs[:, :, 0])
    assert rollout.action.dtype == np.int64
    np.testing.assert_array_equal(rollout.action, [[0, 1], [1, 2], [2, 3]])
    np.testing.assert_array_equal(rollout.reward, [[0, 0], [1, 1], [2, 2]])
    for name in ("reward", "terminated", "truncated", "valid"):
        assert getattr(rollout, name).dtype == np.float32, name
    np.testing.assert_array_equal(rollout.terminated, [[0, 0], [1, 0], [0, 0]])
    np.testing.assert_array_equal(rollout.truncated, [[0, 0], [0, 0], [0, 1]])
    np.testing.assert_array_equal(rollout.valid, [[1, 1], [1, 1], [0, 1]])
    np.testing.assert_array_equal(rollout.last_obs, last_obs)

    # pop started the next rollout: a partial one cannot be popped, a full one is new data.
    assert buf.add(transition(5)) is False
    with pytest.raises(RuntimeError, match="1 of 3"):
        buf.pop(last_obs)
    assert buf.add(transition(6)) is False
    assert buf.add(transition(7)) is True
    second = buf.pop(last_obs + 1)
    np.testing.assert_array_equal(second.obs[:, :, 0], [[5, 15], [6, 16], [7, 17]])
    np.testing.assert_array_equal(second.valid, np.ones((3, 2)))
    np.testing.assert_array_equal(second.terminated, np.zeros((3, 2)))
    np.testing.assert_array_equal(second.last_obs, last_obs + 1)


def test_rollout_buffer_from_runner_marks_autoreset_rows():
    # Env 0 terminates every 2 steps, env 1 every 3; NEXT_STEP: the step after an end resets.
    runner = fake_runner([2, 3])
    runner.reset(seed=0)
    buf = RolloutBuffer(4, 2, runner.observation_space, runner.action_space)
    full = []
    for _ in range(4):
        tr, obs = step(runner)
        full.append(buf.add(tr))
    assert full == [False, False, False, True]
    rollout = buf.pop(obs)
    f = frame_value
    expected_obs = [
        [f(0, 0, 0), f(1, 0, 0)],
        [f(0, 0, 1), f(1, 0, 1)],
        [f(0, 0, 2), f(1, 0, 2)],  # env 0: the final obs, on its autoreset row
        [f(0, 1, 0), f(1, 0, 3)],  # env 1: the final obs, on its autoreset row
    ]
    np.testing.assert_array_equal(rollout.obs, expected_obs)
    np.testing.assert_array_equal(rollout.reward, [[1, 1], [2, 2], [0, 3], [1, 0]])
    np.testing.assert_array_equal(rollout.terminated, [[0, 0], [1, 0], [0, 1], [0, 0]])
    np.testing.assert_array_equal(rollout.truncated, np.zeros((4, 2)))
    np.testing.assert_array_equal(rollout.valid, [[1, 1], [1, 1], [0, 1], [1, 0]])
    np.testing.assert_array_equal(rollout.last_obs, [f(0, 1, 1), f(1, 1, 0)])


# -- EpisodeBuffer ---------------------------------------------------------------------------


@pytest.mark.parametrize("truncate", [False, True])
def test_episode_buffer_pads_whole_episodes(truncate):
    # Env 0: episodes of 2 steps; env 1: of 4 steps. Vector steps k = 1, 2, ...:
    #   env 0: k1 ep0 t0->1, k2 ep0 t1->2 END, k3 autoreset, k4 ep1 t0->1, k5 ep1 t1->2 END,
    #          k6 autoreset, k7 ep2 t0->1, k8 ep2 t1->2 END
    #   env 1: k1..k4 ep0 t0->4 END (at k4), k5 autoreset, k6.. ep1
    runner = fake_runner([2, 4], truncate=truncate)
    runner.reset(seed=0)
    buf = EpisodeBuffer(2, 2)
    with pytest.raises(RuntimeError, match="no finished episode"):
        buf.pop()
    f = frame_value
    end = "truncated" if truncate else "terminated"
    other = "terminated" if truncate else "truncated"

    full = [buf.add(step(runner)[0]) for _ in range(4)]
    assert full == [False, False, False, True]
    first = buf.pop()
    # Columns in the order the episodes finished: env 0's episode 0, then env 1's episode 0.
    np.testing.assert_array_equal(
        first.obs,
        [[f(0, 0, 0), f(1, 0, 0)], [f(0, 0, 1), f(1, 0, 1)], [0, f(1, 0, 2)], [0, f(1, 0, 3)]],
    )
    assert first.obs.dtype == np.int32
    np.testing.assert_array_equal(first.reward, [[1, 1], [2, 2], [0, 3], [0, 4]])
    np.testing.assert_array_equal(first.valid, [[1, 1], [1, 1], [0, 1], [0, 1]])
    np.testing.assert_array_equal(getattr(first, end), [[0, 0], [1, 0], [0, 0], [0, 1]])
    np.testing.assert_array_equal(getattr(first, other), np.zeros((4, 2)))
    np.testing.assert_array_equal(first.action, np.zeros((4, 2)))
    # Each episode's true final observation (not the next episode's first one).
    np.testing.assert_array_equal(first.last_obs, [f(0, 0, 2), f(1, 0, 4)])

    # Env 0's episode 1 had one step stored before the pop: it carries over whole.
    full = [buf.add(step(runner)[0]) for _ in range(4)]
    assert full == [False, False, False, True]
    second = buf.pop()
    np.testing.assert_array_equal(second.obs, [[f(0, 1, 0), f(0, 2, 0)], [f(0, 1, 1), f(0, 2, 1)]])
    np.testing.assert_array_equal(second.reward, [[1, 1], [2, 2]])
    np.testing.assert_array_equal(second.valid, np.ones((2, 2)))
    np.testing.assert_array_equal(getattr(second, end), [[0, 0], [1, 1]])
    np.testing.assert_array_equal(second.last_obs, [f(0, 1, 2), f(0, 2, 2)])

    # Env 1's episode 1 (3 steps stored: k6..k8) finishes at k9; env 0's episode 3 at k11.
    assert [buf.add(step(runner)[0]) for _ in range(3)] == [False, False, True]
    third = buf.pop()
    np.testing.assert_array_equal(third.obs[:, 0], [f(1, 1, t) for t in range(4)])
    np.testing.assert_array_equal(third.obs[:, 1], [f(0, 3, 0), f(0, 3, 1), 0, 0])
    np.testing.assert_array_equal(third.last_obs, [f(1, 1, 4), f(0, 3, 2)])


def test_episode_buffer_ignores_invalid_rows_and_pops_all_finished():
    buf = EpisodeBuffer(1, 3)
    # Env 2's rows are all autoreset rows (valid 0): never stored, even flagged as ends.
    assert not buf.add(transition(0, 3, valid=[True, True, False], terminated=[0, 0, 1]))
    done = buf.add(
        transition(1, 3, valid=[True, True, False], terminated=[1, 0, 1], truncated=[0, 1, 1])
    )
    assert done
    rollout = buf.pop()
    assert rollout.obs.shape == (2, 2, 3)
    np.testing.assert_array_equal(rollout.obs[:, :, 0], [[0, 10], [1, 11]])
    np.testing.assert_array_equal(rollout.action, [[0, 1], [1, 2]])
    np.testing.assert_array_equal(rollout.terminated, [[0, 0], [1, 0]])
    np.testing.assert_array_equal(rollout.truncated, [[0, 0], [0, 1]])
    np.testing.assert_array_equal(rollout.valid, np.ones((2, 2)))
    np.testing.assert_array_equal(rollout.last_obs[:, 0], [2, 12])  # next_obs = obs + 1
    with pytest.raises(RuntimeError):
        buf.pop()
