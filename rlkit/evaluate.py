"""Evaluate a policy: ``python -m rlkit.evaluate --run DIR`` plays greedy episodes."""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rlkit.checkpoint import is_checkpoint
from rlkit.errors import RlkitError

if TYPE_CHECKING:  # for the annotations only
    from rlkit.envs.source import EnvLike, EnvSource

# What an evaluation is for: part of the seed, so that no two purposes share an episode.
EVAL_PURPOSES = {"periodic": 1, "confirm": 2, "final": 3, "video": 4}
_STEP_BITS, _EPISODE_BITS = 40, 20


def evaluation_seeds(run_seed: int, purpose: str, env_steps: int, episodes: int) -> list[int]:
    """Episode seeds of one evaluation during a run: fresh, reproducible, never reused.

    The seed of episode i packs (run seed, purpose, env step, i) into one integer, so two
    evaluations of a run never replay a start state: periodic evaluations differ by step,
    the confirmation before a stop and the final evaluation by purpose. All are >= 2**100,
    above the seeds the training envs get (the run seed plus the env index), so the final
    evaluation plays start states the run never trained or evaluated on. A resumed run
    computes the same seeds.

    Args:
        run_seed: the run's ``seed``.
        purpose: a key of ``EVAL_PURPOSES``.
        env_steps: env steps trained when the evaluation starts.
        episodes: number of episodes.

    Raises:
        ValueError: for an unknown purpose, or a step or episode count out of range.
    """
    if purpose not in EVAL_PURPOSES:
        raise ValueError(f"purpose must be one of {sorted(EVAL_PURPOSES)}, got {purpose!r}")
    if not 0 <= run_seed < 2**32:
        raise ValueError(f"run_seed must be in [0, 2**32), got {run_seed}")
    if not 0 <= env_steps < 2**_STEP_BITS or not 0 <= episodes <= 2**_EPISODE_BITS:
        raise ValueError(f"env_steps {env_steps} or episodes {episodes} out of range")
    head = ((1 << 8 | EVAL_PURPOSES[purpose]) << 32 | run_seed) << _STEP_BITS | env_steps
    return [head << _EPISODE_BITS | i for i in range(episodes)]


def confirmation_score(returns: Sequence[float], margin_se: float = 0.0) -> float:
    """The score a confirmation is judged by: its mean, less ``margin_se`` standard errors.

    A run stops when this reaches ``stop_reward`` (after a periodic evaluation did). With a
    margin of 0 it is the plain mean; with ``m`` it is ``mean - m * std / sqrt(n)``
    (population std of the ``n`` returns), so a policy whose true mean sits just at the
    threshold seldom passes, and the stop holds on the episodes that come after it.

    Example:
        >>> confirmation_score([500.0, 450.0, 500.0, 450.0], margin_se=2.0)
        450.0
    """
    values = np.asarray(returns, np.float64)
    mean = float(np.mean(values))
    if margin_se <= 0:
        return mean
    return mean - float(margin_se) * float(np.std(values)) / float(np.sqrt(len(values)))


def play_episodes(
    policy: Callable[[np.ndarray], np.ndarray],
    env: EnvLike,
    episodes: int = 10,
    seed: int | Sequence[int] = 0,
    check: Callable[[Any], None] | None = None,
    *,
    protocol: Any = None,
    epsilon: float = 0.0,
    record: list[np.ndarray] | None = None,
    max_frames: int | None = None,
) -> np.ndarray:
    """Play ``episodes`` full episodes on a fresh env and return their returns.

    Episode i is reset with seed ``seed + i`` (or ``seed[i]``), so results are reproducible
    and do not favour short episodes as a vector env would. Returns are the env's own
    rewards: for Atari, the full game's unclipped score over all lives.

    Args:
        policy: maps observations ``[1, ...]`` to actions ``[1]``.
        env: a gymnasium id, a callable that returns an env, or an
            ``rlkit.envs.EnvSource`` (with its ``env_kwargs`` and ``flatten_dict_obs``):
            whatever ``rlkit.envs.make_env`` takes.
        episodes: number of episodes.
        seed: seed of the first episode, or one seed per episode (``evaluation_seeds``).
        check: called with the env before any step (e.g. to check its spaces).
        protocol: the Atari protocol the policy was trained with (Atari ids only).
        epsilon: probability of a uniformly random action (0.05 is usual on Atari, where a
            fully greedy policy can stall a game).
        record: if given, the first episode's rendered RGB frames are appended to it.
        max_frames: record at most this many frames (the episode still plays to its end).
    """
    import gymnasium as gym

    from rlkit.envs import EnvSource, make_env

    source = EnvSource.of(env)
    try:
        env = make_env(
            source, render_mode="rgb_array" if record is not None else None, protocol=protocol
        )
    except gym.error.DependencyNotInstalled as e:
        raise RlkitError(f"rendering {source.name} needs more packages: {e}") from None
    seeds = [seed + i for i in range(episodes)] if isinstance(seed, int) else list(seed)
    if len(seeds) != episodes:
        raise ValueError(f"{episodes} episodes need {episodes} seeds, got {len(seeds)}")
    try:
        if check is not None:
            check(env)
        returns, _ = _play(
            env, policy, seeds, epsilon=epsilon, record=record, max_frames=max_frames
        )
    finally:
        env.close()
    return returns


