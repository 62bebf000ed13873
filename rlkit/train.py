"""Train an agent: ``python -m rlkit.train --agent a2c --env CartPole-v1``."""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlkit import interrupts, tracking
from rlkit.errors import RlkitError, TrainingFault

if TYPE_CHECKING:  # for the annotations only
    from rlkit.callbacks import Callback
    from rlkit.envs.source import EnvLike

EPILOG = """examples:
  python -m rlkit.train --agent a2c --env CartPole-v1
  python -m rlkit.train --agent dqn --env CartPole-v1 --seed 3 --set learning_rate=5e-4
  python -m rlkit.train --agent dqn --env CartPole-v1 --show-config
  python -m rlkit.train --agent a2c --env CartPole-v1 --runner ray --num-workers 4
  python -m rlkit.train --agent dqn --env my_package.envs:MyEnv-v0 --env-kwargs size=8

your own env: --env module:Id imports the module (which registers Id with gymnasium) in
this process and in every worker; run from the folder that holds the module, or put it on
PYTHONPATH. --env module:ClassName names a class (or function) that returns the env. A new
env goes through gymnasium's env checker before training (--skip-env-check to skip it).
"""


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of ``python -m rlkit.train``."""
    p = argparse.ArgumentParser(
        prog="python -m rlkit.train",
        description="Train an rlkit agent with its shipped preset for the env.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--agent", help="dqn, double_dqn, dueling_dqn, rainbow, reinforce, a2c, ppo")
    p.add_argument(
        "--env",
        help="gymnasium env id, e.g. CartPole-v1, or module:Id for an env your module registers",
    )
    p.add_argument(
        "--env-kwargs",
        nargs="+",
        action="extend",
        metavar="KEY=VALUE",
        help="keyword arguments of the env's constructor, values read as YAML (size=8 "
        "walls=[1,2]); saved in config.yaml and used by evaluation, resume and export",
    )
    p.add_argument(
        "--skip-env-check",
        action="store_const",
        const=True,
        help="do not run gymnasium's env checker on an env rlkit has never seen",
    )
    p.add_argument(
        "--flatten-dict-obs",
        action="store_const",
        const=True,
        help="flatten Dict observations into one array (gymnasium's FlattenObservation)",
    )
    p.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue a run from its newest good checkpoint (--total-steps may extend it)",
    )
    p.add_argument(
        "--checkpoint-every", type=int, metavar="N", help="env steps between checkpoints"
    )
    p.add_argument("--seed", type=int, metavar="N", help="seeds Python, numpy, TF and the envs")
    p.add_argument("--total-steps", type=float, metavar="N", help="env steps (e.g. 5e4)")
    p.add_argument("--num-envs", type=int, metavar="N", help="envs stepped in parallel")
    p.add_argument(
        "--vectorization",
        metavar="MODE",
        help="sync (one process), async (subprocesses), ale (Atari, C++ threads) or vector "
        "(the env's own vectorized implementation, e.g. CartPole's numpy one)",
    )
    p.add_argument(
        "--runner",
        metavar="KIND",
        help="local (envs on this machine) or ray (Ray actors; pip install 'rlkit[distributed]')",
    )
    p.add_argument(
        "--num-workers", type=int, metavar="N", help="ray runner: actors, each with --num-envs"
    )
    p.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="ray runner: cluster to join ('auto' finds a local `ray start`); default: start one",
    )
    p.add_argument(
        "--jit-compile",
        action="store_const",
        const=True,
        help="compile the update step with XLA (fastest for the DQN family's fused CartPole "
        "bursts on CPU; slower for CNNs on CPU)",
    )
    p.add_argument(
        "--mixed-precision",
        action="store_const",
        const=True,
        help="bfloat16 torso with float32 heads, losses and targets (AMX/AVX512-BF16 CPUs, GPUs)",
    )
    p.add_argument(
        "--eval-every", type=int, metavar="N", help="env steps between greedy evaluations"
    )
    p.add_argument(
        "--eval-episodes", type=int, metavar="N", help="episodes per periodic evaluation"
    )
    p.add_argument(
        "--final-eval-episodes",
        type=int,
        metavar="N",
        help="episodes of the final evaluation, on unused seeds (0: none; default 100)",
    )
    p.add_argument(
        "--stop-reward",
        type=float,
        metavar="R",
        help="stop once an evaluation and its confirmation on fresh episodes reach this mean",
    )
    p.add_argument("--config", metavar="FILE", help="YAML file of settings (beats the preset)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting (beats preset and --config), repeatable",
    )
    p.add_argument("--run-dir", metavar="DIR", help="run folder (default: runs/<agent>/<env>_<n>)")
    p.add_argument(
        "--video",
        action="store_true",
        help="record the final evaluation's first episode as a GIF in the run folder",
    )
    p.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="TensorFlow's threads, intra- and inter-op (default: one per core), for a "
        "machine shared with other jobs; resume with the same N for a bitwise-equal run",
    )
    p.add_argument("--show-config", action="store_true", help="print the settings and exit")
    p.add_argument("--quiet", action="store_true", help="print only the final summary")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    p.add_argument(
        "--check-numerics",
        action="store_true",
        help="debugging: stop at the first TF op that makes a NaN or Inf (slow)",
    )
    tracking.add_arguments(p)  # --track, --wandb-*
    return p


FLAG_KEYS = {
    "seed": "seed",
    "total_steps": "total_steps",
    "num_envs": "num_envs",
    "vectorization": "vectorization",
    "eval_every": "eval_every",
    "eval_episodes": "eval_episodes",
    "final_eval_episodes": "final_eval_episodes",
    "stop_reward": "stop_reward",
    "checkpoint_every": "checkpoint_every",
    "runner": "runner",
    "num_workers": "num_workers",
    "ray_address": "ray_address",
    "jit_compile": "jit_compile",
    "mixed_precision": "mixed_precision",
    "skip_env_check": "skip_env_check",
    "flatten_dict_obs": "flatten_dict_obs",
}


def next_run_dir(root: Path, agent: str, env_id: str) -> Path:
    """``root/<agent>/<env>_<n>`` with n one more than the highest existing.

    ``<env>`` is the id without a ``module:`` prefix, with ``/`` and other characters that
    do not belong in a folder name made ``-`` (``rlkit.envs.source.file_name``).
    """
    from rlkit.envs.source import file_name

    safe_env = file_name(env_id)
    parent = root / agent
    taken = [
        int(m.group(1))
        for d in (parent.iterdir() if parent.exists() else [])
        if (m := re.fullmatch(re.escape(safe_env) + r"_(\d+)", d.name))
    ]
    return parent / f"{safe_env}_{max(taken, default=0) + 1}"


def resume_from_run_dir(args: argparse.Namespace) -> None:
    """Fill ``args`` from the run folder's ``config.yaml`` for ``--resume``.

    Raises:
        RlkitError: if the folder is not a run, or ``--agent``/``--env`` name another one.
    """
    from rlkit.preset_files import read_yaml

    run_dir = Path(args.resume)
    if not (run_dir / "config.yaml").is_file() or not (run_dir / "checkpoints").is_dir():
        raise RlkitError(
            f"--resume {str(run_dir)!r} is not a run folder with checkpoints "
            "(expected config.yaml and checkpoints/ in it)"
        )
    saved = read_yaml(run_dir / "config.yaml")
    if args.env_kwargs:
        from rlkit.config import parse_overrides

        given = parse_overrides(args.env_kwargs, "--env-kwargs")
        if given != (saved.get("env_kwargs") or {}):
            raise RlkitError(
                f"--env-kwargs {given} do not match the run being resumed "
                f"({saved.get('env_kwargs') or {}}); drop --env-kwargs (a run keeps its env)"
            )
    for key in ("agent", "env"):
        given = getattr(args, key)
        if given is not None and given != saved.get(key):
            raise RlkitError(
                f"--{key} {given} does not match the run being resumed ({saved.get(key)}); "
                f"drop --{key} or pick another run folder"
            )
        setattr(args, key, saved.get(key))
    if args.config:
        raise RlkitError("--resume takes the run's own config.yaml; use --set to change it")
    args.config, args.run_dir = str(run_dir / "config.yaml"), str(run_dir)


def check_action_space_of(agent_cls: type, env: Any) -> None:
    """Raise ``IncompatibleEnvError`` if ``agent_cls`` cannot act in ``env``'s action space.

    ``env`` is an env id (made once with its defaults, then closed) or anything
    ``EnvSource`` takes; an env that cannot be made here says nothing (the run reports it
    later, with its own settings).
    """
    from rlkit.envs import EnvSource

    source = EnvSource.of(env)
    if source.instance is not None:  # the user's own env: read, never closed here
        agent_cls.check_action_space(source.instance.action_space)
        return
    try:
        probe = source.create()
    except Exception:  # noqa: BLE001 (the run proper reports what is wrong with the env)
        return
    try:
        agent_cls.check_action_space(probe.action_space)
    finally:
        probe.close()


def run(
    agent: str,
    env: EnvLike,
    *,
    total_steps: int | None = None,
    seed: int | None = None,
    overrides: dict[str, Any] | None = None,
    run_dir: str | Path | None = None,
    config: str | Path | None = None,
    verbose: bool = False,
    env_kwargs: dict[str, Any] | None = None,
    flatten_dict_obs: bool | None = None,
    skip_env_check: bool | None = None,
    callbacks: Sequence[Callback] = (),
) -> Path:
    """Train like the CLI does, from Python; return the run folder.

    Args:
        agent: registry name (``dqn``, ``a2c``, ...).
        env: a gymnasium id (``module:Id`` too), a callable that returns an env, or a
            ``gym.Env`` (see ``rlkit.experiment.learn``). A callable is saved in
            ``config.yaml`` as ``module:name``, which ``--resume`` and
            ``python -m rlkit.evaluate`` import back if it is defined at module level.
        total_steps: env steps (default: the preset's).
        seed: the run's seed.
        overrides: settings, as ``--set`` gives them.
        run_dir: the run folder (default ``runs/<agent>/<env>_<n>``).
        config: a YAML file of settings.
        verbose: print progress.
        env_kwargs: keyword arguments of the env's constructor (``--env-kwargs``).
        flatten_dict_obs: flatten ``Dict`` observations (``--flatten-dict-obs``).
        skip_env_check: skip gymnasium's env checker (``--skip-env-check``).
        callbacks: ``rlkit.callbacks.Callback`` objects called during training; any may
            stop it. The final evaluation and ``results.json`` follow as usual.

    Example:
        >>> run_dir = rlkit.train.run(agent="a2c", env="CartPole-v1", seed=1,
        ...                           overrides={"learning_rate": 1e-3})

    Raises:
        RlkitError: for bad input, as the CLI's exit code 2 (nothing is trained).
    """
    argv = ["--agent", agent]
    if not verbose:
        argv.append("--quiet")
    args = build_parser().parse_args(argv)
    args.env, args.flatten_dict_obs, args.skip_env_check = env, flatten_dict_obs, skip_env_check
    if env_kwargs is not None:
        overrides = {**(overrides or {}), "env_kwargs": env_kwargs}
    args.total_steps, args.seed = total_steps, seed
    args.run_dir = None if run_dir is None else str(run_dir)
    args.config = None if config is None else str(config)
    # JSON is valid YAML for numbers, booleans, null and lists: --set parses it back.
    args.set = [f"{k}={json.dumps(v)}" for k, v in (overrides or {}).items()]
    args.callbacks = list(callbacks)
    folder = _train(args)
    if folder is None:  # pragma: no cover - --show-config is not reachable from here
        raise RlkitError("nothing was trained")
    return folder


def _train(args: argparse.Namespace) -> Path | None:
    """Resolve settings, check them against the env, train, save and evaluate."""
    from rlkit import config as config_lib
    from rlkit.envs import EnvSource, check_env_id

    tracking.check_args(args)  # --wandb-* flags; with --track, wandb must import
    if args.resume:
        resume_from_run_dir(args)
    elif not (args.agent and args.env):
        raise RlkitError("give --agent and --env (or --resume RUN_DIR)")
    # args.env: an id from the command line; from run(), maybe a callable or an env.
    env_name = EnvSource.of(args.env).name
    if isinstance(args.env, str):
        check_env_id(args.env)  # fails fast (also a module that does not import), before TF
    threads = getattr(args, "threads", None)
    if threads is not None:
        if threads < 1:
            raise RlkitError(f"--threads must be at least 1, got {threads}")
        from rlkit.tf_setup import limit_threads

        try:
            limit_threads(threads)  # before TensorFlow runs an op
        except RuntimeError as e:  # TensorFlow already ran in this process
            raise RlkitError(f"--threads cannot be changed once TensorFlow has run ({e})") from e
    if not args.debug:
        from rlkit.tf_setup import import_tensorflow_quietly

        import_tensorflow_quietly()
    overrides = config_lib.parse_overrides(args.set)
    for flag, key in FLAG_KEYS.items():
        if getattr(args, flag) is not None:
            overrides[key] = getattr(args, flag)
    if args.env_kwargs:
        overrides["env_kwargs"] = config_lib.parse_overrides(args.env_kwargs, "--env-kwargs")

    from rlkit.agents import get_agent_class

    agent_cls = get_agent_class(args.agent)
    try:
        run_cfg, agent_cfg = config_lib.resolve(
            agent_cls, env_name, config_file=args.config, overrides=overrides
        )
    except RlkitError:
        # A setting out of range matters less than an agent that cannot act in the env
        # at all (DQN on Pendulum-v1 with a small --total-steps): say that first.
        check_action_space_of(agent_cls, args.env)
        raise
    resolved = config_lib.to_yaml(agent_cls.name, env_name, run_cfg, agent_cfg)
    if args.show_config:
        print(resolved, end="")
        return None

    run_dir = (
        Path(args.run_dir) if args.run_dir else next_run_dir(Path("runs"), args.agent, env_name)
    )
    if run_dir.exists() and not run_dir.is_dir():
        raise RlkitError(f"--run-dir {str(run_dir)!r} is a file; give a folder path")
    if not args.resume and (run_dir / "checkpoints").is_dir():
        raise RlkitError(
            f"{str(run_dir)!r} already holds a run with checkpoints; continue it with "
            f"--resume {run_dir} or train into another --run-dir"
        )

    from rlkit.agents.common import seed_everything
    from rlkit.envs.api_check import check_user_env
    from rlkit.envs.atari import env_protocol
    from rlkit.errors import ConfigError
    from rlkit.experiment import make_run_envs

    source = EnvSource.of(args.env, run_cfg.env_kwargs, run_cfg.flatten_dict_obs)
    # Evaluations (and a Ray runner's workers) make envs of their own: an env instance
    # lends its spec; one without a spec can only be the one training env.
    copies = source.copies()
    evaluates = run_cfg.final_eval_episodes or run_cfg.eval_every or run_cfg.video_every
    if copies is None and (evaluates or args.video or run_cfg.runner == "ray"):
        uses = "evaluation (final_eval_episodes, eval_every, video) or runner ray"
        raise ConfigError(source.copy_problem(uses))
    eval_source = copies or source
    check_user_env(source, skip=run_cfg.skip_env_check)  # a new env: gymnasium's checker
    if run_cfg.runner == "ray":
        from rlkit.distributed.runner import import_ray

        import_ray()  # a missing Ray install fails here, before anything is built
    seed_everything(run_cfg.seed, deterministic=run_cfg.deterministic)
    if args.check_numerics:  # before the agent traces its update
        import tensorflow as tf

        tf.debugging.enable_check_numerics()
    protocol = env_protocol(source.id, run_cfg) if source.id is not None else None
    # With the ray runner these envs only give the spaces (the workers make their own).
    local = run_cfg.runner == "local"
    envs = make_run_envs(source, run_cfg if local else replace(run_cfg, num_envs=1), protocol)
    try:
        agent = agent_cls(
            envs.single_observation_space, envs.single_action_space, agent_cfg, seed=run_cfg.seed
        )
        if args.resume:  # before the run's config.yaml is rewritten
            from rlkit.checkpoint import Checkpointer

            Checkpointer(run_dir).check_fits(agent)
        if run_cfg.final_eval_episodes or run_cfg.eval_every or run_cfg.video_every or args.video:
            from rlkit.evaluate import check_evaluation_env

            render = bool(args.video or run_cfg.video_every)
            check_evaluation_env(eval_source, protocol=protocol, render=render)
        if args.track:  # after every check: bad input makes no W&B run
            args.tracker = tracking.start_run(args, run_dir, resolved)
            args.callbacks = [*getattr(args, "callbacks", ()), args.tracker]
    except BaseException:
        envs.close()
        raise
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(resolved)
    verbose = 0 if args.quiet else 1
    if protocol is not None:
        from rlkit.envs.atari import format_card, protocol_card

        card = protocol_card(env_name, protocol, run_cfg.vectorization, run_cfg.seed)
        (run_dir / "protocol.json").write_text(json.dumps(card, indent=2) + "\n")
        print(f"Atari protocol card (also in {run_dir / 'protocol.json'}):\n{format_card(card)}")
    if verbose:
        workers = "" if local else f"{run_cfg.num_workers} Ray workers x "
        print(
            f"rlkit: training {agent_cls.__name__} on {env_name} for {run_cfg.total_steps:,} "
            f"env steps ({workers}{run_cfg.num_envs} {run_cfg.vectorization} env(s), seed "
            f"{run_cfg.seed}); run folder {run_dir}",
            flush=True,
        )
        if not args.resume and args.config is None:
            note = config_lib.default_section_note(agent_cls.name, env_name)
            if note:
                print(note, flush=True)
        if getattr(agent_cfg, "mixed_precision", False) is not False:
            from rlkit.precision import describe_precision

            torso = agent.policy_network().torso_name
            print(f"precision: {describe_precision(agent_cfg.mixed_precision, torso)}", flush=True)

    from rlkit.evaluate import evaluation_seeds, play_episodes, write_results
    from rlkit.experiment import describe_stop, learn
    from rlkit.policy_io import save_policy

    def save_final_policy() -> Path:
        return save_policy(
            run_dir / "policy",
            agent.policy_network(),
            agent=agent_cls.name,
            env_id=eval_source,
            protocol=protocol,
            action_dist=getattr(agent, "dist", None),
        )

    try:
        with interrupts.graceful():
            result = learn(
                agent,
                source,
                run_cfg,
                run_dir=run_dir,
                verbose=verbose,
                envs=envs,
                resume=bool(args.resume),
                rebuild_envs=(lambda: make_run_envs(copies, run_cfg, protocol)) if copies else None,
                callbacks=getattr(args, "callbacks", ()),
            )
    except KeyboardInterrupt:
        # Ctrl-C or SIGTERM: the workers are closed (learn's cleanup) and, stopped at a step
        # boundary, a final checkpoint written; keep the policy learned so far too.
        print(f"\ninterrupted: policy so far saved in {save_final_policy()}", flush=True)
        if interrupts.stopped_at_boundary():
            print(
                f"checkpoint written; continue with: python -m rlkit.train --resume {run_dir}",
                flush=True,
            )
        raise
    save_final_policy()
    summary = (
        f"trained {result.env_steps:,} env steps in {result.seconds:.1f} s "
        f"({result.env_steps / max(result.seconds, 1e-9):,.0f} steps/s), "
        f"{result.episodes:,} episodes"
    )
    extra: dict[str, Any] = {
        "agent": agent_cls.name,
        "seed": run_cfg.seed,
        "eval_epsilon": run_cfg.eval_epsilon,
        "train_env_steps": result.env_steps,
        # The whole run's, earlier processes of a resumed one included; periodic
        # evaluations excluded.
        "train_seconds": result.train_seconds,
        "eval_seconds": result.earlier_eval_seconds + result.eval_seconds,
    }
    if result.stopped_by:
        extra["stopped_by"] = result.stopped_by
    if result.solved_at:
        extra["solved_at"] = result.solved_at
        summary += f"; {describe_stop(result.solved_at, run_cfg.stop_reward)}"
    elif result.stopped_by:
        summary += f"; stopped by {result.stopped_by} at {result.env_steps:,} env steps"
    if run_cfg.final_eval_episodes:
        t0 = time.perf_counter()
        frames: list | None = [] if args.video else None
        seeds = evaluation_seeds(
            run_cfg.seed, "final", result.env_steps, run_cfg.final_eval_episodes
        )
        # Consecutive integers: `python -m rlkit.evaluate --seed FIRST` replays them.
        extra["first_eval_seed"] = seeds[0]
        returns = play_episodes(
            lambda o: agent.act(o, explore=False),
            eval_source,
            run_cfg.final_eval_episodes,
            seed=seeds,
            protocol=protocol,
            epsilon=run_cfg.eval_epsilon,
            record=frames,
        )
        if frames:
            from rlkit.evaluate import save_video

            extra["video"] = str(save_video(frames, run_dir / "final_episode.gif"))
        res = write_results(
            run_dir / "results.json",
            returns,
            env_id=env_name,
            deterministic=run_cfg.eval_epsilon == 0,
            **extra,
        )
        print(summary)
        print(
            f"final evaluation: mean reward {res['mean_reward']:.2f} ± {res['std_reward']:.2f} "
            f"over {res['n_eval_episodes']} episodes on seeds the run never used "
            f"({'greedy' if not run_cfg.eval_epsilon else f'epsilon {run_cfg.eval_epsilon:g}'}, "
            f"{time.perf_counter() - t0:.1f} s)"
        )
    else:
        print(summary)
    print(
        f"run folder: {run_dir}  (policy in {run_dir / 'policy'}, "
        f"progress in progress.csv, TensorBoard: tensorboard --logdir {run_dir})"
    )
    return run_dir


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: exit code 0 on success, 2 on bad input, 1 when a run stops on a fault.

    Errors print one message (no traceback unless ``--debug``); Ctrl-C or SIGTERM exits
    with 128 + the signal number after a final checkpoint.
    """
    args = build_parser().parse_args(argv)
    try:
        tracking.run_and_finish(_train, args)  # with --track, the W&B run ends here
        return 0
    except RlkitError as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except TrainingFault as e:
        if args.debug:
            raise
        print(f"error: the run stopped: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 128 + (interrupts.requested_signal() or signal.SIGINT)


if __name__ == "__main__":
    sys.exit(main())
