"""Rainbow's components in the DQN family: settings, their checks, and the update they make."""

from __future__ import annotations

import copy

import gymnasium as gym
import keras
import numpy as np
import pytest
import tensorflow as tf

from rlkit import losses
from rlkit.agents import AGENTS, Rainbow
from rlkit.config import RunConfig, resolve
from rlkit.errors import ConfigError
from rlkit.experiment import learn
from rlkit.prioritized import PrioritizedReplayBuffer
from rlkit.replay import ReplayBuffer
from rlkit.types import Batch

OBS = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)
ACTIONS = gym.spaces.Discrete(2)


def make_agent(name: str, seed: int = 0, **overrides):
    keras.utils.set_random_seed(seed)
    cls = AGENTS[name]
    return cls(OBS, ACTIONS, cls.config_cls(hidden_sizes=(16,), **overrides), seed=seed)


def random_batch(rng: np.random.Generator, g: int, b: int, gamma: float = 0.99) -> Batch:
    shape = (g, b)
    terminated = (rng.random(shape) < 0.2).astype(np.float32)
    return Batch(
        obs=rng.normal(size=(*shape, 4)).astype(np.float32),
        action=rng.integers(0, 2, shape).astype(np.int64),
        reward=rng.normal(size=shape).astype(np.float32),
        next_obs=rng.normal(size=(*shape, 4)).astype(np.float32),
        terminated=terminated,
        truncated=np.zeros(shape, np.float32),
        discount=np.float32(gamma) * (1.0 - terminated),
        weights=rng.uniform(0.2, 1.0, shape).astype(np.float32),
        indices=np.arange(g * b).reshape(shape),
    )


# -- settings and their checks ---------------------------------------------------------------


def test_rainbow_turns_every_component_on():
    cfg = Rainbow.config_cls()
    assert cfg.n_step == 3 and cfg.prioritized_replay and cfg.noisy
    assert cfg.distributional == "c51" and cfg.num_atoms == 51 and cfg.per_alpha == 0.5
    agent = make_agent("rainbow")
    assert agent.q_network.spec["kind"] == "dueling_q"
    assert agent.q_network.spec["distributional"] == "c51" and agent.q_network.spec["noisy"]
    storage = agent.make_storage(1, OBS, ACTIONS)
    assert isinstance(storage, PrioritizedReplayBuffer) and storage.n_step == 3


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"n_step": 0}, "n_step"),
        ({"per_alpha": 1.5}, "per_alpha"),
        ({"v_min": 5, "v_max": 5}, "v_min"),
        ({"distributional": "iqn"}, "distributional"),
        ({"noisy": True, "exploration_final_eps": 0.02}, "noisy nets replace epsilon-greedy"),
        ({"noisy": True, "runner": "ray"}, "Ray workers"),
    ],
)
def test_bad_settings_are_refused_before_anything_runs(overrides, message):
    with pytest.raises(ConfigError, match=message):
        resolve(AGENTS["dqn"], "CartPole-v1", overrides=overrides)


def test_a_q_head_setting_on_a_policy_gradient_agent_names_the_dqn_family():
    with pytest.raises(ConfigError, match=r"distributional is a setting of .*rainbow.*a2c"):
        resolve(AGENTS["a2c"], "CartPole-v1", overrides={"distributional": "c51"})


def test_noisy_preset_epsilon_is_not_the_users_choice():
    # The DQN presets set an epsilon schedule; turning noisy on over them is fine.
    run, cfg = resolve(AGENTS["dqn"], "CartPole-v1", overrides={"noisy": True})
    assert cfg.noisy
    agent = AGENTS["dqn"](OBS, ACTIONS, cfg, seed=0)
    assert agent.epsilon == 0.0


def test_the_cli_exits_2_naming_the_setting(tmp_path):
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "rlkit.train", "--agent", "rainbow", "--env", "CartPole-v1"]
    cmd += ["--set", "n_step=0", "--run-dir", str(tmp_path / "run")]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 2
    assert "n_step" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()


# -- the update ------------------------------------------------------------------------------

