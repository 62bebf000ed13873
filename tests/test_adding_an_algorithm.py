"""docs/adding-an-algorithm.md is real: its example agent, dropped into rlkit.agents, works."""

from __future__ import annotations

import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import rlkit.agents
from rlkit.agents import AGENTS, discover, get_agent_class, load_agent
from rlkit.config import RunConfig
from rlkit.experiment import learn

DOC = Path(__file__).resolve().parents[1] / "docs" / "adding-an-algorithm.md"


def example_code() -> str:
    """The doc's agent file: the first Python block after the worked example's heading."""
    section = DOC.read_text().split("## A worked example", 1)[1]
    return section.split("```python", 1)[1].split("```", 1)[0]


@pytest.fixture
def soft_dqn(tmp_path, monkeypatch):
    """The example as ``rlkit/agents/soft_dqn.py``: a folder added to the package's path."""
    package = tmp_path / "extra_agents"
    package.mkdir()
    (package / "soft_dqn.py").write_text(example_code())
    monkeypatch.setattr(rlkit.agents, "__path__", [*rlkit.agents.__path__, str(package)])
    before = dict(AGENTS)
    discover()
    yield get_agent_class("soft_dqn")
    AGENTS.clear()
    AGENTS.update(before)
    sys.modules.pop("rlkit.agents.soft_dqn", None)


def test_the_example_is_short():
    lines = [line for line in example_code().splitlines() if line.strip()]
    assert len(lines) <= 45


def test_the_registry_finds_the_new_file(soft_dqn):
    assert soft_dqn.__name__ == "SoftDQN" and soft_dqn.name == "soft_dqn"
    assert AGENTS["soft_dqn"] is soft_dqn
    assert {"dqn", "a2c", "reinforce"} <= set(AGENTS)  # the shipped ones are still there


def test_the_example_target_by_hand(soft_dqn):
    import gymnasium as gym
    import tensorflow as tf

    space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
    agent = soft_dqn(space, gym.spaces.Discrete(2), soft_dqn.config_cls(temperature=0.5))
    for w in agent.target_network.weights:  # Q_target(s', .) = [1, 2] for every s'
        w.assign(np.zeros(w.shape, np.float32))
    agent.target_network.q_head.bias.assign([1.0, 2.0])
    y = agent.next_state_target(tf.constant([1.0]), tf.constant([0.5]), tf.zeros((1, 3)))
    # y = 1 + 0.5 * 0.5 * log(exp(1 / 0.5) + exp(2 / 0.5)) = 1 + 0.25 * log(e^2 + e^4)
    np.testing.assert_allclose(y.numpy(), [1 + 0.25 * np.log(np.e**2 + np.e**4)], rtol=1e-6)


def test_the_example_trains_saves_and_loads(soft_dqn, tmp_path):
    import gymnasium as gym

    keras.utils.set_random_seed(0)
    config = soft_dqn.config_cls(
        hidden_sizes=(16,), learning_starts=200, train_frequency=50, gradient_steps=4
    )
    env = gym.make("CartPole-v1")
    agent = soft_dqn(env.observation_space, env.action_space, config, seed=0)
    env.close()
    result = learn(agent, "CartPole-v1", RunConfig(total_steps=600, seed=0))
    assert result.env_steps >= 600
    updates = int(agent.updates.numpy())  # 4 gradient steps every 50 env steps from 200
    assert updates >= 4 * (600 - 200) // 50 and updates % 4 == 0
    assert agent._update_fn.experimental_get_tracing_count() == 1
    loaded = load_agent(agent.save(tmp_path / "agent"))
    assert type(loaded) is soft_dqn and loaded.config.temperature == config.temperature
