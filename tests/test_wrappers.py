"""Tests of rlkit.envs.wrappers.RewardNoise and of wrappers in make_vector_env."""

from __future__ import annotations

import functools
import json

import gymnasium as gym
import numpy as np
import pytest

from rlkit.envs import RewardNoise, make_vector_env
from rlkit.envs.testing import CountingEnv
from rlkit.runner import VectorRunner


def noisy_rewards(env: gym.Env, steps: int, seed: int | None = 0) -> list[float]:
    """Rewards of ``steps`` steps after ``reset(seed=seed)`` (resetting, unseeded, at ends)."""
    env.reset(seed=seed)
    out = []
    for _ in range(steps):
        _, reward, terminated, truncated, _ = env.step(0)
        out.append(float(reward))
        if terminated or truncated:
            env.reset()
    return out


def long_counting_env() -> CountingEnv:
    """A counting env whose episodes outlast every test (its own reward is the step index)."""
    return CountingEnv(episode_length=10**9, obs_shape=(), dtype=np.int64)


@pytest.mark.parametrize(("mean", "std"), [(1.0, 1.0), (-2.0, 0.5)])
def test_rewards_are_normal_samples_with_the_given_mean_and_std(mean: float, std: float) -> None:
    rewards = np.asarray(noisy_rewards(RewardNoise(long_counting_env(), mean, std), 20_000))
    # Standard errors: std / sqrt(n) = std * 0.007 for the mean, about std * 0.005 for the std.
    assert abs(rewards.mean() - mean) < 0.03 * std
    assert abs(rewards.std() - std) < 0.03 * std
    # Normal, not e.g. uniform: about 68.3% within one std, 95.4% within two.
    z = np.abs(rewards - mean) / std
    assert abs(np.mean(z < 1) - 0.683) < 0.015
    assert abs(np.mean(z < 2) - 0.954) < 0.01
    # Independent of the env's reward (here 1, 2, 3, ...) and of each other.
    assert abs(np.corrcoef(rewards[:-1], rewards[1:])[0, 1]) < 0.03


def test_true_reward_is_kept_in_info_and_nothing_else_changes() -> None:
    env = RewardNoise(long_counting_env(), 1.0, 1.0)
    bare = long_counting_env()
    obs, _ = env.reset(seed=3)
    bare_obs, _ = bare.reset(seed=3)
    assert obs == bare_obs
    for t in range(1, 4):
        obs, reward, terminated, truncated, info = env.step(1)
        bare_obs, bare_reward, *_ = bare.step(1)
        assert obs == bare_obs and not terminated and not truncated
        assert info["true_reward"] == bare_reward == float(t)
        assert reward != float(t)


def test_std_zero_gives_the_mean_exactly() -> None:
    assert noisy_rewards(RewardNoise(long_counting_env(), 0.25, 0.0), 5) == [0.25] * 5


@pytest.mark.parametrize(("mean", "std"), [(1.0, -1.0), (float("nan"), 1.0), (1.0, float("inf"))])
def test_bad_arguments_are_rejected(mean: float, std: float) -> None:
    with pytest.raises(ValueError, match="RewardNoise"):
        RewardNoise(long_counting_env(), mean, std)


def test_same_seed_same_rewards_other_seed_other_rewards() -> None:
    a = noisy_rewards(RewardNoise(gym.make("CartPole-v1")), 300, seed=7)
    b = noisy_rewards(RewardNoise(gym.make("CartPole-v1")), 300, seed=7)
    c = noisy_rewards(RewardNoise(gym.make("CartPole-v1")), 300, seed=8)
    assert a == b
    assert a != c


def test_unseeded_resets_continue_the_stream_and_a_seeded_one_restarts_it() -> None:
    env = RewardNoise(long_counting_env())
    first = noisy_rewards(env, 5, seed=1)
    second = noisy_rewards(env, 5, seed=None)  # continues, does not repeat
    again = noisy_rewards(env, 5, seed=1)
    assert first != second
    assert first == again


def test_unseeded_wrappers_draw_different_noise() -> None:
    a = noisy_rewards(RewardNoise(long_counting_env()), 5, seed=None)
    b = noisy_rewards(RewardNoise(long_counting_env()), 5, seed=None)
    assert a != b


def test_the_envs_own_randomness_is_untouched() -> None:
    # CartPole draws its start states from np_random: with the noise drawn from a separate
    # generator, the same seed and actions give the same trajectory, wrapped or not.
    def trajectory(env: gym.Env) -> list[np.ndarray]:
        obs, _ = env.reset(seed=5)
        out = [obs]
        for t in range(200):
            obs, _, terminated, truncated, _ = env.step(t % 2)
            out.append(obs)
            if terminated or truncated:
                obs, _ = env.reset()  # an unseeded reset draws from np_random
                out.append(obs)
        return out

    wrapped = trajectory(RewardNoise(gym.make("CartPole-v1")))
    bare = trajectory(gym.make("CartPole-v1"))
    np.testing.assert_array_equal(np.stack(wrapped), np.stack(bare))