COMBINATIONS = [
    ("dqn", {"distributional": "c51", "v_min": -5.0, "v_max": 5.0}),
    ("dqn", {"distributional": "qr", "num_atoms": 8}),
    ("double_dqn", {"distributional": "c51", "noisy": True}),
    ("dueling_dqn", {"distributional": "qr", "noisy": True, "num_atoms": 8}),
    ("dueling_dqn", {"noisy": True}),
    ("rainbow", {}),
    ("rainbow", {"distributional": "qr"}),
    ("rainbow", {"distributional": "none", "noisy": False}),
]


@pytest.mark.parametrize("name, overrides", COMBINATIONS)
def test_every_combination_learns_finitely_and_traces_once(name, overrides):
    agent = make_agent(name, **overrides)
    rng = np.random.default_rng(0)
    before = [w.copy() for w in agent.q_network.get_weights()]
    for g in (1, 3, 2):
        metrics = agent.update(random_batch(rng, g, 16))
        assert np.isfinite(metrics["train/loss"]) and np.isfinite(metrics["train/q_mean"])
    after = agent.q_network.get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    assert agent._update_fn.experimental_get_tracing_count() == 1


def test_c51_update_minimizes_the_cross_entropy_to_the_projected_target():
    agent = make_agent("dqn", distributional="c51", v_min=-2.0, v_max=2.0, num_atoms=5)
    batch = random_batch(np.random.default_rng(1), 1, 8)
    net, target_net = agent.q_network, agent.target_network
    logits_t = target_net.distribution(tf.constant(batch.next_obs[0]))
    q_t = tf.reduce_sum(tf.nn.softmax(logits_t) * net.support, -1)
    target = losses.c51_target(
        net.support, tf.constant(batch.reward[0]), tf.constant(batch.discount[0]), logits_t, q_t
    )
    expected, _ = losses.categorical_td_loss(
        net.distribution(tf.constant(batch.obs[0])),
        tf.constant(batch.action[0]),
        target,
        weights=tf.constant(batch.weights[0]),
    )
    metrics = agent.update(batch)
    assert metrics["train/loss"] == pytest.approx(float(expected), rel=1e-5)


def test_prioritized_update_hands_back_one_priority_per_sample():
    agent = make_agent("dqn", prioritized_replay=True, distributional="qr", num_atoms=4)
    batch = random_batch(np.random.default_rng(2), 1, 16)
    agent.update(batch)
    assert agent._priorities.shape == (1, 16) and (agent._priorities >= 0).all()

    class Recorder:
        def update_priorities(self, indices, priorities):
            self.got = (np.asarray(indices), np.asarray(priorities))

    storage = Recorder()
    agent.after_update(storage, batch)
    np.testing.assert_array_equal(storage.got[0], np.arange(16))
    assert storage.got[1].shape == (16,)


def test_noisy_exploration_varies_and_greedy_acting_does_not():
    agent = make_agent("dqn", noisy=True)
    obs = np.random.default_rng(3).normal(size=(256, 4)).astype(np.float32)
    greedy = [agent.act(obs, explore=False) for _ in range(3)]
    assert all(np.array_equal(greedy[0], g) for g in greedy)
    explored = [agent.act(obs, explore=True) for _ in range(5)]
    assert any(not np.array_equal(explored[0], e) for e in explored[1:])


def noise_counters(network) -> list[int]:
    """Where each noisy layer's TF noise stream stands (its counter)."""
    layers = [*network.torso_layers, *network.head_layers()]
    return [int(layer.noise_state.numpy()[1]) for layer in layers if hasattr(layer, "noise_state")]