def _play(
    env: Any,
    policy: Callable[[np.ndarray], np.ndarray],
    seeds: Sequence[int | None],
    *,
    epsilon: float = 0.0,
    record: list[np.ndarray] | None = None,
    max_frames: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Play one episode per seed on ``env``; return their returns and lengths.

    The first episode's rendered frames go to ``record`` (``max_frames`` at most).
    """
    from rlkit.distributions import clip_to_space

    first = seeds[0] if seeds else None
    rng = np.random.default_rng(first if first is not None else 0)
    returns, lengths = np.zeros(len(seeds)), np.zeros(len(seeds), np.int64)
    env.action_space.seed(first if first is not None else 0)
    for i, episode_seed in enumerate(seeds):
        obs, _ = env.reset(seed=episode_seed)
        done = False
        while not done:
            recording = record is not None and i == 0
            if recording and (max_frames is None or len(record) < max_frames):
                record.append(np.asarray(env.render()))
            if epsilon > 0 and rng.random() < epsilon:
                action = env.action_space.sample()
            else:
                action = policy(np.asarray(obs)[None])[0]
            obs, reward, terminated, truncated, _ = env.step(
                clip_to_space(env.action_space, action)
            )
            returns[i] += float(reward)
            lengths[i] += 1
            done = terminated or truncated
    return returns, lengths


def evaluate_policy(
    model: Any,
    env: Any,
    n_eval_episodes: int = 10,
    deterministic: bool = True,
    return_episode_rewards: bool = False,
    *,
    seed: int | None = None,
) -> tuple[float, float] | tuple[list[float], list[int]]:
    """Play ``n_eval_episodes`` episodes with ``model`` on ``env``: Stable-Baselines3's API.

    Args:
        model: an rlkit agent, a loaded policy (``rlkit.policy_io.load_policy``), anything
            with SB3's ``predict(obs, deterministic=...)``, or a function from a batch of
            observations to a batch of actions (always deterministic).
        env: a gymnasium env id, or a gymnasium env (one env, not a vector env; left open).
        n_eval_episodes: episodes to play.
        deterministic: greedy actions (the mode) if True; the agent's exploration (epsilon-
            greedy, or sampling from the policy) if False.
        return_episode_rewards: return every episode's return and length instead of the
            mean and standard deviation of the returns.
        seed: seed of the first episode (episode i gets ``seed + i``); None: the env's own
            randomness.

    Returns:
        ``(mean_reward, std_reward)``, or ``(episode_rewards, episode_lengths)``.

    Raises:
        ValueError: for ``n_eval_episodes < 1``, a vector env, or a model of another kind.

    Example:
        >>> mean, std = evaluate_policy(agent, "CartPole-v1", n_eval_episodes=10)
    """
    import gymnasium as gym

    from rlkit.envs import make_env

    if n_eval_episodes < 1:
        raise ValueError(f"n_eval_episodes must be >= 1, got {n_eval_episodes}")
    if isinstance(env, gym.vector.VectorEnv):
        raise ValueError("evaluate_policy plays one env: give an env id or a gymnasium.Env")
    if hasattr(model, "predict"):

        def policy(obs: np.ndarray) -> np.ndarray:
            return model.predict(obs, deterministic=deterministic)[0]

    elif callable(model):
        policy = model
    else:
        raise ValueError(f"model must be an agent, a policy or a function, got {model!r}")
    own = isinstance(env, str)
    if own:
        protocol = model.protocol() if hasattr(model, "protocol") else None
        if isinstance(getattr(model, "meta", None), dict):  # a loaded policy: its env kwargs
            env = evaluation_env(model.meta, env)
        env = make_env(env, protocol=protocol)
    seeds = [None if seed is None else seed + i for i in range(n_eval_episodes)]
    try:
        returns, lengths = _play(env, policy, seeds)
    finally:
        if own:
            env.close()
    if return_episode_rewards:
        return [float(r) for r in returns], [int(n) for n in lengths]
    return float(np.mean(returns)), float(np.std(returns))


def check_evaluation_env(env_id: EnvLike, *, protocol: Any = None, render: bool = False) -> None:
    """Build, reset (and render) the env evaluations will use, before any training.

    ``env_id``: whatever ``rlkit.envs.make_env`` takes (an ``EnvSource`` with kwargs, say).

    Raises:
        RlkitError: naming the env and what failed (a missing renderer, say), so that a
            run fails in a second instead of at its first evaluation.
    """
    import gymnasium as gym

    from rlkit.envs import EnvSource, make_env

    name = EnvSource.of(env_id).name
    try:
        env = make_env(env_id, render_mode="rgb_array" if render else None, protocol=protocol)
        try:
            env.reset(seed=0)
            if render:
                env.render()
        finally:
            env.close()
    except RlkitError:
        raise
    except gym.error.DependencyNotInstalled as e:
        raise RlkitError(f"the evaluation env {name} needs more packages: {e}") from None
    except Exception as e:  # whatever the env raises, reported before training starts
        message = f"cannot build the evaluation env {name}: {type(e).__name__}: {e}"
        raise RlkitError(message) from None


def save_video(frames: list[np.ndarray], path: Path, fps: int = 30) -> Path:
    """Write RGB frames as an animated GIF (or MP4 if ``path`` ends in .mp4 and ffmpeg exists).

    Raises:
        RlkitError: if imageio is not installed (``pip install 'rlkit[video]'``).
    """
    try:
        import imageio.v2 as imageio
    except ImportError:
        raise RlkitError("recording video needs imageio: pip install 'rlkit[video]'") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gif":
        imageio.mimsave(path, frames, duration=1000 / fps, loop=0)
    else:
        imageio.mimsave(path, frames, fps=fps)
    return path


def write_results(
    path: Path, returns: np.ndarray, *, env_id: str, deterministic: bool, **extra: object
) -> dict:
    """Write ``results.json``: mean, std and the per-episode returns, plus ``extra``.

    The first six keys are those the Hugging Face Hub's RL model cards (and rl-zoo3's
    ``push_to_hub``) read: ``env_id``, ``mean_reward``, ``std_reward``, ``n_eval_episodes``,
    ``is_deterministic`` and ``eval_datetime`` (ISO 8601, local time).
    """
    results = {
        "env_id": env_id,
        "mean_reward": float(np.mean(returns)) if len(returns) else float("nan"),
        "std_reward": float(np.std(returns)) if len(returns) else float("nan"),
        "n_eval_episodes": len(returns),
        "is_deterministic": deterministic,
        "eval_datetime": datetime.datetime.now().isoformat(timespec="seconds"),
        "returns": [float(r) for r in returns],
        **extra,
    }
    path.write_text(json.dumps(results, indent=2) + "\n")
    return results


def evaluation_env(
    meta: dict[str, Any],
    env: str | None = None,
    env_kwargs: list[str] | None = None,
    *,
    folder: str | Path | None = None,
) -> EnvSource:
    """The env a saved policy is evaluated on: its own (``policy.json``), or ``env``.

    The policy's ``env_kwargs`` go with its own env (``env_kwargs``, ``key=value``
    strings, replace them); its ``flatten_dict_obs`` with any env, since its network takes
    flat observations.

    Raises:
        RlkitError: if the policy's own env is ``module:Id`` and that module would be
            imported from the policy's ``folder`` itself: a policy folder (a download, say)
            is data, and nothing in it is run.
    """
    from rlkit.config import parse_overrides
    from rlkit.envs import EnvSource

    own = env is None or env == meta["env"]
    if own and folder is not None:
        _refuse_module_inside(meta["env"], Path(folder))
    kwargs = dict(meta.get("env_kwargs") or {}) if own else {}
    if env_kwargs:
        kwargs = parse_overrides(env_kwargs, "--env-kwargs")
    flatten = bool(meta.get("flatten_dict_obs", False))
    return EnvSource(env or meta["env"], kwargs, flatten)


def _refuse_module_inside(env_id: str, folder: Path) -> None:
    """Raise if ``env_id``'s module (``module:Id``) would be imported from ``folder``."""
    import importlib.util

    from rlkit.envs.source import split_env_id

    module, _ = split_env_id(env_id)
    if module is None:
        return
    top = module.partition(".")[0]
    try:  # a top-level name: finding it imports nothing
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return  # not importable: make_env says so with the fix
    if spec is None:
        return
    places = [spec.origin] if spec.origin else []
    places += list(spec.submodule_search_locations or [])
    root = folder.resolve()
    for place in places:
        path = Path(place).resolve()
        if path == root or root in path.parents:
            raise RlkitError(
                f"the policy's env {env_id!r} would import module {top!r} from {path}, inside "
                f"the policy folder {folder}: rlkit runs no code from a policy folder. Install "
                "the env's package elsewhere (or run from another directory), or give --env"
            )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m rlkit.evaluate``."""
    parser = argparse.ArgumentParser(
        prog="python -m rlkit.evaluate", description="Play greedy episodes with a saved policy."
    )
    parser.add_argument(
        "--run", required=True, help="run folder, policy folder or checkpoint folder"
    )
    parser.add_argument("--episodes", type=int, default=10, help="episodes to play")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode")
    parser.add_argument(
        "--env",
        default=None,
        help="env id, module:Id for an env your module registers (default: the one trained on)",
    )
    parser.add_argument(
        "--env-kwargs",
        nargs="+",
        action="extend",
        metavar="KEY=VALUE",
        help="keyword arguments of the env's constructor (default: the ones trained with)",
    )
    parser.add_argument(
        "--epsilon",
        type=float,
        default=None,
        help="random-action rate (default: 0, or 0.05 for Atari)",
    )
    parser.add_argument(
        "--video",
        nargs="?",
        const="",
        default=None,
        metavar="DIR",
        help="record the first episode as a GIF into DIR (default: the run folder)",
    )
    parser.add_argument(
        "--stochastic",
        action="store_true",
        help="sample actions from the policy (ppo, a2c, reinforce) instead of the most likely",
    )
    parser.add_argument(
        "--best",
        action="store_true",
        help="load the best policy of the periodic evaluations (RUN/best_policy)",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    args = parser.parse_args(argv)
    if not args.debug:
        from rlkit.tf_setup import import_tensorflow_quietly

        import_tensorflow_quietly()
    try:
        if args.episodes < 1:
            raise RlkitError(f"--episodes must be >= 1, got {args.episodes}")
        from rlkit.envs.source import file_name
        from rlkit.policy_io import load_policy, load_policy_from_checkpoint

        if args.best and not (Path(args.run) / "best_policy" / "policy.json").exists():
            raise RlkitError(
                f"{args.run} has no best_policy/: it is saved by periodic evaluation "
                "during training (--eval-every N)"
            )
        if is_checkpoint(args.run):
            policy = load_policy_from_checkpoint(args.run)
        else:
            policy = load_policy(Path(args.run) / "best_policy" if args.best else args.run)
        source = evaluation_env(policy.meta, args.env, args.env_kwargs, folder=args.run)
        env_id = source.name
        protocol = policy.protocol()
        epsilon = args.epsilon if args.epsilon is not None else (0.05 if protocol else 0.0)
        if not 0.0 <= epsilon <= 1.0:
            raise RlkitError(f"--epsilon must be in [0, 1], got {epsilon}")
        frames: list[np.ndarray] | None = [] if args.video is not None else None
        act = policy.stochastic(np.random.default_rng(args.seed)) if args.stochastic else policy
        returns = play_episodes(
            act,
            source,
            args.episodes,
            args.seed,
            check=lambda env: policy.check_env(env_id, env.observation_space, env.action_space),
            protocol=protocol,
            epsilon=epsilon,
            record=frames,
        )
        video = None
        if frames:
            folder = Path(args.video) if args.video else Path(args.run)
            name = f"{policy.meta['agent']}-{file_name(env_id)}-seed{args.seed}.gif"
            video = save_video(frames, folder / name)
    except RlkitError as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    # A checkpoint stays as it was written: its results go next to the run's.
    # Never over the training's own results.json: each evaluation gets its own file.
    label = f"seed{args.seed}-{args.episodes}ep"
    label += "-stochastic" if args.stochastic else ""
    label += f"-eps{epsilon:g}" if epsilon else ""
    folder = Path(args.run)
    if is_checkpoint(args.run):  # a checkpoint stays as it was written
        folder, label = folder.parent.parent, f"{folder.name}-{label}"
    elif args.best:
        label = f"best-{label}"
    out = folder / "evaluations" / f"{label}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    extra = {"video": str(video)} if video else {}
    write_results(
        out,
        returns,
        env_id=env_id,
        seed=args.seed,
        epsilon=epsilon,
        deterministic=not args.stochastic,
        **extra,
    )
    if video:
        print(f"video of the first episode: {video}")
    print(
        f"{policy.meta['agent']} on {env_id}: mean reward {np.mean(returns):.2f} "
        f"± {np.std(returns):.2f} over {len(returns)} episodes (written to {out})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
