"""Where a training loop's time goes: cProfile of ``rlkit.loops``, split by part.

Usage:
    python benchmarks/profile_loops.py --agent dqn --env CartPole-v1 --num-envs 1
    python benchmarks/profile_loops.py --agent a2c --env CartPole-v1 --num-envs 8
    python benchmarks/profile_loops.py --agent a2c --env ALE/SpaceInvaders-v5 --num-envs 16 \\
        --vectorization ale --seconds 20
    python benchmarks/profile_loops.py --agent a2c --num-envs 64 --vectorization vector

Builds the agent with its preset as ``benchmarks/throughput.py`` does, warms it up
(tracing, first updates), then profiles about ``--seconds`` of training and reports the
time per env step of each part of the data path, from cumulative times of the calls the
loop makes: env (``envs.step``), runner (``VectorRunner.step`` less the env), acting
(``agent.act``), buffer (replay ``add``/``sample``/``can_sample`` or rollout
``add``/``pop``), update (``agent.update``), logging, the env reset that starts the
segment, and the rest of the loop. cProfile
adds its own per-call cost, so the Python-heavy parts look somewhat bigger than they are;
the env steps/s without the profiler are printed for comparison. Writes
``results/profile_<agent>_<env>_<vectorization><N>[_<tag>].{json,txt}`` (the split and the
top functions, and the ``*_NUM_THREADS`` variables of the run).
"""

from __future__ import annotations

import argparse
import cProfile
import inspect
import io
import json
import os
import pstats
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
from provenance import RESULTS, machine_info
from throughput import ATARI_SETS, CARTPOLE, build_trainee, open_cell, train, warm_up

# (part, the functions whose cumulative time it is: (file suffix, function name))
PARTS: list[tuple[str, list[tuple[str, str]]]] = [
    ("update", [("loops.py", "timed_update")]),
    ("acting", [("dqn.py", "act"), ("a2c.py", "act"), ("policy_gradient.py", "act")]),
    ("runner+env", [("runner.py", "step")]),
    ("buffer", [("replay.py", "add"), ("replay.py", "sample"), ("replay.py", "can_sample")]),
    ("rollout", [("rollout.py", "add"), ("rollout.py", "pop")]),
    ("logging", [("logger.py", "write"), ("logger.py", "write_episodes")]),
    ("episode stats", [("runner.py", "pop_episode_stats")]),
    ("env reset", [("runner.py", "reset")]),  # once per profiled segment
]
ENV_STEP = [
    ("sync_vector_env.py", "step"),
    ("async_vector_env.py", "step"),
    ("vector_env.py", "step"),
]


def cumulative(stats: pstats.Stats, targets: list[tuple[str, str]]) -> float:
    """Summed cumulative seconds of the functions named in ``targets``."""
    total = 0.0
    for (path, _, name), (_, _, _, cum, _) in stats.stats.items():  # type: ignore[attr-defined]
        if any(path.endswith(suffix) and name == fn for suffix, fn in targets):
            total += cum
    return total


def env_step_targets(envs: Any) -> list[tuple[str, str]]:
    """The env's own step: gymnasium's vector env classes, or an env's vector entry point.

    ``vectorization: vector`` makes the env's own class (e.g. ``cartpole.py``'s
    ``CartPoleVectorEnv``), which the runner steps directly once its observation check is
    done; its file is not one of gymnasium's vector env files.
    """
    base = envs.unwrapped
    if isinstance(base, (gym.vector.SyncVectorEnv, gym.vector.AsyncVectorEnv)):
        return ENV_STEP
    return [(Path(inspect.getfile(type(base))).name, "step")]


def split(
    stats: pstats.Stats, seconds: float, env_steps: int, env_step: list[tuple[str, str]]
) -> dict[str, float]:
    """Microseconds per env step of each part of the loop."""
    parts = {name: cumulative(stats, targets) for name, targets in PARTS}
    env = cumulative(stats, env_step)
    parts["env"] = env
    parts["runner"] = parts.pop("runner+env") - env
    parts["loop, rest"] = seconds - sum(parts.values())
    return {k: v / env_steps * 1e6 for k, v in parts.items()}


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--agent", default="dqn")
    p.add_argument("--env", default=CARTPOLE)
    p.add_argument("--vectorization", default="sync")
    p.add_argument("--num-envs", type=int, default=1)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--tag", default="", help="suffix of the result files")
    args = p.parse_args()
    cell = open_cell(args.env, args.vectorization, args.num_envs, args.seed)
    atari = args.env != CARTPOLE
    sets = (list(ATARI_SETS) if atari and args.agent.endswith("dqn") else []) + args.set
    try:
        trainee = build_trainee(args.agent, cell, sets, args.seed)
        speed = warm_up(trainee, cell, min(args.seconds / 4, 2.0))
        steps = max(int(speed * args.seconds), 8 * args.num_envs)
        plain_s, plain_n, _ = train(trainee, cell, steps // 2)  # unprofiled, for comparison
        profiler = cProfile.Profile()
        profiler.enable()
        seconds, env_steps, updates = train(trainee, cell, steps)
        profiler.disable()
    finally:
        cell.runner.close()
    stats = pstats.Stats(profiler)
    per_step = split(stats, seconds, env_steps, env_step_targets(cell.envs))
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(args.top)
    tag = f"{args.agent}_{args.env.replace('/', '-')}_{args.vectorization}{args.num_envs}"
    tag += f"_{args.tag}" if args.tag else ""
    result: dict[str, Any] = {
        "meta": machine_info(),
        "settings": vars(args),
        # BLAS threads decide the numpy acting cost at >= 128 rows on a busy machine
        "thread_env": {k: v for k, v in os.environ.items() if k.endswith("_NUM_THREADS")},
        "env_steps": env_steps,
        "updates": updates,
        "profiled_steps_per_s": env_steps / seconds,
        "unprofiled_steps_per_s": plain_n / plain_s,
        "us_per_env_step": per_step,
        "share": {k: v / sum(per_step.values()) for k, v in per_step.items()},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"profile_{tag}.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / f"profile_{tag}.txt").write_text(text.getvalue())
    print(
        f"{tag}: {env_steps:,} env steps, {updates} updates, "
        f"{result['profiled_steps_per_s']:,.0f} steps/s profiled, "
        f"{result['unprofiled_steps_per_s']:,.0f} without the profiler"
    )
    for k, v in sorted(per_step.items(), key=lambda kv: -kv[1]):
        print(f"  {k:14s} {v:8.1f} us/env step  {result['share'][k]:6.1%}")
    print("\n".join(text.getvalue().splitlines()[: args.top + 12]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