def test_noisy_exploration_draws_from_the_agents_generator_in_numpy():
    agent = make_agent("rainbow")
    obs = np.random.default_rng(3).normal(size=(8, 4)).astype(np.float32)
    network = agent.q_network
    assert network.supports_numpy
    counters = noise_counters(network)
    assert len(counters) == 3  # the torso's last layer, the value and advantage heads
    twin = copy.deepcopy(agent.rng)
    step = agent.explore_policy.step
    for _ in range(3):
        want = np.argmax(network.numpy_forward(obs, noise_rng=twin), axis=-1)
        np.testing.assert_array_equal(agent.act(obs, explore=True), want)
    assert agent.rng.bit_generator.state == twin.bit_generator.state
    assert agent.explore_policy.step == step + 3 * len(obs)
    # the layers' TF stream is the learning update's alone now
    assert noise_counters(network) == counters
    greedy = agent.act(obs, explore=False)
    np.testing.assert_array_equal(greedy, np.argmax(network.numpy_forward(obs), axis=-1))
    np.testing.assert_allclose(agent.q_values(obs), network(obs).numpy(), rtol=1e-5, atol=1e-6)
    assert agent.rng.bit_generator.state == twin.bit_generator.state  # greedy draws nothing


def test_minatar_acting_is_numpy_and_matches_the_tf_path():
    keras.utils.set_random_seed(0)
    grids = gym.spaces.Box(0, 1, (10, 10, 6), bool)
    agent = Rainbow(grids, gym.spaces.Discrete(6), Rainbow.config_cls(hidden_sizes=(32,)), seed=0)
    obs = np.random.default_rng(1).random((3, *grids.shape)) < 0.3
    assert agent.q_network.supports_numpy
    np.testing.assert_allclose(agent.q_values(obs), agent._q_fn(obs).numpy(), rtol=1e-5, atol=1e-6)
    twin = copy.deepcopy(agent.rng)
    want = np.argmax(agent.q_network.numpy_forward(obs, noise_rng=twin), axis=-1)
    np.testing.assert_array_equal(agent.act(obs, explore=True), want)


def test_noisy_exploration_without_a_numpy_path_uses_the_tf_stream():
    keras.utils.set_random_seed(0)
    frames = gym.spaces.Box(0, 255, (4, 36, 36), np.uint8)  # the Nature CNN: no numpy path
    agent = Rainbow(frames, ACTIONS, Rainbow.config_cls(hidden_sizes=(16,)), seed=0)
    assert not agent.q_network.supports_numpy
    obs = np.random.default_rng(1).integers(0, 256, (2, *frames.shape), dtype=np.uint8)
    counters, state = noise_counters(agent.q_network), agent.rng.bit_generator.state
    agent.act(obs, explore=True)
    assert noise_counters(agent.q_network) == [c + 1 for c in counters]
    assert agent.rng.bit_generator.state == state


# -- training with the loop ------------------------------------------------------------------


def test_prioritized_replay_samples_each_gradient_step_after_the_last_priorities():
    keras.utils.set_random_seed(0)
    cls = AGENTS["rainbow"]
    cfg = cls.config_cls(
        hidden_sizes=(16,),
        learning_starts=200,
        train_frequency=50,
        gradient_steps=4,
        buffer_size=2_000,
        batch_size=16,
        v_min=0.0,
        v_max=50.0,
    )
    env = gym.make("CartPole-v1")
    agent = cls(env.observation_space, env.action_space, cfg, seed=0)
    env.close()
    calls = []
    update = agent.update

    def counting(batch):
        calls.append(np.shape(batch.reward))
        return update(batch)

    agent.update = counting
    learn(agent, "CartPole-v1", RunConfig(total_steps=600, seed=0, final_eval_episodes=0))
    # Every update is one gradient step ([1, B]), 4 per period of 50 steps from step 200.
    assert set(calls) == {(1, 16)} and len(calls) == 4 * ((600 - 200) // 50 + 1)
    assert int(agent.updates.numpy()) == len(calls)
    assert agent._update_fn.experimental_get_tracing_count() == 1


def test_uniform_replay_with_n_step_is_built_from_the_settings():
    agent = make_agent("dqn", n_step=4, gamma=0.9)
    storage = agent.make_storage(2, OBS, ACTIONS)
    assert type(storage) is ReplayBuffer and storage.n_step == 4 and storage.gamma == 0.9


def test_a_config_file_that_sets_epsilon_with_noisy_is_refused(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("noisy: true\nexploration_final_eps: 0.02\n")
    with pytest.raises(ConfigError, match="noisy nets replace epsilon-greedy"):
        resolve(AGENTS["dqn"], "CartPole-v1", config_file=path)