def run_vector(envs: gym.vector.VectorEnv, steps: int, seed: int = 0) -> tuple[np.ndarray, dict]:
    """Rewards ``[T, N]`` of valid rows and the finished episodes' stats of ``steps`` steps."""
    runner = VectorRunner(envs)
    runner.reset(seed=seed)
    rewards, rng = [], np.random.default_rng(0)
    try:
        for _ in range(steps):
            tr, _ = runner.step(rng.integers(0, 2, runner.num_envs))
            rewards.append(np.where(tr.valid, tr.reward, np.nan))
        stats = runner.pop_episode_stats()
    finally:
        runner.close()
    return np.asarray(rewards), {"returns": stats.returns, "lengths": stats.lengths}


def test_vector_env_learner_gets_noisy_rewards_statistics_get_true_returns() -> None:
    envs = make_vector_env(
        "CartPole-v1", 3, wrappers=[functools.partial(RewardNoise, mean=1000.0, std=0.0)]
    )
    rewards, stats = run_vector(envs, 200)
    valid = rewards[~np.isnan(rewards)]
    assert valid.size > 0 and np.all(valid == 1000.0)
    assert len(stats["returns"]) >= 3
    # CartPole pays 1 a step: the true return of an episode is its length.
    np.testing.assert_array_equal(stats["returns"], stats["lengths"])


def test_vector_env_copies_get_different_reproducible_noise() -> None:
    def rewards(seed: int) -> np.ndarray:
        return run_vector(make_vector_env("CartPole-v1", 2, wrappers=[RewardNoise]), 30, seed)[0]

    a, b = rewards(0), rewards(0)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a[1:5, 0], a[1:5, 1])  # env i is reset with seed + i
    assert not np.array_equal(a, rewards(1))


def test_async_workers_unpickle_wrappers_and_match_sync() -> None:
    wrappers = [functools.partial(RewardNoise, mean=1.0, std=2.0)]
    sync = run_vector(make_vector_env("CartPole-v1", 2, "sync", wrappers=wrappers), 40, seed=4)
    spawned = run_vector(make_vector_env("CartPole-v1", 2, "async", wrappers=wrappers), 40, seed=4)
    np.testing.assert_array_equal(sync[0], spawned[0])
    np.testing.assert_array_equal(sync[1]["returns"], spawned[1]["returns"])


def test_no_wrappers_leaves_the_vector_env_as_before() -> None:
    envs = make_vector_env("CartPole-v1", 1)
    try:
        assert not isinstance(envs.envs[0], gym.wrappers.RecordEpisodeStatistics)
    finally:
        envs.close()


def test_learn_trains_on_noise_but_evaluates_on_the_true_reward() -> None:
    from rlkit.agents import Reinforce, ReinforceConfig
    from rlkit.config import RunConfig
    from rlkit.experiment import learn

    env = gym.make("CartPole-v1")
    agent = Reinforce(
        env.observation_space, env.action_space, ReinforceConfig(episodes_per_update=2), seed=0
    )
    # A huge constant reward: any return it reached would exceed CartPole's maximum of 500.
    envs = make_vector_env(
        "CartPole-v1", 2, wrappers=[functools.partial(RewardNoise, mean=1e4, std=0.0)]
    )
    result = learn(
        agent,
        "CartPole-v1",
        RunConfig(total_steps=600, num_envs=2, eval_every=300, eval_episodes=2),
        envs=envs,
    )
    assert len(result.evaluations) == 2
    for row in result.evaluations:
        assert 8 <= row["mean_reward"] <= 500
    assert result.episodes > 0 and 8 <= result.mean_return <= 500


# -- the reward_noise run setting ------------------------------------------------------------
def test_reward_noise_setting_is_validated() -> None:
    from rlkit.agents import DQN
    from rlkit.config import resolve
    from rlkit.errors import ConfigError

    run, _ = resolve(DQN, "CartPole-v1", overrides={"reward_noise": [1, 2]})
    assert run.reward_noise == (1.0, 2.0)
    for bad in ([1.0], [1.0, -1.0], "loud"):
        with pytest.raises(ConfigError, match="reward_noise"):
            resolve(DQN, "CartPole-v1", overrides={"reward_noise": bad})


def test_cli_reward_noise_trains_on_noise_and_reports_true_returns(tmp_path) -> None:
    import csv

    import yaml

    from rlkit import train

    run_dir = tmp_path / "run"
    args = ["--agent", "reinforce", "--env", "CartPole-v1", "--run-dir", str(run_dir)]
    args += [
        "--total-steps",
        "800",
        "--eval-every",
        "400",
        "--eval-episodes",
        "2",
        "--final-eval-episodes",
        "2",
        "--quiet",
    ]
    args += ["--set", "reward_noise=[1000, 0]", "--set", "log_interval=200"]
    args += ["--set", "episodes_per_update=2", "--set", "normalize_returns=false"]
    assert train.main(args) == 0
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["reward_noise"] == [1000.0, 0.0]
    with open(run_dir / "progress.csv", newline="") as f:
        rows = list(csv.DictReader(f))

    def column(name: str) -> list[float]:
        return [float(r[name]) for r in rows if r.get(name) not in (None, "")]

    assert min(column("train/return_mean")) > 500  # the learner's returns: 1000 a step
    assert 8 <= max(column("rollout/ep_rew_mean")) <= 500  # CartPole's own
    assert 8 <= max(column("eval/mean_reward")) <= 500
    results = json.loads((run_dir / "results.json").read_text())
    assert 8 <= results["mean_reward"] <= 500
