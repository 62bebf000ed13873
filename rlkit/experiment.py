"""``learn()``: wire env, runner, buffer, logger and periodic evaluation around a loop."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlkit import interrupts
from rlkit.callbacks import Callback, CallbackList, StopOnReward, stop_score
from rlkit.config import RunConfig
from rlkit.core import Agent
from rlkit.envs.atari import env_protocol
from rlkit.envs.source import EnvLike, EnvSource
from rlkit.errors import CheckpointWriteError, ConfigError, NumericalError
from rlkit.logger import Logger

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a training run did: steps, wall time, episodes and periodic evaluations."""

    env_steps: int
    seconds: float
    episodes: int
    mean_return: float  # over the last 100 training episodes
    evaluations: list[dict[str, float]] = field(default_factory=list)
    solved_at: dict[str, float] | None = None  # the evaluation whose confirmed mean stopped it
    env_restarts: int = 0  # env rebuilds after worker faults
    eval_seconds: float = 0.0  # spent in periodic evaluations (part of ``seconds``)
    # A resumed run: training and evaluation seconds of the processes before this one, up
    # to the checkpoint it continued from (not part of ``seconds``).
    earlier_train_seconds: float = 0.0
    earlier_eval_seconds: float = 0.0
    # The callback and hook that stopped the run before its budget ("StopOnReward.on_evaluation").
    stopped_by: str | None = None

    @property
    def train_seconds(self) -> float:
        """Training wall seconds of the whole run, periodic evaluations excluded."""
        return self.earlier_train_seconds + self.seconds - self.eval_seconds


