"""Learning tests: each agent's CartPole-v1 preset reaches a confirmed greedy mean >= 475,
and the policy it stops with holds it on 100 episodes from seeds the run never used (slow).
"""

from __future__ import annotations

import gymnasium as gym
import pytest

from rlkit.agents import AGENTS
from rlkit.agents.common import seed_everything
from rlkit.config import resolve
from rlkit.evaluate import evaluation_seeds, play_episodes
from rlkit.experiment import learn

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_preset_solves_cartpole(name: str) -> None:
    seed = 21  # not one of the seeds the presets were tuned on
    cls = AGENTS[name]
    run, cfg = resolve(cls, "CartPole-v1", overrides={"seed": seed})
    seed_everything(seed)
    env = gym.make("CartPole-v1")
    agent = cls(env.observation_space, env.action_space, cfg, seed=seed)
    result = learn(agent, "CartPole-v1", run)
    assert result.solved_at is not None, f"{name} did not reach 475 in {run.total_steps} steps"
    assert result.solved_at["confirm_mean_reward"] >= 475
    seeds = evaluation_seeds(seed, "final", result.env_steps, 100)
    returns = play_episodes(lambda o: agent.act(o, explore=False), "CartPole-v1", 100, seeds)
    assert returns.mean() >= 475, returns  # fresh seeds: the solved policy holds up
