"""The data path, written once: off-policy (replay) and on-policy (rollout) training loops."""

from __future__ import annotations

from collections.abc import Callable

from rlkit.config import RunConfig
from rlkit.core import Agent
from rlkit.logger import Logger
from rlkit.replay import ReplayBuffer
from rlkit.runner import VectorRunner

Callback = Callable[[int], bool]  # called with env_steps after each step; False stops


def train_off_policy(
    agent: Agent,
    runner: VectorRunner,
    buffer: ReplayBuffer,
    logger: Logger,
    run: RunConfig,
    callback: Callback | None = None,
) -> None:
    """Train a replay-based agent (DQN family) for ``run.total_steps`` env steps.

    Every ``train_frequency`` env steps after ``learning_starts``, the agent gets
    ``gradient_steps`` batches sampled at once and fuses them into one compiled call.
    """
    cfg = agent.config  # type: ignore[attr-defined]
    obs = runner.reset(seed=run.seed)
    next_update = max(cfg.learning_starts, cfg.train_frequency)
    while runner.env_steps < run.total_steps:
        action = agent.act(obs, explore=True)  # [N]
        transition, obs = runner.step(action)  # arrays of [N, ...]; autoreset rows masked
        buffer.add(transition)
        if runner.env_steps >= next_update and buffer.can_sample():
            due = 1 + (runner.env_steps - next_update) // cfg.train_frequency
            next_update += due * cfg.train_frequency
            batch = buffer.sample(cfg.batch_size, num_batches=due * cfg.gradient_steps)
            logger.write(agent.update(batch), runner.env_steps)
        logger.write_episodes(runner.pop_episode_stats(), runner.env_steps)
        if callback is not None and not callback(runner.env_steps):
            break


def train_on_policy(
    agent: Agent,
    runner: VectorRunner,
    logger: Logger,
    run: RunConfig,
    callback: Callback | None = None,
) -> None:
    """Train a policy-gradient agent (A2C, REINFORCE) for ``run.total_steps`` env steps.

    The agent's own rollout storage says when it holds enough data (``n_steps`` per env
    for A2C, whole episodes for REINFORCE); then the agent makes one update from it.
    """
    rollout = agent.make_rollout(runner)  # type: ignore[attr-defined]
    obs = runner.reset(seed=run.seed)
    while runner.env_steps < run.total_steps:
        action = agent.act(obs, explore=True)  # [N]
        transition, obs = runner.step(action)  # arrays of [N, ...]; autoreset rows masked
        if rollout.add(transition):
            logger.write(agent.update(rollout.pop(last_obs=obs)), runner.env_steps)
        logger.write_episodes(runner.pop_episode_stats(), runner.env_steps)
        if callback is not None and not callback(runner.env_steps):
            break