class PeriodicEvaluator(Callback):
    """Every ``every`` env steps, play greedy episodes from fresh seeds and log the mean.

    Each evaluation plays ``episodes`` episodes whose seeds come from the run seed and the
    step count (``rlkit.evaluate.evaluation_seeds``), so no start state is replayed and a
    resumed run evaluates on the same seeds. A stop needs confirmation: when an evaluation
    reaches ``stop_reward``, ``confirm_episodes`` further fresh episodes must reach it too
    (their mean less ``confirm_margin_se`` standard errors: ``confirmation_score``).
    Each evaluation's row goes to ``listeners.on_evaluation`` (the run's callbacks, with
    ``StopOnReward`` for ``stop_reward``); when one of them returns False, so does
    ``on_step`` and the loop stops with the policy just evaluated.
    """

    def __init__(
        self,
        agent: Agent,
        env_id: EnvLike,
        logger: Logger,
        *,
        every: int,
        episodes: int,
        seed: int,
        stop_reward: float | None = None,
        confirm_episodes: int = 30,
        confirm_margin_se: float = 0.0,
        protocol: Any = None,
        epsilon: float = 0.0,
        video_every: int = 0,
        video_dir: Path | None = None,
        best_dir: Path | None = None,
        listeners: CallbackList | None = None,
    ) -> None:
        self.agent, self.env_id, self.logger = agent, env_id, logger
        if listeners is None:
            listeners = CallbackList([StopOnReward(stop_reward)] if stop_reward is not None else [])
        self.listeners = listeners
        self.stopped_by: str | None = None  # the listener that stopped the run, if one did
        self.every, self.episodes, self.seed, self.stop_reward = every, episodes, seed, stop_reward
        self.confirm_episodes, self.confirm_margin_se = confirm_episodes, confirm_margin_se
        self.protocol, self.epsilon = protocol, epsilon
        self.video_every, self.video_dir = video_every, video_dir
        self.next_video = video_every
        self.best_dir = best_dir  # the policy of the best evaluation so far is saved here
        self.next_eval = every
        self.history: list[dict[str, float]] = []
        self.solved_at: dict[str, float] | None = None
        self._start = time.perf_counter()
        self._eval_seconds = 0.0
        # Training and evaluation seconds of the processes before a resume, up to the
        # checkpoint this one continues from (what ``restore`` reads).
        self.earlier_train_seconds = self.earlier_eval_seconds = 0.0

    def play(
        self, purpose: str, env_steps: int, episodes: int, record: list | None = None
    ) -> np.ndarray:
        """Play ``episodes`` greedy episodes from this evaluation's fresh seeds."""
        from rlkit.evaluate import evaluation_seeds, play_episodes

        t0 = time.perf_counter()
        returns = play_episodes(
            lambda o: self.agent.act(o, explore=False),
            self.env_id,
            episodes,
            evaluation_seeds(self.seed, purpose, env_steps, episodes),
            protocol=self.protocol,
            epsilon=self.epsilon,
            record=record,
        )
        self._eval_seconds += time.perf_counter() - t0
        return returns

    @property
    def eval_seconds(self) -> float:
        """Seconds spent evaluating (and recording) so far in this process."""
        return self._eval_seconds

    def record(self, env_steps: int) -> Path:
        """Play one episode with the current policy and save it as a GIF."""
        from rlkit.evaluate import save_video

        frames: list[np.ndarray] = []
        self.play("video", env_steps, 1, record=frames)
        return save_video(frames, self.video_dir / f"step_{env_steps:09d}.gif")  # type: ignore[operator]

    def train_seconds(self) -> float:
        """Wall seconds of training so far, evaluations excluded, earlier processes included."""
        own = time.perf_counter() - self._start - self._eval_seconds
        return self.earlier_train_seconds + own

    def state(self) -> dict[str, Any]:
        """What a resumed run needs to evaluate on the same schedule (JSON-able)."""
        return {
            "next_eval": self.next_eval,
            "next_video": self.next_video,
            "history": self.history,
            "solved_at": self.solved_at,
            "train_seconds": self.train_seconds(),
            "eval_seconds": self.earlier_eval_seconds + self._eval_seconds,
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from ``state()``: its schedule, history and seconds so far."""
        self.next_eval, self.history = state["next_eval"], state["history"]
        # Checkpoints from before next_video was saved record a GIF at the first step.
        self.next_video = state.get("next_video", self.next_video)
        self.solved_at = state["solved_at"]
        # Checkpoints from before these were saved count from the resume, as they did.
        self.earlier_train_seconds = float(state.get("train_seconds", 0.0))
        self.earlier_eval_seconds = float(state.get("eval_seconds", 0.0))
        self._start, self._eval_seconds = time.perf_counter(), 0.0

    def on_step(self, env_steps: int) -> bool:
        """Evaluate (and record a GIF) if due; return False to stop training."""
        if self.video_every > 0 and self.video_dir is not None and env_steps >= self.next_video:
            self.next_video = (env_steps // self.video_every + 1) * self.video_every
            self.record(env_steps)
        if self.every <= 0 or env_steps < self.next_eval:
            return True
        self.next_eval = (env_steps // self.every + 1) * self.every
        returns = self.play("periodic", env_steps, self.episodes)
        row = {
            "env_steps": env_steps,
            "train_seconds": self.train_seconds(),
            "mean_reward": float(np.mean(returns)),
            "std_reward": float(np.std(returns)),
            "episodes": len(returns),
        }
        metrics = {"eval/mean_reward": row["mean_reward"], "eval/std_reward": row["std_reward"]}
        solved = self.stop_reward is not None and row["mean_reward"] >= self.stop_reward
        if solved:
            confirm = self.play("confirm", env_steps, self.confirm_episodes)
            row["confirm_mean_reward"] = float(np.mean(confirm))
            row["confirm_std_reward"] = float(np.std(confirm))
            row["confirm_episodes"] = len(confirm)
            metrics["eval/confirm_mean_reward"] = row["confirm_mean_reward"]
            if self.confirm_margin_se > 0:  # the rows of runs without a margin stay as they were
                from rlkit.evaluate import confirmation_score

                row["confirm_score"] = confirmation_score(confirm, self.confirm_margin_se)
            solved = confirmed(row, self.stop_reward)
        self.history.append(row)
        self.save_if_best(row)
        self.logger.write(metrics, env_steps)
        self.logger.dump(env_steps, echo=False)  # one progress row per evaluation, unaveraged
        if solved:
            self.solved_at = row
        go_on = self.listeners.on_evaluation(env_steps, row)
        if not go_on:
            self.stopped_by = self.listeners.stopped_by
        self.logger.note(
            describe_evaluation(row, self.stop_reward, stops=not go_on),
            env_steps,
            short=f"{row['mean_reward']:.1f}",
        )
        return go_on

    def save_if_best(self, row: dict[str, float]) -> None:
        """Save the policy as ``best_dir`` when this evaluation's mean beats every earlier one."""
        best = max((r["mean_reward"] for r in self.history[:-1]), default=-np.inf)
        if self.best_dir is not None and row["mean_reward"] > best:
            from rlkit.policy_io import save_policy

            save_policy(
                self.best_dir,
                self.agent.policy_network(),
                agent=self.agent.name,
                env_id=self.env_id,
                protocol=self.protocol,
                action_dist=getattr(self.agent, "dist", None),
            )


def describe_evaluation(row: dict[str, float], stop_reward: float | None, stops: bool) -> str:
    """One line on a periodic evaluation (and its confirmation, if it had one)."""
    text = (
        f"evaluation at {int(row['env_steps']):,} steps: mean {row['mean_reward']:.1f} "
        f"± {row['std_reward']:.1f} over {int(row['episodes'])} fresh episodes"
    )
    if "confirm_mean_reward" in row:
        margin = f", {row['confirm_score']:.1f} less the margin" if "confirm_score" in row else ""
        text += (
            f"; reached {stop_reward:g}, confirmation on {int(row['confirm_episodes'])} more: "
            f"mean {row['confirm_mean_reward']:.1f}{margin} "
            + ("(confirmed" if confirmed(row, stop_reward) else "(not confirmed")
            + (": training stops)" if stops else ": training goes on)")
        )
    elif stops:
        text += "; a callback stops training"
    return text


def confirmed(row: Mapping[str, Any], stop_reward: float | None) -> bool:
    """Whether an evaluation row's confirmation reaches ``stop_reward``.

    Its ``confirm_score`` when the run has a margin (``confirm_margin_se``), else its mean.
    """
    if stop_reward is None or "confirm_mean_reward" not in row:
        return False
    return stop_score(row) >= stop_reward


def describe_stop(solved_at: dict[str, float], stop_reward: float | None) -> str:
    """Which evaluation stopped the run, for the summary."""
    return (
        f"stopped by the evaluation at {int(solved_at['env_steps']):,} steps: mean "
        f"{solved_at['mean_reward']:.1f} over {int(solved_at['episodes'])} episodes, confirmed "
        f"by {solved_at['confirm_mean_reward']:.1f} over {int(solved_at['confirm_episodes'])} "
        f"more (stop_reward {stop_reward:g})"
    )


def tf_global_generator_state() -> list[int]:
    """TF's global random generator state, as JSON-able integers."""
    import tensorflow as tf

    try:
        return [int(x) for x in tf.random.get_global_generator().state.numpy()]
    except RuntimeError:  # op determinism on and no seeded global generator: none to save
        return []


def set_tf_global_generator_state(values: list[int]) -> None:
    """Restore what ``tf_global_generator_state`` returned."""
    import tensorflow as tf

    if values:
        tf.random.get_global_generator().state.assign(np.asarray(values, np.int64))


class RunSaver:
    """Saves a whole run into checkpoints, and restores it, so that it continues exactly.

    The run-level side of checkpointing: it gathers the run's parts and hands them to a
    ``rlkit.checkpoint.Checkpointer``, which owns the files (atomic write, manifest,
    fallback to the previous checkpoint). The loops call it when it is ``due``. Saved:
    agent variables (networks, optimizer, counters), the agent's and the replay buffer's
    RNG states, the replay arrays, the runner's counters, the loop's next update, the
    logger's episode window and the evaluation schedule.
    """

    def __init__(
        self,
        checkpointer: Any,
        agent: Agent,
        runner: Any,
        logger: Logger,
        evaluator: PeriodicEvaluator,
        buffer: Any = None,
    ) -> None:
        self.checkpointer, self.agent, self.runner = checkpointer, agent, runner
        self.logger, self.evaluator, self.buffer = logger, evaluator, buffer
        self.last_step: int | None = None  # env steps of the newest checkpoint, saved or loaded
        self.last_path: Any = None  # and its folder
        self.last_megabytes = self.last_seconds = 0.0  # size and write time of the newest saved

    def due(self, env_steps: int) -> bool:
        """Whether a periodic checkpoint is due."""
        return self.checkpointer.due(env_steps)

    def __call__(self, env_steps: int, loop_state: dict[str, Any], final: bool = False) -> Any:
        """Save a checkpoint at ``env_steps``; return its folder.

        A periodic checkpoint that cannot be written (a full disk) is reported and the run
        goes on, since the next one may succeed; a ``final`` one raises
        ``CheckpointWriteError``. Either way the previous checkpoint is intact.
        """
        state: dict[str, Any] = {
            "loop": loop_state,
            "runner": {"env_steps": self.runner.env_steps, "episodes": self.runner.episodes},
            "logger": self.logger.state(),
            "evaluator": self.evaluator.state(),
        }
        rng = getattr(self.agent, "rng", None)
        if rng is not None:
            state["agent_rng"] = rng.bit_generator.state
        # Global generators: rlkit draws nothing from them during training, but user code
        # (wrappers, callbacks) may; TF's global generator state is a tensor.
        version, internal, gauss = random.getstate()
        np_state = np.random.get_state()
        state["python_random"] = [version, list(internal), gauss]
        state["numpy_global"] = [np_state[0], np_state[1].tolist(), *np_state[2:]]
        state["tf_global"] = tf_global_generator_state()
        arrays: dict[str, np.ndarray] = {}
        if self.buffer is not None:
            # Only the rows written so far: a buffer 6 % full writes 6 % of its ring. Its
            # arrays go to the array file (named without their "array/" prefix), the rest
            # (counters, generator state, prioritized replay's scalars) to state.json.
            replay = self.buffer.state()
            names = {
                k: k.removeprefix("array/") for k, v in replay.items() if isinstance(v, np.ndarray)
            }
            arrays = {name: replay[k] for k, name in names.items()}
            state["replay"] = {k: v for k, v in replay.items() if k not in names}
            state["replay"]["array_keys"] = {name: k for k, name in names.items()}
        start = time.perf_counter()
        try:
            path = self.checkpointer.save(env_steps, self.agent, state, arrays)
        except CheckpointWriteError as error:
            if final:
                raise
            log.warning("%s; training goes on and tries again at the next checkpoint", error)
            self.logger.write({"time/failed_checkpoints": 1.0}, env_steps)
            return None
        seconds = time.perf_counter() - start
        megabytes = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6
        self.last_step, self.last_path = env_steps, path
        self.last_megabytes, self.last_seconds = megabytes, seconds
        line = f"checkpoint {path}: {megabytes:,.1f} MB written in {seconds:.2f} s"
        log.info(line)
        if final:
            # The progress rows are written by now (a metric here would add a row of its
            # own at the same step): say it on the console instead.
            if self.logger.verbose:
                print(line, flush=True)
        else:  # lands in the next progress row (CSV and TensorBoard)
            metrics = {"time/checkpoint_mb": megabytes, "time/checkpoint_s": seconds}
            self.logger.write(metrics, env_steps)
        return path

    def describe_last(self) -> str:
        """Where the newest good checkpoint is, and how to continue from it."""
        if self.last_path is None:
            existing = self.checkpointer.checkpoints()
            if not existing:
                return "no checkpoint was written (set checkpoint_every to write them)"
            self.last_path = existing[-1]
        run_dir = self.last_path.parent.parent
        return (
            f"the last good checkpoint is {self.last_path} "
            f"(continue with: python -m rlkit.train --resume {run_dir})"
        )

    def restore(self) -> dict[str, Any]:
        """Load the newest good checkpoint into every part; return the loop's state."""
        path, state, arrays = self.checkpointer.load_latest()
        self.checkpointer.restore_agent(path, self.agent)
        if "agent_rng" in state:
            self.agent.rng.bit_generator.state = state["agent_rng"]
        if "python_random" in state:
            version, internal, gauss = state["python_random"]
            random.setstate((version, tuple(internal), gauss))
            name, keys, *rest = state["numpy_global"]
            np.random.set_state((name, np.asarray(keys, np.uint32), *rest))
            set_tf_global_generator_state(state["tf_global"])
        self.last_path = path
        self.runner.env_steps = self.last_step = state["runner"]["env_steps"]
        self.runner.episodes = state["runner"]["episodes"]
        self.logger.restore(state["logger"])
        self.evaluator.restore(state["evaluator"])
        self.checkpointer.schedule_after(self.runner.env_steps)
        if self.buffer is not None:
            replay = dict(state["replay"])
            keys = replay.pop("array_keys", None)
            if keys is None:  # a checkpoint from before array_keys: the uniform buffer's
                special = ("last_valid", "last_next")
                keys = {k: k if k in special else f"array/{k}" for k in arrays}
            replay.update({key: arrays[name] for name, key in keys.items()})
            replay.setdefault("last_next", None)
            self.buffer.restore(replay)
        return state["loop"]


def env_wrappers(run: RunConfig) -> list[Any]:
    """Picklable wrappers the run puts around each training env (``reward_noise``)."""
    import functools

    from rlkit.envs import RewardNoise

    if run.reward_noise is None:
        return []
    mean, std = run.reward_noise
    return [functools.partial(RewardNoise, mean=mean, std=std)]


def run_env_source(env: EnvLike, run: RunConfig) -> EnvSource:
    """``env`` with the run's ``env_kwargs`` and ``flatten_dict_obs``."""
    return EnvSource.of(env, run.env_kwargs, run.flatten_dict_obs)


def env_factory(env: EnvLike, run: RunConfig, protocol: Any = None) -> Callable[[int], Any]:
    """A picklable ``num_envs -> vector env`` with the run's vectorization and wrappers.

    Ray workers call it with their own number of envs; ``make_run_envs`` with
    ``run.num_envs``. The envs are made with ``run.env_kwargs`` (and ``flatten_dict_obs``).
    """
    import functools

    from rlkit.envs import make_vector_env

    return functools.partial(
        make_vector_env,
        run_env_source(env, run),
        vectorization=run.vectorization,
        protocol=protocol,
        wrappers=env_wrappers(run),
    )


def make_run_envs(env: EnvLike, run: RunConfig, protocol: Any = None) -> Any:
    """The run's vector env: ``run.num_envs`` copies, ``run.vectorization``, NEXT_STEP.

    With ``run.reward_noise`` each copy is wrapped in ``RewardNoise`` (evaluations, which
    build their own env from the id, keep the env's rewards).
    """
    return env_factory(env, run, protocol)(run.num_envs)


def make_runner(
    agent: Agent,
    env: EnvLike,
    run: RunConfig,
    protocol: Any = None,
    envs: Any = None,
    rebuild_envs: Callable[[], Any] | None = None,
) -> Any:
    """The run's runner: a ``VectorRunner`` over ``envs``, or a ``RayRunner`` (``run.runner``).

    The local runner rebuilds its envs with ``rebuild_envs`` after a worker fault (by
    default with ``make_run_envs`` when ``envs`` is None). The Ray runner's workers each build
    ``run.num_envs`` envs of their own; ``envs``, if given, only served to read the spaces
    and is closed. An env instance (``EnvSource``) is the envs' first copy; rebuilds and Ray
    workers make theirs from its spec.
    """
    source = run_env_source(env, run)
    copies = source.copies()
    runner_kwargs = {
        "clip_rewards": bool(protocol and protocol.clip_rewards),
        "life_loss_terminal": bool(protocol and protocol.life_loss_terminal),
    }
    if run.runner == "ray":
        from rlkit.distributed.runner import RayRunner, default_chunk_steps

        if envs is not None:
            envs.close()
        if copies is None:
            raise ConfigError(source.copy_problem("runner ray"))
        num_envs = run.num_workers * run.num_envs
        return RayRunner(
            env_factory(copies, run, protocol),
            num_workers=run.num_workers,
            envs_per_worker=run.num_envs,
            chunk_steps=run.chunk_steps or default_chunk_steps(agent, num_envs),
            max_weight_lag=0 if agent.on_policy else run.max_weight_lag,
            max_restarts=run.max_env_restarts,
            seed=run.seed,
            address=run.ray_address,
            **runner_kwargs,
        )
    from rlkit.runner import VectorRunner

    if envs is None:
        envs = make_run_envs(source, run, protocol)
        if rebuild_envs is None and copies is not None:
            rebuild_envs = lambda: make_run_envs(copies, run, protocol)  # noqa: E731
    return VectorRunner(
        envs,
        rebuild_envs=rebuild_envs,
        max_restarts=run.max_env_restarts,
        step_timeout=run.env_step_timeout,
        **runner_kwargs,
    )


def learn(
    agent: Agent,
    env: EnvLike,
    run: RunConfig | None = None,
    *,
    run_dir: str | Path | None = None,
    verbose: int = 0,
    envs: Any = None,
    resume: bool = False,
    rebuild_envs: Callable[[], Any] | None = None,
    callbacks: Sequence[Callback] = (),
) -> TrainResult:
    """Train ``agent`` on ``env``: ``rlkit.loops.train`` on the storage the agent builds.

    Args:
        agent: an agent built for the env's spaces.
        env: a gymnasium id (``"CartPole-v1"``, or ``"my_pkg.envs:MyEnv-v0"``, which
            imports ``my_pkg.envs`` to register the id), a callable that returns an env
            (e.g. the env's class; called with ``run.env_kwargs``), or a ``gym.Env``
            instance: the one env of a ``num_envs=1`` ``sync`` run (evaluations, more envs
            and rebuilds are made from its ``spec``, so without one, as when it was not made
            by ``gym.make``, periodic evaluation is an error). An env rlkit has never seen
            goes through gymnasium's env checker first (``rlkit.envs.api_check``; skip it
            with ``run.skip_env_check``).
        run: steps, envs, vectorization, seed and periodic evaluation (``eval_every``,
            ``eval_episodes``, ``stop_reward``), the env's ``env_kwargs`` and
            ``flatten_dict_obs``; ``RunConfig()`` defaults if None.
        run_dir: where to write ``progress.csv`` and TensorBoard events (None: nowhere).
        verbose: 1 prints progress.
        envs: an already built vector env (NEXT_STEP autoreset); built from ``run`` if None.
            With ``run.runner == "ray"`` the workers build their own and ``envs`` is closed.
            Envs passed in are not run through the env checker (their maker's business).
        rebuild_envs: builds a new vector env like ``envs`` after a worker fault (crash,
            exception, hang); by default the run's own envs are rebuilt when ``envs`` is
            None, and a fault in envs you pass in without ``rebuild_envs`` stops the run.
        resume: continue from the newest good checkpoint in ``run_dir/checkpoints``.
            Training N steps, then resuming to N + M gives the same weights as N + M in
            one go when N is a multiple of ``run.checkpoint_every`` (see
            ``rlkit.loops.segment_seed``).
        callbacks: ``rlkit.callbacks.Callback`` objects called during training; any hook
            may stop it by returning False. ``run.stop_reward`` adds a ``StopOnReward``.

    Returns:
        A ``TrainResult``.

    Raises:
        EnvCheckError: if gymnasium's env checker finds a problem with a new env.
        ConfigError: for kwargs the env rejects, ``Dict`` observations without
            ``flatten_dict_obs``, or an env instance that cannot be copied where copies
            are needed.
        NumericalError: after ``run.max_bad_updates`` non-finite update steps in a row.
        EnvWorkerError: after more than ``run.max_env_restarts`` env faults.
        CheckpointWriteError: if the final checkpoint cannot be written.
        KeyboardInterrupt: on Ctrl-C or SIGTERM (inside ``interrupts.graceful()``), after
            writing a final checkpoint when ``run_dir`` is set.

    Example:
        >>> env = gym.make("CartPole-v1")
        >>> agent = DQN(env.observation_space, env.action_space, DQNConfig(), seed=0)
        >>> result = learn(agent, "CartPole-v1", RunConfig(total_steps=50_000))
        >>> result = learn(agent, MyEnv, RunConfig(env_kwargs={"size": 8}))  # a class of yours
    """
    from rlkit import loops
    from rlkit.envs.api_check import check_user_env

    run = run or RunConfig()
    source = run_env_source(env, run)
    if envs is None:
        check_user_env(source, skip=run.skip_env_check)
    if source.copies() is None and (run.eval_every or run.video_every):
        raise ConfigError(source.copy_problem("periodic evaluation (eval_every, video_every)"))
    protocol = env_protocol(source.id, run) if source.id is not None else None
    runner = make_runner(agent, source, run, protocol, envs, rebuild_envs)
    logger = Logger(run_dir, run.total_steps, run.log_interval, verbose)
    stop_rule = [StopOnReward(run.stop_reward)] if run.stop_reward is not None else []
    listeners = CallbackList([*stop_rule, *callbacks])
    evaluator = PeriodicEvaluator(
        agent,
        source.copies() or source,
        logger,
        protocol=protocol,
        epsilon=run.eval_epsilon,
        video_every=run.video_every,
        video_dir=Path(run_dir) / "videos" if run_dir is not None else None,
        best_dir=Path(run_dir) / "best_policy" if run_dir is not None else None,
        every=run.eval_every,
        episodes=run.eval_episodes,
        seed=run.seed,
        stop_reward=run.stop_reward,
        confirm_episodes=run.confirm_episodes,
        confirm_margin_se=run.confirm_margin_se,
        listeners=listeners,
    )
    every_step = CallbackList([evaluator, listeners])
    start = time.perf_counter()
    try:  # from here on, whatever fails, the envs (and their workers) are closed
        # The agent builds its own storage (replay or rollouts) for these envs.
        storage = agent.make_storage(
            runner.num_envs,
            runner.observation_space,
            runner.action_space,
            frame_stack=protocol.frame_stack if protocol else 1,
            padding="zero",  # Atari stacks are zero-padded in every vectorization
            seed=run.seed,
        )
        buffer = None if storage.transient else storage  # checkpoints save replay, not rollouts
        checkpoints = None
        if run_dir is not None:
            from rlkit.checkpoint import Checkpointer

            checkpointer = Checkpointer(run_dir, run.checkpoint_every, run.keep_checkpoints)
            checkpoints = RunSaver(checkpointer, agent, runner, logger, evaluator, buffer)
        loop_state: dict[str, Any] = {}
        if resume:
            if checkpoints is None:
                raise ValueError("resume=True needs the run_dir to resume from")
            loop_state = checkpoints.restore()
        listeners.on_training_start(agent, runner.env_steps)
        try:
            loops.train(
                agent,
                runner,
                storage,
                logger,
                run,
                callback=every_step,
                checkpoints=checkpoints,
                schedule=loop_state,
            )
        except KeyboardInterrupt:
            # Stopped at a step boundary (first Ctrl-C or SIGTERM): everything is
            # consistent, so keep it. A second signal skips this.
            if checkpoints is not None and interrupts.stopped_at_boundary():
                logger.dump_final(runner.env_steps)
                checkpoints(runner.env_steps, loop_state, final=True)
            raise
        except NumericalError as error:
            detail = checkpoints.describe_last() if checkpoints is not None else "no run_dir"
            message = f"{error}. Stopped at {runner.env_steps:,} env steps; {detail}"
            raise NumericalError(message) from None
        logger.dump_final(runner.env_steps)
        if checkpoints is not None and checkpoints.last_step != runner.env_steps:
            checkpoints(runner.env_steps, loop_state, final=True)
    finally:
        logger.close()
        runner.close()
    result = TrainResult(
        env_steps=runner.env_steps,
        seconds=time.perf_counter() - start,
        episodes=runner.episodes,
        mean_return=logger.mean_return,
        evaluations=evaluator.history,
        solved_at=evaluator.solved_at,
        env_restarts=runner.restarts,
        eval_seconds=evaluator.eval_seconds,
        earlier_train_seconds=evaluator.earlier_train_seconds,
        earlier_eval_seconds=evaluator.earlier_eval_seconds,
        stopped_by=every_step.stopped_by,
    )
    listeners.on_training_end(result)
    return result
