"""Evaluate a policy: ``python -m rlkit.evaluate --run DIR`` plays greedy episodes."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rlkit.errors import RlkitError


def evaluate_policy(
    policy: Callable[[np.ndarray], np.ndarray],
    env_id: str,
    episodes: int = 10,
    seed: int = 0,
    check: Callable[[Any], None] | None = None,
) -> np.ndarray:
    """Play ``episodes`` full episodes on a fresh env and return their returns.

    Episode i is reset with seed ``seed + i``, so results are reproducible and do not
    favour short episodes as a vector env would.

    Args:
        policy: maps observations ``[1, ...]`` to actions ``[1]``.
        env_id: gymnasium id.
        episodes: number of episodes.
        seed: seed of the first episode.
        check: called with the env before any step (e.g. to check its spaces).
    """
    from rlkit.envs import make_env

    env = make_env(env_id)
    returns = np.zeros(episodes)
    try:
        if check is not None:
            check(env)
        for i in range(episodes):
            obs, _ = env.reset(seed=seed + i)
            done = False
            while not done:
                action = policy(np.asarray(obs)[None])[0]
                obs, reward, terminated, truncated, _ = env.step(action)
                returns[i] += float(reward)
                done = terminated or truncated
    finally:
        env.close()
    return returns


def write_results(path: Path, returns: np.ndarray, **extra: object) -> dict:
    """Write ``results.json`` with mean, std and the per-episode returns."""
    results = {
        "mean_reward": float(np.mean(returns)) if len(returns) else float("nan"),
        "std_reward": float(np.std(returns)) if len(returns) else float("nan"),
        "episodes": len(returns),
        "returns": [float(r) for r in returns],
        **extra,
    }
    path.write_text(json.dumps(results, indent=2) + "\n")
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m rlkit.evaluate``."""
    parser = argparse.ArgumentParser(
        prog="python -m rlkit.evaluate", description="Play greedy episodes with a saved policy."
    )
    parser.add_argument("--run", required=True, help="run folder (or a policy folder)")
    parser.add_argument("--episodes", type=int, default=10, help="episodes to play")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode")
    parser.add_argument("--env", default=None, help="env id (default: the one trained on)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    args = parser.parse_args(argv)
    if not args.debug:
        from rlkit.tf_setup import import_tensorflow_quietly

        import_tensorflow_quietly()
    try:
        if args.episodes < 1:
            raise RlkitError(f"--episodes must be >= 1, got {args.episodes}")
        from rlkit.policy_io import load_policy

        policy = load_policy(args.run)
        env_id = args.env or policy.meta["env"]
        returns = evaluate_policy(
            policy,
            env_id,
            args.episodes,
            args.seed,
            check=lambda env: policy.check_env(env_id, env.observation_space, env.action_space),
        )
    except RlkitError as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(args.run) / "results.json"
    write_results(out, returns, env=env_id, seed=args.seed, deterministic=True)
    print(
        f"{policy.meta['agent']} on {env_id}: mean reward {np.mean(returns):.2f} "
        f"± {np.std(returns):.2f} over {len(returns)} episodes (written to {out})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
