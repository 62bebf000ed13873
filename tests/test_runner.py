"""Tests of rlkit.runner.VectorRunner, the env factories and the fake test envs."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode
from gymnasium.wrappers import RecordEpisodeStatistics

from rlkit.envs import make_env, make_vector_env
from rlkit.envs.testing import (
    COUNTING_ENV_ID,
    CountingEnv,
    frame_value,
    make_fake_vector_env,
    register_fake_envs,
)
from rlkit.errors import UnknownNameError
from rlkit.runner import VectorRunner


def rows(runner: VectorRunner, steps: int, env: int = 0) -> list[tuple]:
    """(obs, next_obs, reward, terminated, truncated, valid) of env ``env`` for ``steps`` steps."""
    out = []
    for _ in range(steps):
        tr, obs = runner.step(np.zeros(runner.num_envs, np.int64))
        assert obs is tr.next_obs
        out.append(
            (
                tr.obs[env].tolist(),
                tr.next_obs[env].tolist(),
                float(tr.reward[env]),
                bool(tr.terminated[env]),
                bool(tr.truncated[env]),
                bool(tr.valid[env]),
            )
        )
    return out


def expected_episodes(lengths: list[int], steps: int) -> tuple[list[float], list[int]]:
    """Episodes a fake vector env finishes in ``steps`` steps, in the order they finish.

    An episode of L steps takes L + 1 vector steps (the last one is the autoreset row), and
    rewards 1, 2, ..., L sum to L (L + 1) / 2.
    """
    returns, lens = [], []
    for s in range(1, steps + 1):
        for length in lengths:
            if s % (length + 1) == length:
                returns.append(length * (length + 1) / 2)
                lens.append(length)
    return returns, lens


# -- autoreset boundary ---------------------------------------------------------------------


def test_autoreset_row_is_invalid_and_holds_the_true_final_obs():
    runner = VectorRunner(make_fake_vector_env(1, episode_length=2, obs_shape=()))
    assert runner.reset(seed=0).tolist() == [1]
    # (obs, next_obs, reward, terminated, truncated, valid)
    assert rows(runner, 5) == [
        (1, 2, 1.0, False, False, True),
        (2, 3, 2.0, True, False, True),
        (3, 101, 0.0, False, False, False),  # autoreset row: obs is episode 0's final frame
        (101, 102, 1.0, False, False, True),
        (102, 103, 2.0, True, False, True),
    ]


def test_autoreset_row_with_frame_stack():
    runner = VectorRunner(make_fake_vector_env(1, stack=3, episode_length=2, obs_shape=()))
    runner.reset(seed=0)
    assert rows(runner, 4) == [
        ([1, 1, 1], [1, 1, 2], 1.0, False, False, True),
        ([1, 1, 2], [1, 2, 3], 2.0, True, False, True),
        ([1, 2, 3], [101, 101, 101], 0.0, False, False, False),
        ([101, 101, 101], [101, 101, 102], 1.0, False, False, True),
    ]


def test_truncation_and_termination_flags_pass_through():
    runner = VectorRunner(make_fake_vector_env(1, episode_length=2, truncate=True, obs_shape=()))
    runner.reset(seed=0)
    assert rows(runner, 4) == [
        (1, 2, 1.0, False, False, True),
        (2, 3, 2.0, False, True, True),  # truncated: bootstrap from next_obs 3, the final obs
        (3, 101, 0.0, False, False, False),
        (101, 102, 1.0, False, False, True),
    ]
    both = gym.vector.SyncVectorEnv(
        [lambda: CountingEnv(3, max_episode_steps=3, obs_shape=())],
        autoreset_mode=AutoresetMode.NEXT_STEP,
    )
    runner = VectorRunner(both)
    runner.reset(seed=0)
    assert [r[3:] for r in rows(runner, 4)] == [
        (False, False, True),
        (False, False, True),
        (True, True, True),
        (False, False, False),
    ]


def test_three_streams_each_mark_their_own_autoreset_rows():
    lengths = [2, 3, 5]
    runner = VectorRunner(make_fake_vector_env(3, episode_length=lengths, obs_shape=()))
    runner.reset(seed=0)
    for s in range(1, 25):
        tr, _ = runner.step(np.ones(3, np.int64))
        for i, length in enumerate(lengths):
            episode, t = divmod(s - 1, length + 1)
            assert tr.valid[i] == (t < length)
            assert tr.obs[i] == frame_value(i, episode, t) % 256
            assert tr.terminated[i] == (t == length - 1)


# -- counters and statistics ----------------------------------------------------------------


def test_env_steps_counts_only_valid_transitions():
    lengths = [2, 3, 5]
    runner = VectorRunner(make_fake_vector_env(3, episode_length=lengths))
    runner.reset(seed=0)
    total = 0
    for _ in range(30):
        tr, _ = runner.step(np.zeros(3, np.int64))
        total += int(tr.valid.sum())
        assert runner.env_steps == total
    # 30 steps minus one autoreset row every L + 1 steps: (30 - 10) + (30 - 7) + (30 - 5)
    assert runner.env_steps == 68


@pytest.mark.parametrize("truncate", [False, True])
def test_episode_stats_match_the_fake_episodes(truncate):
    lengths = [2, 3, 5]
    runner = VectorRunner(make_fake_vector_env(3, episode_length=lengths, truncate=truncate))
    runner.reset(seed=0)
    for _ in range(30):
        runner.step(np.zeros(3, np.int64))
    stats = runner.pop_episode_stats()
    returns, lens = expected_episodes(lengths, 30)
    assert stats.returns.dtype == np.float64 and stats.lengths.dtype == np.int64
    assert stats.returns.tolist() == returns
    assert stats.lengths.tolist() == lens
    assert runner.episodes == len(lens) == 10 + 7 + 5
    empty = runner.pop_episode_stats()
    assert empty.returns.shape == empty.lengths.shape == (0,)


def test_episode_stats_popped_every_step():
    lengths = [1, 4]
    runner = VectorRunner(make_fake_vector_env(2, episode_length=lengths))
    runner.reset(seed=0)
    returns, lens = [], []
    for _ in range(20):
        runner.step(np.zeros(2, np.int64))
        stats = runner.pop_episode_stats()
        returns += stats.returns.tolist()
        lens += stats.lengths.tolist()
    assert (returns, lens) == expected_episodes(lengths, 20)


def test_episode_stats_from_record_episode_statistics_wrapper():
    lengths = [2, 3, 5]

    def fn(i):
        return lambda: RecordEpisodeStatistics(CountingEnv(lengths[i], env_index=i))

    envs = gym.vector.SyncVectorEnv(
        [fn(i) for i in range(3)], autoreset_mode=AutoresetMode.NEXT_STEP
    )
    runner = VectorRunner(envs)
    runner.reset(seed=0)
    for _ in range(30):
        runner.step(np.zeros(3, np.int64))
    stats = runner.pop_episode_stats()
    assert (stats.returns.tolist(), stats.lengths.tolist()) == expected_episodes(lengths, 30)


def test_reset_drops_the_episodes_in_progress():
    runner = VectorRunner(make_fake_vector_env(1, episode_length=5))
    runner.reset(seed=0)
    for _ in range(3):
        runner.step(np.zeros(1, np.int64))
    assert runner.env_steps == 3
    obs = runner.reset()
    assert obs[0, 0, 0] == frame_value(0, 1, 0)  # a new episode, not a continuation
    for _ in range(6):
        runner.step(np.zeros(1, np.int64))
    stats = runner.pop_episode_stats()
    assert stats.returns.tolist() == [15.0] and stats.lengths.tolist() == [5]
    assert runner.episodes == 1 and runner.env_steps == 3 + 5


def test_reset_right_after_an_episode_end_starts_clean():
    runner = VectorRunner(make_fake_vector_env(1, episode_length=2, obs_shape=()))
    runner.reset(seed=0)
    runner.step(np.zeros(1, np.int64))
    runner.step(np.zeros(1, np.int64))  # episode ends: the env would reset on the next step
    runner.reset()
    # The next step is a real transition of the new episode, not an autoreset row.
    assert rows(runner, 2) == [
        (101, 102, 1.0, False, False, True),
        (102, 103, 2.0, True, False, True),
    ]


# -- construction and errors ------------------------------------------------------------------


@pytest.mark.parametrize("mode", [AutoresetMode.SAME_STEP, AutoresetMode.DISABLED])
def test_other_autoreset_modes_are_rejected(mode):
    envs = make_fake_vector_env(2, autoreset_mode=mode)
    with pytest.raises(ValueError, match="NEXT_STEP"):
        VectorRunner(envs)


def test_step_before_reset_raises():
    runner = VectorRunner(make_fake_vector_env(1))
    with pytest.raises(RuntimeError, match="reset"):
        runner.step(np.zeros(1, np.int64))


def test_runner_exposes_single_env_spaces():
    runner = VectorRunner(make_fake_vector_env(3, stack=4, obs_shape=(5, 6)))
    assert runner.num_envs == 3
    assert runner.observation_space.shape == (4, 5, 6)
    assert runner.action_space == gym.spaces.Discrete(2)


def test_unknown_names_raise_unknown_name_error():
    with pytest.raises(UnknownNameError, match="threads") as err:
        make_vector_env("CartPole-v1", 2, vectorization="threads")
    assert isinstance(err.value, KeyError) and "sync" in str(err.value)
    with pytest.raises(UnknownNameError, match="NoSuchEnv-v0"):
        make_vector_env("NoSuchEnv-v0", 2)
    with pytest.raises(UnknownNameError, match="NoSuchEnv-v0"):
        make_env("NoSuchEnv-v0")


def test_sync_cartpole_seeds_env_i_with_seed_plus_i():
    runner = VectorRunner(make_vector_env("CartPole-v1", 3))
    obs = runner.reset(seed=10)
    for i in range(3):
        single, _ = gym.make("CartPole-v1").reset(seed=10 + i)
        assert np.array_equal(obs[i], single)
    runner.close()


def test_async_cartpole_spawns_workers_and_matches_sync():
    envs = make_vector_env("CartPole-v1", 2, vectorization="async")
    try:
        assert envs.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
        assert all(type(p).__name__ == "SpawnProcess" for p in envs.processes)
        sync = VectorRunner(make_vector_env("CartPole-v1", 2))
        runner = VectorRunner(envs)
        assert np.array_equal(runner.reset(seed=3), sync.reset(seed=3))
        for step in range(6):
            actions = np.array([step % 2, 1 - step % 2])
            tr, _ = runner.step(actions)
            ref, _ = sync.step(actions)
            for x, y in zip(tr, ref, strict=True):
                assert np.array_equal(x, y)
        assert runner.env_steps == 12
        sync.close()
    finally:
        envs.close()
    assert envs.closed
    assert not any(p.is_alive() for p in envs.processes)


def test_registered_fake_env_through_make_vector_env():
    register_fake_envs()
    register_fake_envs()  # idempotent
    runner = VectorRunner(make_vector_env(COUNTING_ENV_ID, 2, episode_length=3, obs_shape=()))
    assert runner.reset(seed=0).tolist() == [1, 1]
    assert [r[5] for r in rows(runner, 8)] == [True] * 3 + [False] + [True] * 3 + [False]
    assert runner.env_steps == 2 * 6


# -- the fake env itself -----------------------------------------------------------------------


def test_counting_env_passes_gymnasium_checks_and_is_seed_deterministic():
    check_env(CountingEnv(), skip_render_check=True)
    check_env(CountingEnv(obs_shape=(), dtype=np.int32), skip_render_check=True)
    env = CountingEnv(2, env_index=3, dtype=np.int32)
    first, _ = env.reset(seed=1)
    assert (first == 30001).all() and first.shape == (4, 4)
    env.step(0)
    assert (env.reset()[0] == 30101).all()  # unseeded reset: next episode
    assert np.array_equal(env.reset(seed=5)[0], first)  # seeded reset: episode 0 again
    obs, reward, terminated, truncated, _ = env.step(1)
    assert (obs == 30002).all() and reward == 1.0 and not terminated and not truncated
    assert env.step(0)[1:4] == (2.0, True, False)


def test_counting_env_uint8_wraps_and_rejects_bad_actions():
    env = CountingEnv(env_index=1)
    assert (env.reset(seed=0)[0] == 10001 % 256).all()
    with pytest.raises(ValueError, match="action"):
        env.step(2)


# -- Box actions ----------------------------------------------------------------------------
class _ActionEcho(gym.Env):
    """Box actions in [-1, 1] x [0, 2]; the next observation is the action the env got."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
    action_space = gym.spaces.Box(np.array([-1, 0], np.float32), np.array([1, 2], np.float32))

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        assert self.action_space.contains(np.asarray(action, np.float32)), action
        return np.asarray(action, np.float32), 0.0, False, False, {}


def test_box_actions_reach_the_env_clipped_and_are_stored_as_sampled():
    envs = gym.vector.SyncVectorEnv(
        [_ActionEcho, _ActionEcho], autoreset_mode=AutoresetMode.NEXT_STEP
    )
    runner = VectorRunner(envs)
    runner.reset(seed=0)
    sampled = np.array([[5.0, -3.0], [0.5, 1.5]], np.float32)  # a Gaussian's samples
    transition, obs = runner.step(sampled.copy())
    np.testing.assert_array_equal(obs, [[1.0, 0.0], [0.5, 1.5]])  # what the envs got
    np.testing.assert_array_equal(transition.action, sampled)  # what is learned from
    runner.close()
