"""The data path, written once: act, step, store, update when the agent's schedule says so."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from rlkit.callbacks import Callback
from rlkit.config import RunConfig
from rlkit.core import Agent, Storage
from rlkit.errors import NumericalError
from rlkit.logger import Logger
from rlkit.numpy_mlp import one_blas_thread
from rlkit.runner import derive_seed


class RunSaver(Protocol):
    """What the loops need from checkpointing (``rlkit.experiment.RunSaver``)."""

    def due(self, env_steps: int) -> bool:
        """Whether to checkpoint now."""
        ...

    def __call__(self, env_steps: int, loop_state: dict[str, Any]) -> Any:
        """Save everything needed to continue from here; return the checkpoint's folder."""
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


def log_restart(runner: Any, logger: Logger) -> None:
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


def train(
    agent: Agent,
    runner: Any,
    storage: Storage,
    logger: Logger,
    run: RunConfig,
    callback: Callback | Callable[[int], bool] | None = None,
    checkpoints: RunSaver | None = None,
    schedule: dict[str, Any] | None = None,
) -> None:
    """Train ``agent`` from ``storage`` (what ``agent.make_storage`` built) until the budget.

    Act, step, store; update whenever the agent's schedule (``next_batch``) says so. The
    same loop runs every agent: the DQN family's replay and schedule, or a policy-gradient
    agent's rollouts. With a ``transient`` storage (rollouts) the budget ends, and
    checkpoints are taken, only right after an update, so no rollout is ever half
    collected at a checkpoint; after an env fault the runner rebuilds the envs and the
    partial rollout is dropped (replay keeps the restart row as an invalid row).

    Args:
        agent: the learner.
        runner: a ``VectorRunner``, or a ``RayRunner`` whose workers act themselves.
        storage: the agent's storage.
        logger: receives update metrics and finished episodes.
        run: ``total_steps``, ``seed`` and ``max_bad_updates``.
        callback: its hooks ``on_step`` (after each step), ``on_update`` (after each
            update) and ``on_checkpoint`` are called; any returning False stops training
            at the end of that step (``rlkit.callbacks``). A plain function of env_steps
            is called as ``on_step``.
        checkpoints: saves the run when due (and the envs are then reset, see
            ``segment_seed``).
        schedule: the agent's update schedule, from a checkpoint when resuming; updated in
            place and saved with each checkpoint.
    """
    schedule = {} if schedule is None else schedule
    if callback is None:
        callback = Callback()
    elif not isinstance(callback, Callback):
        callback = _StepFunction(callback)
    agent.set_horizon(run.total_steps)
    # Ray rollout workers act with their own copy of the policy: the runner hands out the
    # steps they took (and moves the agent's exploration schedule on).
    in_workers = getattr(runner, "acts_in_workers", False)
    with one_blas_thread():  # the numpy acting path's products: one BLAS thread is fastest
        obs = runner.reset(seed=segment_seed(run.seed, runner.env_steps))
        at_boundary = True  # storage holds nothing a checkpoint or the budget's end would lose
        while not (at_boundary and runner.env_steps >= run.total_steps):
            if in_workers:
                transition, obs = runner.act_and_step(agent, obs)
            else:
                action = agent.act(obs, explore=True)  # [N, *action_shape]
                transition, obs = runner.step(action)  # arrays of [N, ...]; autoreset rows masked
            if runner.restarted:  # envs rebuilt after a fault: the restart row itself is invalid
                log_restart(runner, logger)
                if storage.transient:
                    storage.clear()  # the partial rollout's episodes were cut
            storage.add(transition)
            updated, go_on = False, True
            # Usually one update at most; an agent may hand out several in a row (prioritized
            # replay samples each gradient step after the priorities of the one before).
            while (batch := agent.next_batch(storage, runner.env_steps, obs, schedule)) is not None:
                metrics = timed_update(agent, batch, run.max_bad_updates)
                agent.after_update(storage, batch)
                logger.write(metrics, runner.env_steps)
                updated = True
                go_on &= callback.on_update(runner.env_steps, metrics) is not False
            at_boundary = updated or not storage.transient
            logger.write_episodes(runner.pop_episode_stats(), runner.env_steps)
            go_on &= callback.on_step(runner.env_steps) is not False
            if not go_on:
                break
            if at_boundary and checkpoints is not None and checkpoints.due(runner.env_steps):
                path = checkpoints(runner.env_steps, schedule)
                if storage.transient:
                    storage.clear()  # the reset cuts the episodes in progress
                obs = runner.reset(seed=segment_seed(run.seed, runner.env_steps))
                if path is not None and callback.on_checkpoint(runner.env_steps, path) is False:
                    break


class _StepFunction(Callback):
    """A plain function of env_steps (False stops) as a callback's ``on_step``."""

    def __init__(self, function: Callable[[int], bool]) -> None:
        self.function = function

    def on_step(self, env_steps: int) -> bool:
        return bool(self.function(env_steps))


def train_off_policy(
    agent: Agent,
    runner: Any,
    buffer: Storage,
    logger: Logger,
    run: RunConfig,
    callback: Callback | Callable[[int], bool] | None = None,
    checkpoints: RunSaver | None = None,
    state: dict[str, Any] | None = None,
) -> None:
    """``train`` with a replay buffer you built (``agent.make_storage`` builds the usual one)."""
    train(agent, runner, buffer, logger, run, callback, checkpoints, state)


def train_on_policy(
    agent: Agent,
    runner: Any,
    logger: Logger,
    run: RunConfig,
    callback: Callback | Callable[[int], bool] | None = None,
    checkpoints: RunSaver | None = None,
) -> None:
    """``train`` with the agent's own storage for the runner's envs (rollouts)."""
    storage = agent.make_storage(runner.num_envs, runner.observation_space, runner.action_space)
    train(agent, runner, storage, logger, run, callback, checkpoints)
