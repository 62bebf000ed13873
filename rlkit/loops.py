"""The data path, written once: off-policy (replay) and on-policy (rollout) training loops."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from rlkit.config import RunConfig
from rlkit.core import Agent
from rlkit.errors import NumericalError
from rlkit.logger import Logger
from rlkit.replay import ReplayBuffer
from rlkit.runner import VectorRunner, derive_seed

Callback = Callable[[int], bool]  # called with env_steps after each step; False stops


class Checkpoints(Protocol):
    """What the loops need from checkpointing (``rlkit.experiment.RunCheckpoints``)."""

    def due(self, env_steps: int) -> bool:
        """Whether to checkpoint now."""
        ...

    def __call__(self, env_steps: int, loop_state: dict[str, Any]) -> None:
        """Save everything needed to continue from here."""
        ...


def timed_update(agent: Agent, batch: Any, max_bad_updates: int | None = None) -> dict[str, float]:
    """``agent.update(batch)`` plus ``time/update_ms``, its wall time.

    Raises:
        NumericalError: after ``max_bad_updates`` consecutive gradient steps with a
            non-finite loss or gradient norm (the agents skip those steps, so the weights
            are still the last good ones).
    """
    start = time.perf_counter()
    metrics = agent.update(batch)
    metrics["time/update_ms"] = (time.perf_counter() - start) * 1e3
    bad = int(metrics.pop("train/consecutive_skips", 0))
    if max_bad_updates is not None and bad >= max_bad_updates:
        raise NumericalError(
            f"{bad} consecutive update steps had a non-finite loss or gradient norm (loss "
            f"{metrics.get('train/loss')}) and were skipped, so the weights are unchanged "
            "since the last good step. Common causes: NaN or Inf in the env's rewards or "
            "observations, or a learning rate that is too high; rerun with --check-numerics "
            "to find the first op that produces one"
        )
    return metrics


def log_restart(runner: VectorRunner, logger: Logger) -> None:
    """Log ``time/env_restarts`` when the last step rebuilt the envs after a fault."""
    if runner.restarted:
        logger.write({"time/env_restarts": float(runner.restarts)}, runner.env_steps)


def segment_seed(seed: int, env_steps: int) -> int:
    """Seed of the env reset that starts a run (``seed``) or follows a checkpoint.

    Every checkpoint ends a segment: the envs are reset with a seed derived from the run's
    seed and the step count, in an uninterrupted run and in one resumed from that
    checkpoint alike. Env internals cannot be saved in general, but this makes the env
    streams after a checkpoint identical either way, so resuming gives bitwise-identical
    training on CPU. Episodes in progress at a checkpoint are cut (not learned from).
    """
    if env_steps == 0:
        return seed
    return derive_seed(seed, env_steps)


def train_off_policy(
    agent: Agent,
    runner: VectorRunner,
    buffer: ReplayBuffer,
    logger: Logger,
    run: RunConfig,
    callback: Callback | None = None,
    checkpoints: Checkpoints | None = None,
    state: dict[str, Any] | None = None,
) -> None:
    """Train a replay-based agent (DQN family) until ``run.total_steps`` env steps.

    Every ``train_frequency`` env steps after ``learning_starts``, the agent gets
    ``gradient_steps`` batches sampled at once and fuses them into one compiled call.
    ``state`` (the next update's step) comes from a checkpoint when resuming.
    """
    cfg = agent.config  # type: ignore[attr-defined]
    state = {} if state is None else state  # updated in place: a checkpoint saves it
    state.setdefault("next_update", max(cfg.learning_starts, cfg.train_frequency))
    obs = runner.reset(seed=segment_seed(run.seed, runner.env_steps))
    while runner.env_steps < run.total_steps:
        # step(agent.act(obs, explore=True)); Ray workers act with their own policy copy
        transition, obs = runner.act_and_step(agent, obs)  # [N, ...]; autoreset rows masked
        buffer.add(transition)
        if runner.env_steps >= state["next_update"] and buffer.can_sample():
            due = 1 + (runner.env_steps - state["next_update"]) // cfg.train_frequency
            state["next_update"] += due * cfg.train_frequency
            batch = buffer.sample(cfg.batch_size, num_batches=due * cfg.gradient_steps)
            logger.write(timed_update(agent, batch, run.max_bad_updates), runner.env_steps)
        log_restart(runner, logger)  # a restart row is an invalid row: the buffer keeps it
        logger.write_episodes(runner.pop_episode_stats(), runner.env_steps)
        if callback is not None and not callback(runner.env_steps):
            break
        if checkpoints is not None and checkpoints.due(runner.env_steps):
            checkpoints(runner.env_steps, state)
            obs = runner.reset(seed=segment_seed(run.seed, runner.env_steps))


def train_on_policy(
    agent: Agent,
    runner: VectorRunner,
    logger: Logger,
    run: RunConfig,
    callback: Callback | None = None,
    checkpoints: Checkpoints | None = None,
) -> None:
    """Train a policy-gradient agent (A2C, REINFORCE) until ``run.total_steps`` env steps.

    The agent's own rollout storage says when it holds enough data (``n_steps`` per env
    for A2C, whole episodes for REINFORCE); then the agent makes one update from it.
    Checkpoints are taken, and the budget ends, right after an update, so no rollout is
    ever half collected at a checkpoint. After an env fault the runner rebuilds the envs
    and the partial rollout is dropped.
    """
    rollout = agent.make_rollout(runner)  # type: ignore[attr-defined]
    obs = runner.reset(seed=segment_seed(run.seed, runner.env_steps))
    done = runner.env_steps >= run.total_steps
    while not done:
        # step(agent.act(obs, explore=True)); Ray workers act with their own policy copy
        transition, obs = runner.act_and_step(agent, obs)  # [N, ...]; autoreset rows masked
        if runner.restarted:  # the envs were rebuilt after a fault: drop the partial rollout
            rollout.clear()  # (the restart row itself is kept: invalid, like an autoreset row,
            log_restart(runner, logger)  # it keeps a Ray chunk aligned with the rollout)
        if rollout.add(transition):
            metrics = timed_update(agent, rollout.pop(last_obs=obs), run.max_bad_updates)
            logger.write(metrics, runner.env_steps)
            done = runner.env_steps >= run.total_steps  # the budget ends on an update
            if checkpoints is not None and checkpoints.due(runner.env_steps):
                checkpoints(runner.env_steps, {})
                rollout.clear()
                obs = runner.reset(seed=segment_seed(run.seed, runner.env_steps))
        logger.write_episodes(runner.pop_episode_stats(), runner.env_steps)
        if callback is not None and not callback(runner.env_steps):
            break
