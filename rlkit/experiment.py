"""``learn()``: wire env, runner, buffer, logger and periodic evaluation around a loop."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlkit.config import RunConfig
from rlkit.core import Agent
from rlkit.logger import Logger


@dataclass
class TrainResult:
    """What a training run did: steps, wall time, episodes and periodic evaluations."""

    env_steps: int
    seconds: float
    episodes: int
    mean_return: float  # over the last 100 training episodes
    evaluations: list[dict[str, float]] = field(default_factory=list)
    solved_at: dict[str, float] | None = None  # first evaluation reaching stop_reward


class PeriodicEvaluator:
    """Every ``every`` env steps, play greedy episodes on a separate env and log the mean.

    Returning False from ``__call__`` asks the loop to stop (when ``stop_reward`` is met).
    """

    def __init__(
        self,
        agent: Agent,
        env_id: str,
        logger: Logger,
        *,
        every: int,
        episodes: int,
        seed: int,
        stop_reward: float | None = None,
        protocol: Any = None,
        epsilon: float = 0.0,
    ) -> None:
        self.agent, self.env_id, self.logger = agent, env_id, logger
        self.every, self.episodes, self.seed, self.stop_reward = every, episodes, seed, stop_reward
        self.protocol, self.epsilon = protocol, epsilon
        self.next_eval = every
        self.history: list[dict[str, float]] = []
        self.solved_at: dict[str, float] | None = None
        self._start = time.perf_counter()
        self._eval_seconds = 0.0

    def __call__(self, env_steps: int) -> bool:
        """Evaluate if due; return False to stop training."""
        if self.every <= 0 or env_steps < self.next_eval:
            return True
        self.next_eval = (env_steps // self.every + 1) * self.every
        from rlkit.evaluate import evaluate_policy

        t0 = time.perf_counter()
        returns = evaluate_policy(
            lambda o: self.agent.act(o, explore=False),
            self.env_id,
            self.episodes,
            self.seed,
            protocol=self.protocol,
            epsilon=self.epsilon,
        )
        self._eval_seconds += time.perf_counter() - t0
        train_seconds = time.perf_counter() - self._start - self._eval_seconds
        row = {
            "env_steps": env_steps,
            "train_seconds": train_seconds,
            "mean_reward": float(np.mean(returns)),
            "std_reward": float(np.std(returns)),
        }
        self.history.append(row)
        self.logger.write(
            {"eval/mean_reward": row["mean_reward"], "eval/std_reward": row["std_reward"]},
            env_steps,
        )
        if self.stop_reward is not None and row["mean_reward"] >= self.stop_reward:
            self.solved_at = self.solved_at or row
            return False
        return True


def env_protocol(env_id: str, run: RunConfig) -> Any:
    """The Atari protocol of the run (``AtariProtocol``), or None for other envs."""
    from rlkit.envs.atari import is_atari, load_protocol

    if not is_atari(env_id):
        return None
    return load_protocol(
        run.atari_protocol, frame_stack=run.frame_stack, screen_size=run.screen_size
    )


def make_envs(env_id: str, run: RunConfig, protocol: Any = None) -> Any:
    """The run's vector env: ``run.num_envs`` copies, ``run.vectorization``, NEXT_STEP."""
    from rlkit.envs import make_vector_env

    return make_vector_env(env_id, run.num_envs, run.vectorization, protocol=protocol)


def learn(
    agent: Agent,
    env_id: str,
    run: RunConfig | None = None,
    *,
    run_dir: str | Path | None = None,
    verbose: int = 0,
    envs: Any = None,
) -> TrainResult:
    """Train ``agent`` on ``env_id`` with the loop that fits it.

    Args:
        agent: an agent built for the env's spaces.
        env_id: gymnasium id.
        run: steps, envs, vectorization, seed and periodic evaluation (``eval_every``,
            ``eval_episodes``, ``stop_reward``); ``RunConfig()`` defaults if None.
        run_dir: where to write ``progress.csv`` and TensorBoard events (None: nowhere).
        verbose: 1 prints progress.
        envs: an already built vector env (NEXT_STEP autoreset); built from ``run`` if None.

    Returns:
        A ``TrainResult``.

    Example:
        >>> env = gym.make("CartPole-v1")
        >>> agent = DQN(env.observation_space, env.action_space, DQNConfig(), seed=0)
        >>> result = learn(agent, "CartPole-v1", RunConfig(total_steps=50_000))
    """
    from rlkit import loops
    from rlkit.runner import VectorRunner

    run = run or RunConfig()
    protocol = env_protocol(env_id, run)
    if envs is None:
        envs = make_envs(env_id, run, protocol)
    runner = VectorRunner(
        envs,
        clip_rewards=bool(protocol and protocol.clip_rewards),
        life_loss_terminal=bool(protocol and protocol.life_loss_terminal),
    )
    logger = Logger(run_dir, run.total_steps, run.log_interval, verbose)
    evaluator = PeriodicEvaluator(
        agent,
        env_id,
        logger,
        protocol=protocol,
        epsilon=run.eval_epsilon,
        every=run.eval_every,
        episodes=max(run.eval_episodes, 1),
        seed=run.seed + 10_000,
        stop_reward=run.stop_reward,
    )
    start = time.perf_counter()
    try:
        if agent.on_policy:
            loops.train_on_policy(agent, runner, logger, run, callback=evaluator)
        else:
            from rlkit.replay import ReplayBuffer

            buffer = ReplayBuffer(
                agent.config.buffer_size,  # type: ignore[attr-defined]
                runner.num_envs,
                runner.observation_space,
                runner.action_space,
                frame_stack=protocol.frame_stack if protocol else 1,
                padding="zero",  # Atari stacks are zero-padded in every vectorization
                seed=run.seed,
            )
            loops.train_off_policy(agent, runner, buffer, logger, run, callback=evaluator)
        logger.dump_final(runner.env_steps)
    finally:
        logger.close()
        runner.close()
    return TrainResult(
        env_steps=runner.env_steps,
        seconds=time.perf_counter() - start,
        episodes=runner.episodes,
        mean_return=logger.mean_return,
        evaluations=evaluator.history,
        solved_at=evaluator.solved_at,
    )
