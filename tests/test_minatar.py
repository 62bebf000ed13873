"""MinAtar (the minatar extra): its ids register on demand, in this process and in workers."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

from rlkit.agents.common import network_spec
from rlkit.config import resolve
from rlkit.envs.make import check_env_id, make_vector_env
from rlkit.errors import ConfigError

GAMES = ("SpaceInvaders", "Breakout", "Asterix", "Freeway", "Seaquest")


@pytest.mark.parametrize("game", GAMES)
def test_every_game_registers_and_steps(game):
    env_id = f"MinAtar/{game}-v1"
    check_env_id(env_id)  # registers the family (gymnasium 1.x does not load its plugin)
    env = gym.make(env_id)
    obs, _ = env.reset(seed=3)
    assert obs.dtype == np.bool_ and obs.shape[:2] == (10, 10)
    assert env.observation_space.contains(obs)
    obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
    assert obs.shape == env.observation_space.shape
    env.close()


def test_spawned_workers_register_the_ids_themselves():
    envs = make_vector_env("MinAtar/Breakout-v1", num_envs=2, vectorization="async")
    try:
        obs, _ = envs.reset(seed=0)
        assert obs.shape == (2, 10, 10, 4) and obs.dtype == np.bool_
    finally:
        envs.close()


def test_boolean_grids_get_the_minatar_torso():
    space = gym.spaces.Box(0.0, 1.0, (10, 10, 6), bool)  # as MinAtar declares it
    assert network_spec("q", space, 6, (128,), "relu")["torso"] == "minatar_cnn"
    images = gym.spaces.Box(0, 255, (84, 84, 4), np.uint8)
    assert network_spec("q", images, 6, (512,), "relu")["torso"] == "nature_cnn"
    vectors = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    assert network_spec("q", vectors, 2, (64,), "relu")["torso"] == "mlp"


def test_a_setting_of_another_agent_names_the_agents_that_have_it():
    from rlkit.agents import A2C

    with pytest.raises(ConfigError, match=r"gradient_steps is a setting of .*dqn.*not of 'a2c'"):
        resolve(A2C, "CartPole-v1", overrides={"gradient_steps": 4})


def test_evaluation_seeds_beyond_32_bits_play_reproducible_episodes():
    # MinAtar seeds numpy's RandomState, which takes 32-bit seeds; rlkit's evaluation seeds
    # are >= 2**100 (WideSeeds hashes them), and small training seeds pass unchanged.
    from rlkit.evaluate import evaluation_seeds, play_episodes

    seeds = evaluation_seeds(7, "final", 1000, 4)
    assert min(seeds) >= 2**100

    def random_policy(obs: np.ndarray) -> np.ndarray:
        return np.asarray([int(obs.sum()) % 3])  # deterministic in the observation

    first = play_episodes(random_policy, "MinAtar/Breakout-v1", 4, seed=seeds)
    again = play_episodes(random_policy, "MinAtar/Breakout-v1", 4, seed=seeds)
    np.testing.assert_array_equal(first, again)
    envs = make_vector_env("MinAtar/Breakout-v1", num_envs=1)
    try:
        obs, _ = envs.reset(seed=3)  # a training seed, as the runner passes it
        assert obs.shape == (1, 10, 10, 4)
        obs, _ = envs.reset(seed=seeds[0])
        assert obs.shape == (1, 10, 10, 4)
    finally:
        envs.close()


@pytest.mark.parametrize("agent", ["dqn", "rainbow"])
def test_train_on_minatar_saves_a_policy_that_evaluates(agent, tmp_path):
    from rlkit import evaluate, train
    from rlkit.policy_io import load_policy

    run_dir = tmp_path / agent
    argv = ["--agent", agent, "--env", "MinAtar/Breakout-v1", "--total-steps", "400"]
    argv += ["--final-eval-episodes", "2", "--eval-every", "0", "--quiet"]
    argv += ["--set", "learning_starts=100", "--set", "buffer_size=1000"]
    assert train.main([*argv, "--run-dir", str(run_dir)]) == 0
    results = json.loads((run_dir / "results.json").read_text())
    assert results["train_env_steps"] >= 400 and len(results["returns"]) == 2
    saved = json.loads((run_dir / "policy" / "policy.json").read_text())
    assert saved["network"]["torso"] == "minatar_cnn"
    policy = load_policy(run_dir)
    obs, _ = gym.make("MinAtar/Breakout-v1").reset(seed=0)
    assert policy(obs[None]).shape == (1,)
    assert evaluate.main(["--run", str(run_dir), "--episodes", "2"]) == 0
