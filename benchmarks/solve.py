"""Solve benchmark: env steps and training seconds until a confirmed greedy mean >= 475.

Usage:
    python benchmarks/solve.py --agents dqn,double_dqn,dueling_dqn,a2c,reinforce --seeds 1,2,3,4,5
    python benchmarks/solve.py --agents a2c --seeds 1,2 --set learning_rate=1e-3

Each run uses the agent's shipped CartPole-v1 preset (plus ``--set`` overrides), evaluates
the greedy policy on 10 fresh episodes every ``--eval-every`` env steps on a separate env,
and stops at the first evaluation with mean >= 475 whose confirmation on 30 further fresh
episodes reaches 475 too. Training seconds exclude evaluation time. The policy it stops
with then plays ``--final-episodes`` (100) greedy episodes on seeds the run never used:
``final_mean`` says whether "solved" holds. Rows are appended to
``benchmarks/results/solve.jsonl`` with the machine, versions and commit.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def environment() -> dict:
    import gymnasium
    import numpy
    import tensorflow

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "tensorflow": tensorflow.__version__,
        "gymnasium": gymnasium.__version__,
        "numpy": numpy.__version__,
        "commit": commit,
    }


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--agents", default="dqn,double_dqn,dueling_dqn,a2c,reinforce")
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("--seeds", default="1,2,3,4,5")
    p.add_argument("--threshold", type=float, default=475.0)
    p.add_argument("--eval-every", type=int, default=None, help="default: the preset's")
    p.add_argument("--max-steps", type=int, default=None, help="default: the preset's total_steps")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--final-episodes", type=int, default=100)
    p.add_argument("--tag", default="preset")
    p.add_argument("--out", default=str(HERE / "results" / "solve.jsonl"))
    args = p.parse_args()

    import gymnasium as gym

    from rlkit.agents import get_agent_class
    from rlkit.agents.common import seed_everything
    from rlkit.config import parse_overrides, resolve
    from rlkit.evaluate import evaluation_seeds, play_episodes
    from rlkit.experiment import learn

    env_info = environment()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for agent_name in args.agents.split(","):
        cls = get_agent_class(agent_name)
        for seed in [int(s) for s in args.seeds.split(",")]:
            overrides = parse_overrides(args.set)
            overrides.update(seed=seed, stop_reward=args.threshold)
            if args.eval_every:
                overrides["eval_every"] = args.eval_every
            if args.max_steps:
                overrides["total_steps"] = args.max_steps
            run, cfg = resolve(cls, args.env, overrides=overrides)
            if run.eval_every == 0:
                run, cfg = resolve(cls, args.env, overrides={**overrides, "eval_every": 5000})
            seed_everything(seed)
            env = gym.make(args.env)
            agent = cls(env.observation_space, env.action_space, cfg, seed=seed)
            t0 = time.perf_counter()
            result = learn(agent, args.env, run)
            wall = time.perf_counter() - t0
            seeds = evaluation_seeds(seed, "final", result.env_steps, args.final_episodes)
            greedy = functools.partial(agent.act, explore=False)
            final = play_episodes(greedy, args.env, len(seeds), seeds)
            row = {
                "agent": agent_name,
                "env": args.env,
                "seed": seed,
                "tag": args.tag,
                "overrides": args.set,
                "threshold": args.threshold,
                "solved": result.solved_at is not None,
                "solve_steps": result.solved_at["env_steps"] if result.solved_at else None,
                "solve_seconds": result.solved_at["train_seconds"] if result.solved_at else None,
                "evaluations": len(result.evaluations),
                "confirmations": sum("confirm_mean_reward" in e for e in result.evaluations),
                "final_mean": float(final.mean()),
                "final_min": float(final.min()),
                "final_episodes": len(final),
                "env_steps": result.env_steps,
                "wall_seconds": wall,
                "steps_per_second": result.env_steps / result.seconds,
                "num_envs": run.num_envs,
                "eval_every": run.eval_every,
                **env_info,
            }
            print(json.dumps(row), flush=True)
            with open(out, "a") as f:
                f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
