"""Every agent's update step traces once, also with ``jit_compile`` and ``mixed_precision``.

The shapes vary on every call: batch sizes and fused gradient steps G (DQN family),
rollout lengths and env counts (A2C), episode lengths and counts (REINFORCE). A retrace
would recompile the step (slow, and with XLA much slower) on every new shape.
"""

from __future__ import annotations

import numpy as np
import pytest
from agent_data import make_agent, update_data

from rlkit.agents import AGENTS

MODES = {
    "jit_compile": {"jit_compile": True},
    "mixed_precision": {"mixed_precision": True},  # a bfloat16 torso, float32 heads and loss
}


def shapes(on_policy: bool, count: int, rng: np.random.Generator) -> list[tuple[int, ...]]:
    """``count`` distinct shapes: ``[T, N]`` for rollouts, ``[B]`` or ``[G, B]`` for batches."""
    out: list[tuple[int, ...]] = []
    while len(out) < count:
        if on_policy:
            shape = (int(rng.integers(1, 9)), int(rng.integers(1, 5)))
        elif len(out) % 2:
            shape = (int(rng.integers(1, 33)),)
        else:
            shape = (int(rng.integers(1, 4)), int(rng.integers(1, 33)))
        if shape not in out:
            out.append(shape)
    return out


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("name", sorted(AGENTS))
def test_update_traces_once_over_many_shapes(name, mode):
    agent = make_agent(name, seed=0, **MODES[mode])
    if "mixed_precision" in mode:
        assert agent.policy_network().mixed_precision is True
    rng = np.random.default_rng(1)
    before = int(agent.updates.numpy())
    steps = 0
    # XLA compiles each new shape anew (seconds on a CPU), so fewer shapes with jit_compile:
    # three still change every dim ([G, B] twice and a [B]; or [T, N] three times).
    for shape in shapes(agent.on_policy, 3 if "jit" in mode else 8, rng):
        metrics = agent.update(update_data(agent, rng, shape))
        assert all(np.isfinite(v) for v in metrics.values()), metrics
        steps += shape[0] if len(shape) == 2 and not agent.on_policy else 1
    assert int(agent.updates.numpy()) == before + steps  # every step was taken
    assert agent._update_fn.experimental_get_tracing_count() == 1
