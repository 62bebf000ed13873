"""Observation and reward normalization: running statistics by hand and against numpy, frozen
when acting, and kept by saved agents, saved policies and exports."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import tensorflow as tf

from rlkit.agents import A2C, PPO, A2CConfig, PPOConfig, load_agent
from rlkit.errors import IncompatibleEnvError
from rlkit.normalization import (
    RewardScaler,
    RunningMeanStd,
    discounted_returns_running,
    merge_moments,
)
from rlkit.policy_io import load_policy, save_policy
from rlkit.types import Rollout

OBS = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)


def test_merged_moments_are_those_of_the_union():
    rng = np.random.default_rng(0)
    a, b = rng.normal(3, 2, (50, 2)), rng.normal(-1, 5, (20, 2))
    mean, var, count = merge_moments(a.mean(0), a.var(0), 50.0, b.mean(0), b.var(0), 20.0)
    both = np.concatenate([a, b])
    np.testing.assert_allclose(mean, both.mean(0), rtol=1e-10)
    np.testing.assert_allclose(var, both.var(0), rtol=1e-10)
    assert count == 70.0


def test_running_statistics_skip_masked_rows_and_empty_batches():
    stats = RunningMeanStd((2,))
    values = np.array([[1.0, 2.0], [3.0, 6.0], [1e6, -1e6]], np.float32)
    stats.update(tf.constant(values), tf.constant([1.0, 1.0, 0.0]))
    # Prior: mean 0, var 1 with count 1e-4, which the batch all but replaces.
    np.testing.assert_allclose(stats.mean.numpy(), [2.0, 4.0], rtol=1e-4)
    np.testing.assert_allclose(stats.var.numpy(), [1.0, 4.0], rtol=1e-3)
    before = [v.numpy().copy() for v in stats.weights]
    stats.update(tf.constant(values), tf.zeros([3]))
    for b, v in zip(before, stats.weights, strict=True):
        np.testing.assert_array_equal(v.numpy(), b)


def test_running_discounted_return_by_hand():
    # gamma 0.5, carry 2: R0 = 0.5 * 2 + 1 = 2, R1 = 0.5 * 2 + 2 = 3 (episode ends),
    # R2 = 4 (restarts), carried on as 4.
    returns, carry = discounted_returns_running(
        tf.constant([[1.0], [2.0], [4.0]]),
        tf.constant([[0.0], [1.0], [0.0]]),
        tf.constant([2.0]),
        0.5,
    )
    np.testing.assert_allclose(returns.numpy()[:, 0], [2.0, 3.0, 4.0])
    np.testing.assert_allclose(carry.numpy(), [4.0])
    _, carry = discounted_returns_running(
        tf.constant([[1.0]]), tf.constant([[1.0]]), tf.constant([0.0]), 0.5
    )
    np.testing.assert_allclose(carry.numpy(), [0.0])  # ended in the last row: restarts


def test_reward_scaler_divides_by_the_return_std():
    scaler = RewardScaler(gamma=0.5)
    rewards = tf.constant([[1.0, 2.0], [2.0, 0.0], [4.0, 2.0]])
    ends = tf.constant([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    scaled = scaler.scale(rewards, ends, tf.ones([3, 2]))
    returns = np.array([[1.0, 2.0], [2.5, 1.0], [4.0, 2.5]])  # R_t per env, by hand
    std = np.sqrt(returns.var() + 1e-8)
    np.testing.assert_allclose(scaled.numpy(), rewards.numpy() / std, rtol=1e-3)
    np.testing.assert_allclose(scaler.carry.numpy(), [4.0, 2.5])


def rollout(rng, steps=6, envs=4, box=True):
    shape = (steps, envs)
    action = rng.normal(size=(*shape, 1)) if box else rng.integers(0, 2, shape)
    return Rollout(
        rng.normal(5.0, 3.0, (*shape, 3)).astype(np.float32),
        action.astype(np.float32 if box else np.int64),
        rng.normal(size=shape).astype(np.float32),
        np.zeros(shape, np.float32),
        np.zeros(shape, np.float32),
        np.ones(shape, np.float32),
        rng.normal(size=(envs, 3)).astype(np.float32),
    )


@pytest.mark.parametrize("cls", [A2C, PPO], ids=lambda c: c.name)
def test_agents_learn_the_statistics_and_act_with_them_frozen(cls, tmp_path):
    config_cls = A2CConfig if cls is A2C else PPOConfig
    config = config_cls(hidden_sizes=(16,), normalize_obs=True, normalize_reward=True)
    agent = cls(OBS, gym.spaces.Box(-2.0, 2.0, (1,), np.float32), config, seed=0)
    data = rollout(np.random.default_rng(1))
    agent.update(data)
    stats = agent.network.obs_normalizer
    np.testing.assert_allclose(stats.mean.numpy(), data.obs.reshape(-1, 3).mean(0), rtol=1e-3)
    np.testing.assert_allclose(stats.var.numpy(), data.obs.reshape(-1, 3).var(0), rtol=1e-3)
    before = stats.mean.numpy().copy()
    obs = np.random.default_rng(2).normal(50.0, 1.0, (8, 3)).astype(np.float32)
    agent.act(obs, explore=True)
    agent.act(obs, explore=False)
    np.testing.assert_array_equal(stats.mean.numpy(), before)  # acting never moves them
    # numpy acting path == the network in TF, normalization included
    np.testing.assert_allclose(
        agent.network.numpy_forward(obs)[0], agent.network(obs)[0], atol=1e-5
    )
    # the whole agent, and the policy alone, keep them
    agent.save(tmp_path / "agent")
    loaded = load_agent(tmp_path / "agent")
    np.testing.assert_array_equal(loaded.network.obs_normalizer.mean.numpy(), before)
    np.testing.assert_array_equal(
        loaded.reward_scaler.stats.var.numpy(), agent.reward_scaler.stats.var.numpy()
    )
    save_policy(
        tmp_path / "policy",
        agent.network,
        agent=cls.name,
        env_id="Pendulum-v1",
        action_dist=agent.dist,
    )
    policy = load_policy(tmp_path / "policy")
    np.testing.assert_allclose(policy(obs), agent.act(obs, explore=False), atol=1e-6)
    assert policy.meta["network"]["normalize_obs"] is True


def test_statistics_change_what_the_policy_sees():
    config = PPOConfig(hidden_sizes=(16,), normalize_obs=True)
    agent = PPO(OBS, gym.spaces.Discrete(2), config, seed=0)
    obs = np.full((1, 3), 7.0, np.float32)
    before = agent.network.numpy_forward(obs)[0]
    zero = agent.network.numpy_forward(np.zeros((1, 3), np.float32))[0]
    agent.network.obs_normalizer.mean.assign([7.0, 7.0, 7.0])
    agent.network.refresh_numpy()
    after = agent.network.numpy_forward(obs)[0]
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after, zero, atol=1e-6)  # 7 - mean 7 is what 0 was before


def test_image_observations_refuse_normalize_obs():
    images = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    with pytest.raises(IncompatibleEnvError, match="normalize_obs is for vector observations"):
        PPO(images, gym.spaces.Discrete(4), PPOConfig(normalize_obs=True), seed=0)
