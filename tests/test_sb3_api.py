"""The API people know from Stable-Baselines3: ``agent.predict`` and ``evaluate_policy``."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from rlkit.agents import DQN, PPO, DQNConfig, PPOConfig
from rlkit.errors import RlkitError
from rlkit.evaluate import evaluate_policy, play_episodes
from rlkit.policy_io import load_policy, save_policy

CARTPOLE = gym.make("CartPole-v1")
PENDULUM = gym.make("Pendulum-v1")
OBS = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)


def dqn(**settings) -> DQN:
    config = DQNConfig(hidden_sizes=(16,), **settings)
    return DQN(CARTPOLE.observation_space, CARTPOLE.action_space, config, seed=0)


def test_predict_takes_one_observation_or_a_batch():
    agent = dqn()
    greedy = agent.act(OBS, explore=False)
    actions, state = agent.predict(OBS, deterministic=True)
    assert state is None
    np.testing.assert_array_equal(actions, greedy)
    one, _ = agent.predict(OBS[3], deterministic=True)
    assert np.shape(one) == () and one == greedy[3]
    one_list, _ = agent.predict(OBS[3].tolist(), deterministic=True)  # lists work too
    assert one_list == greedy[3]
    with pytest.raises(ValueError, match=r"fits neither the observation space's shape \(4,\)"):
        agent.predict(np.zeros(5))


def test_predict_not_deterministic_explores_as_the_agent_does():
    agent = dqn(exploration_initial_eps=1.0)  # epsilon 1 at step 0: uniformly random
    batch = np.repeat(OBS[:1], 400, axis=0)
    explored, _ = agent.predict(batch)  # SB3's default: deterministic=False
    assert set(np.unique(explored)) == {0, 1}
    greedy, _ = agent.predict(batch, deterministic=True)
    assert len(np.unique(greedy)) == 1


def test_predict_on_a_continuous_policy_returns_the_mean_or_a_sample():
    agent = PPO(PENDULUM.observation_space, PENDULUM.action_space, PPOConfig(), seed=0)
    obs = np.zeros(3, np.float32)
    mode, _ = agent.predict(obs, deterministic=True)
    assert mode.shape == (1,)
    np.testing.assert_array_equal(mode, agent.predict(obs, deterministic=True)[0])
    samples = np.array([agent.predict(obs)[0] for _ in range(20)])
    assert samples.shape == (20, 1) and np.std(samples) > 0


def test_a_loaded_policy_predicts_like_the_agent(tmp_path):
    agent = dqn()
    save_policy(tmp_path, agent.policy_network(), agent="dqn", env_id="CartPole-v1")
    policy = load_policy(tmp_path)
    np.testing.assert_array_equal(policy.predict(OBS)[0], agent.act(OBS, explore=False))
    assert policy.predict(OBS[0])[0] == agent.act(OBS[:1], explore=False)[0]
    with pytest.raises(RlkitError, match="needs a policy with action probabilities"):
        policy.predict(OBS, deterministic=False)


def test_evaluate_policy_returns_the_mean_and_std_or_every_episode():
    agent = dqn()
    mean, std = evaluate_policy(agent, "CartPole-v1", n_eval_episodes=5, seed=10)
    rewards, lengths = evaluate_policy(
        agent, "CartPole-v1", n_eval_episodes=5, seed=10, return_episode_rewards=True
    )
    expected = play_episodes(lambda o: agent.act(o, explore=False), "CartPole-v1", 5, seed=10)
    assert rewards == list(expected) and isinstance(rewards[0], float)
    assert lengths == [int(r) for r in expected]  # CartPole: +1 a step
    assert (mean, std) == pytest.approx((np.mean(expected), np.std(expected)))


def test_evaluate_policy_takes_an_env_a_loaded_policy_or_a_function(tmp_path):
    agent = dqn()
    env = gym.make("CartPole-v1")
    by_env = evaluate_policy(agent, env, 3, seed=4, return_episode_rewards=True)
    env.reset(seed=0)  # the env is left open for its owner
    env.close()
    save_policy(tmp_path, agent.policy_network(), agent="dqn", env_id="CartPole-v1")
    by_policy = evaluate_policy(load_policy(tmp_path), "CartPole-v1", 3, seed=4,
                                return_episode_rewards=True)  # fmt: skip
    function = evaluate_policy(lambda o: agent.act(o, explore=False), "CartPole-v1", 3, seed=4,
                               return_episode_rewards=True)  # fmt: skip
    assert by_env == by_policy == function


def test_evaluate_policy_rejects_what_it_cannot_play():
    agent = dqn()
    with pytest.raises(ValueError, match="n_eval_episodes must be >= 1"):
        evaluate_policy(agent, "CartPole-v1", n_eval_episodes=0)
    vector = gym.make_vec("CartPole-v1", num_envs=2)
    with pytest.raises(ValueError, match="plays one env"):
        evaluate_policy(agent, vector)
    vector.close()
    with pytest.raises(ValueError, match="model must be an agent, a policy or a function"):
        evaluate_policy(42, "CartPole-v1")
