"""``agent.save`` / ``load`` keep everything needed "to keep learning", for every agent.

An agent saved and loaded, then updated on a batch, must end bitwise where the same agent,
never saved, ends after the same update: weights, optimizer slots and step, counters.
"""

from __future__ import annotations

import numpy as np
import pytest
from agent_data import agent_variables, assert_same_variables, make_agent, update_data

from rlkit.agents import AGENTS, load_agent
from rlkit.core import Agent


def shape_for(agent, small: bool = False) -> tuple[int, ...]:
    if agent.on_policy:
        return (4, 3) if small else (6, 4)
    return (2, 8) if small else (3, 16)  # [G, B]: G fused gradient steps


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_a_loaded_agent_keeps_learning_exactly_like_the_original(name, tmp_path):
    rng = np.random.default_rng(5)
    agent = make_agent(name, seed=0)
    for _ in range(2):  # the optimizer's slots and step are not their initial values
        agent.update(update_data(agent, rng, shape_for(agent)))
    acting_obs = rng.normal(size=(7, 4)).astype(np.float32)
    agent.act(acting_obs, explore=True)  # moves the exploration schedule and the RNG

    loaded = type(agent).load(agent.save(tmp_path / "agent"))
    assert type(loaded) is type(agent) and loaded.config == agent.config
    assert type(load_agent(tmp_path / "agent")) is type(agent)
    with pytest.raises(NotImplementedError, match="load_agent"):
        Agent.load(tmp_path / "agent")  # the base class cannot tell what to build
    before = agent_variables(agent)
    assert_same_variables(before, agent_variables(loaded))
    assert any(np.any(v != 0) for v in before["optimizer"]), "optimizer state is all zeros"

    batch = update_data(agent, rng, shape_for(agent))
    metrics = agent.update(batch)
    loaded_metrics = loaded.update(batch)
    after = agent_variables(agent)
    assert_same_variables(after, agent_variables(loaded))
    changed = [
        not np.array_equal(a, b)
        for key in ("optimizer",)
        for a, b in zip(before[key], after[key], strict=True)
    ]
    assert any(changed), "the update changed no optimizer variable: the check proves nothing"
    assert metrics == loaded_metrics
    # Acting goes on identically too: greedy actions and the exploration RNG.
    obs = rng.normal(size=(64, 4)).astype(np.float32)
    np.testing.assert_array_equal(loaded.act(obs, explore=False), agent.act(obs, explore=False))
    np.testing.assert_array_equal(loaded.act(obs, explore=True), agent.act(obs, explore=True))
    assert loaded._update_fn.experimental_get_tracing_count() == 1
